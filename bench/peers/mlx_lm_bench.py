#!/usr/bin/env python3
"""Peer benchmark: MLX (CPU) through mlx-lm, on SmolLM2-135M-Instruct requantized for MLX.

mlx-lm cannot read GGUF, so the model is converted once (--convert, or by hand):
  1. transformers loads the GGUF dequantized to float32 and it is saved as a plain HF
     checkpoint in --hf-path (the GGUF-quantized model object refuses save_pretrained, so its
     state dict is copied into a fresh LlamaForCausalLM; the head stays tied);
  2. `python -m mlx_lm convert --hf-path HF --mlx-path MLX -q --q-bits 4 --q-group-size 32`
     (affine 4-bit, groups of 32 as Q4_1; scales/biases stay float32 since the source is
     float32, so 6 bits per weight, and the tied embedding/head is 4-bit too where the GGUF
     has Q8_0).
Then it measures, with mlx-lm's own API (stream_generate, greedy: no sampler = argmax):
  prefill_tok_s for --prefill sizes: stream_generate(prompt of N ids, max_tokens=1).prompt_tps
  decode_tok_s for --decode sizes: stream_generate(short prompt, max_tokens=N), EOS ignored
      (the tokenizer wrapper's eos set emptied), .generation_tps of the last response
  load_to_first_token_s: mlx_lm.load + the first token of a short prompt (run once, in-process)
  peak_memory_bytes: mx.get_peak_memory() (MLX's allocator), and peak_rss_bytes (getrusage)
One JSON line per metric on stdout. Packages (pip, into the peers venv, never lx's):
mlx==0.32.4 (its Linux CPU backend is the mlx-cpu wheel), mlx-lm.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

DEFAULT_MODEL = os.path.join(
    os.environ.get("LX_MODEL_CACHE",
                   os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                "lx", "models")),
    "SmolLM2-135M-Instruct.Q4_1.gguf")


def emit(**kw):
    print(json.dumps(kw), flush=True)


def convert(gguf_path, hf_path, mlx_path, bits, group):
    import subprocess
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    folder, name = os.path.split(os.path.abspath(gguf_path))
    m = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    cd = m.config.to_dict()
    for k in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        cd.pop(k, None)
    plain = LlamaForCausalLM(LlamaConfig(**cd)).to(torch.float32).eval()
    plain.load_state_dict(m.state_dict())
    assert plain.lm_head.weight.data_ptr() == plain.model.embed_tokens.weight.data_ptr()
    plain.save_pretrained(hf_path)
    tok.save_pretrained(hf_path)
    subprocess.run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", hf_path, "--mlx-path", mlx_path,
                    "-q", "--q-bits", str(bits), "--q-group-size", str(group)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=DEFAULT_MODEL)
    ap.add_argument("--hf-path", default="/work/peers/smollm2-hf")
    ap.add_argument("--mlx-path", default="/work/peers/smollm2-mlx-q4")
    ap.add_argument("--convert", action="store_true", help="(re)make --hf-path and --mlx-path first")
    ap.add_argument("--threads", type=int, default=2, help="informational: MLX's CPU backend picks its own")
    ap.add_argument("--prefill", default="128,512")
    ap.add_argument("--decode", default="128,512")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    if args.convert or not os.path.exists(os.path.join(args.mlx_path, "config.json")):
        convert(args.gguf, args.hf_path, args.mlx_path, 4, 32)

    import importlib.metadata as md
    import numpy as np
    import mlx.core as mx
    import mlx_lm
    from mlx_lm import stream_generate
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    common = dict(peer="mlx-lm", mlx=md.version("mlx"), mlx_lm=md.version("mlx-lm"),
                  device=str(mx.default_device()), quant="affine q4 g32 (f32 scales)")
    short = [504, 3575, 282, 4649, 314]  # "The capital of France is"

    t0 = time.perf_counter()
    model, tokenizer = mlx_lm.load(args.mlx_path)
    for r in stream_generate(model, tokenizer, prompt=short, max_tokens=1):
        pass
    emit(metric="load_to_first_token_s", n=len(short), median=time.perf_counter() - t0, **common)

    tw = tokenizer if isinstance(tokenizer, TokenizerWrapper) else TokenizerWrapper(tokenizer)
    rng = np.random.default_rng(0)
    vocab = model.args.vocab_size if hasattr(model, "args") else 49152
    for r in stream_generate(model, tw, prompt=rng.integers(100, vocab - 100, size=32).tolist(), max_tokens=4):
        pass  # warm-up

    for n in [int(x) for x in args.prefill.split(",") if x]:
        ids = rng.integers(100, vocab - 100, size=n).tolist()
        samples = []
        for _ in range(args.reps):
            last = None
            for last in stream_generate(model, tw, prompt=ids, max_tokens=1):
                pass
            samples.append(last.prompt_tps)
        emit(metric="prefill_tok_s", n=n, median=statistics.median(samples), samples=samples, **common)

    saved = set(tw.eos_token_ids)
    tw.eos_token_ids = []  # --ignore-eos
    for n in [int(x) for x in args.decode.split(",") if x]:
        samples = []
        for _ in range(args.reps):
            last, count = None, 0
            for last in stream_generate(model, tw, prompt=short, max_tokens=n):
                count += 1
            assert count == n, (count, n)
            samples.append(last.generation_tps)
        emit(metric="decode_tok_s", n=n, median=statistics.median(samples), samples=samples, **common)
    tw.eos_token_ids = saved

    emit(metric="peak_memory_bytes", median=int(mx.get_peak_memory()), **common)
    emit(metric="peak_rss_bytes", median=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, **common)


if __name__ == "__main__":
    main()
