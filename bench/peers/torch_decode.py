#!/usr/bin/env python3
"""torch_decode.py -- PyTorch / Hugging Face transformers peer for lx's GPU benchmark
(scripts/gpu_bench.sh): batch-1 greedy decode and prefill of a Llama-family model, eager and
with a static KV cache under torch.compile, plus the device's copy rate for the roofline.

    python3 bench/peers/torch_decode.py --model DIR [--device cuda] [--dtype bfloat16]
        [--prompt 8] [--new 128] [--prefill 512,2048] [--modes eager,compile] [--reps 3]
        [--compile-mode reduce-overhead] [--compile-prefill] [--copy-probe-mib 2048]
    python3 bench/peers/torch_decode.py --tiny --device cpu --dtype float32 ...   (smoke test)

--model DIR loads the folder that bench/gpu/random_model writes (config.json and
model.safetensors, the same weights lx runs) with LlamaForCausalLM.from_pretrained, offline;
--preset NAME (random_model's presets: tiny, smollm2-135m, llama-3.2-1b) builds that config as
LlamaForCausalLM(config) with transformers' own random init instead (speed does not depend on
the values; for when the folders could not be made), and prints a {"kind": "model"} row with
its decode_bytes; --tiny is --preset tiny.
Prompt ids are random.Random(n).randrange(256, vocab - 2), as scripts/gpu_bench.sh gives lx.

What is timed (CUDA events on the GPU, wall clock on the CPU; median of --reps, after one
warm-up run of each measurement):
  eager    decode: N single-token forwards over a DynamicCache after a P-token prefill, each
           followed by argmax and .item() (a real generation loop reads every token, as lx
           does); prefill: one forward of P tokens into an empty cache, logits of the last
           position only (logits_to_keep=1, as lx computes them), then argmax.
  compile  the decode step (forward + argmax) through torch.compile(fullgraph=True,
           mode=--compile-mode) over a StaticCache: the recipe of transformers' "static cache
           and torch.compile" guide (reduce-overhead = CUDA graphs); its prefill runs eager into
           the static cache, unless --compile-prefill, which compiles a prefill function too
           (one compile per length). compile_s is the first compiled call's wall time.
Each measurement prints one JSON line: engine, model, metric (decode_tok_s, prefill_tok_s,
compile_s, load_s, greedy_ids), n, value (the median) and samples; the copy probe one line
{"kind": "probe", "probe": "torch", "copy_rw_bytes_per_s", "read_bytes_per_s", ...}.
"""
import argparse
import inspect
import json
import os
import random
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, StaticCache  # noqa: E402


# random_model's presets (bench/gpu/random_model.c), as transformers configs
_LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
PRESETS = {
    "tiny": dict(vocab_size=1024, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                 max_position_embeddings=16384, rope_theta=500000.0, rope_scaling=_LLAMA3_ROPE),
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         head_dim=64, max_position_embeddings=8192, rope_theta=100000.0),
    "llama-3.2-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         head_dim=64, max_position_embeddings=131072, rope_theta=500000.0,
                         rope_scaling=_LLAMA3_ROPE),
}


def ids_of(n, vocab):
    r = random.Random(n)
    return [r.randrange(256, vocab - 2) for _ in range(n)]


class Timer:
    """Events on CUDA, perf_counter elsewhere; seconds."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def start(self):
        self.sync()
        if self.cuda:
            self.e0 = torch.cuda.Event(enable_timing=True)
            self.e1 = torch.cuda.Event(enable_timing=True)
            self.e0.record()
        self.t0 = time.perf_counter()

    def stop(self):
        if self.cuda:
            self.e1.record()
            self.e1.synchronize()
            return self.e0.elapsed_time(self.e1) * 1e-3
        return time.perf_counter() - self.t0


class Peer:
    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.dtype = getattr(torch, args.dtype)
        self.timer = Timer(self.device)
        t0 = time.perf_counter()
        if args.preset:
            torch.manual_seed(0)
            cfg = LlamaConfig(**PRESETS[args.preset], rms_norm_eps=1e-5, tie_word_embeddings=True)
            self.model = LlamaForCausalLM(cfg).to(self.device, self.dtype)
            self.label = args.label or args.preset
        else:
            # transformers 4.56 renamed torch_dtype to dtype (both 5.x versions seen take dtype)
            major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
            kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
            self.model = LlamaForCausalLM.from_pretrained(args.model, **{kw: self.dtype})
            self.model.to(self.device)
            self.label = args.label or os.path.basename(os.path.normpath(args.model))
        self.model.eval()
        self.timer.sync()
        self.load_s = time.perf_counter() - t0
        self.cfg = self.model.config
        self.vocab = self.cfg.vocab_size
        # transformers 5.x renames past_key_values to cache (5.25 has both, 5.17 the old one)
        params = inspect.signature(self.model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.keep_kw = "logits_to_keep" if "logits_to_keep" in params else (
            "num_logits_to_keep" if "num_logits_to_keep" in params else None)

    # ---- output ----
    def emit(self, engine, metric, n, samples, **extra):
        if not isinstance(samples, list):
            value = samples
        elif samples and isinstance(samples[0], list):
            value = samples[0]  # greedy_ids: one list of ids
        else:
            value = statistics.median(samples)
        row = {"engine": engine, "model": self.label, "metric": metric, "n": n, "value": value,
               "samples": samples if isinstance(samples, list) else [samples],
               "device": self.device_name(), "dtype": self.args.dtype,
               "torch": torch.__version__, "transformers": transformers.__version__}
        row.update(extra)
        print(json.dumps(row), flush=True)

    def device_name(self):
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return "cpu"

    def tensor(self, ids):
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    def fwd(self, ids, cache, last_only):
        kw = {self.cache_kw: cache, "use_cache": True}
        if last_only and self.keep_kw:
            kw[self.keep_kw] = 1
        return self.model(input_ids=ids, **kw).logits

    def dynamic_cache(self):
        try:
            return DynamicCache(config=self.cfg)
        except TypeError:
            return DynamicCache()

    def static_cache(self, max_len):
        sig = inspect.signature(StaticCache.__init__).parameters
        kw = {"config": self.cfg, "max_cache_len": max_len}
        for k, v in (("max_batch_size", 1), ("batch_size", 1), ("device", self.device),
                     ("dtype", self.dtype)):
            if k in sig:
                kw[k] = v
        return StaticCache(**kw)

    # ---- eager ----
    def eager_decode(self, prompt, n):
        cache = self.dynamic_cache()
        with torch.no_grad():
            tok = self.fwd(prompt, cache, True)[:, -1:].argmax(-1)
            tok.item()
            self.timer.start()
            for _ in range(n):
                tok = self.fwd(tok, cache, False)[:, -1:].argmax(-1)
                tok.item()
            return self.timer.stop()

    def greedy_ids(self, prompt, n):
        cache, out = self.dynamic_cache(), []
        with torch.no_grad():
            tok = self.fwd(prompt, cache, True)[:, -1:].argmax(-1)
            out.append(tok.item())
            for _ in range(n - 1):
                tok = self.fwd(tok, cache, False)[:, -1:].argmax(-1)
                out.append(tok.item())
        return out

    def eager_prefill(self, ids):
        cache = self.dynamic_cache()
        with torch.no_grad():
            self.timer.start()
            tok = self.fwd(ids, cache, True)[:, -1:].argmax(-1)
            tok.item()
            return self.timer.stop()

    # ---- static cache + torch.compile ----
    def compiled_setup(self, decode_len, prefill_len):
        # two caches: decode attends over the whole static cache, so it gets one just long
        # enough for the prompt and the new tokens; prefill gets its own
        self.scache = self.static_cache(decode_len)
        self.pcache = self.static_cache(prefill_len) if prefill_len else None
        model, kw = self.model, self.cache_kw
        cache, pcache = self.scache, self.pcache

        def decode_one(tok):
            logits = model(input_ids=tok, use_cache=True, **{kw: cache}).logits
            return logits[:, -1:].argmax(-1)

        self.decode_one = torch.compile(decode_one, mode=self.args.compile_mode, fullgraph=True)
        if self.args.compile_prefill:
            keep = {self.keep_kw: 1} if self.keep_kw else {}

            def prefill(ids):
                logits = model(input_ids=ids, use_cache=True, **{kw: pcache}, **keep).logits
                return logits[:, -1:].argmax(-1)

            self.prefill_c = torch.compile(prefill, mode="max-autotune-no-cudagraphs",
                                           fullgraph=True)

    def compiled_decode(self, prompt, n):
        self.scache.reset()
        with torch.no_grad():
            tok = self.fwd(prompt, self.scache, True)[:, -1:].argmax(-1)
            tok.item()
            self.timer.start()
            for _ in range(n):
                # CUDA-graph outputs are overwritten by the next replay: clone what is kept
                tok = self.decode_one(tok.clone()).clone()
                tok.item()
            return self.timer.stop()

    def compiled_prefill(self, ids):
        self.pcache.reset()
        with torch.no_grad():
            self.timer.start()
            if self.args.compile_prefill:
                tok = self.prefill_c(ids)
            else:
                tok = self.fwd(ids, self.pcache, True)[:, -1:].argmax(-1)
            tok.item()
            return self.timer.stop()

    # ---- the copy probe ----
    def copy_probe(self, mib, reps=20):
        n = mib << 20
        a = torch.zeros(n, dtype=torch.uint8, device=self.device)
        b = torch.empty_like(a)
        copy, read = [], []
        for r in range(reps + 3):
            self.timer.start()
            b.copy_(a)
            t = self.timer.stop()
            src = a if r % 2 else b
            self.timer.start()
            s = src.view(torch.float32).sum()
            t2 = self.timer.stop()
            s.item()
            if r >= 3:
                copy.append(2 * n / t)
                read.append(n / t2)
        print(json.dumps({"kind": "probe", "probe": "torch", "device": self.device_name(),
                          "bytes": n, "reps": reps,
                          "copy_rw_bytes_per_s": statistics.median(copy),
                          "read_bytes_per_s": statistics.median(read),
                          "copy": "b.copy_(a), bytes read + written",
                          "read": "a.view(float32).sum(), bytes read"}), flush=True)
        del a, b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a folder with config.json and model.safetensors")
    ap.add_argument("--preset", choices=sorted(PRESETS),
                    help="LlamaForCausalLM(config) of random_model's preset, transformers' init")
    ap.add_argument("--tiny", action="store_true", help="--preset tiny")
    ap.add_argument("--label", help="the model's name in the output (default: the folder's)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--prompt", type=int, default=8, help="prompt tokens before decode")
    ap.add_argument("--new", type=int, default=128, help="decoded tokens timed")
    ap.add_argument("--prefill", default="512,2048", help="prefill lengths, comma-separated ('' none)")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--compile-mode", default="reduce-overhead")
    ap.add_argument("--compile-prefill", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--copy-probe-mib", type=int, default=0, help="also measure the copy rate")
    ap.add_argument("--greedy-ids", type=int, default=0,
                    help="also print the first N greedy ids after the decode prompt (eager)")
    ap.add_argument("--attn", default=None, help="attn_implementation (default: transformers')")
    args = ap.parse_args()
    if args.tiny:
        args.preset = "tiny"
    if not args.preset and not args.model:
        ap.error("give --model DIR, --preset NAME or --tiny")
    torch.set_grad_enabled(False)
    peer = Peer(args)
    if args.attn:
        peer.model.config._attn_implementation = args.attn
    print(json.dumps({"engine": "torch", "model": peer.label, "info": {
        "device": peer.device_name(), "torch": torch.__version__,
        "transformers": transformers.__version__, "dtype": args.dtype,
        "attn": getattr(peer.model.config, "_attn_implementation", None),
        "params": sum(p.numel() for p in peer.model.parameters()),
        "param_dtype": str(next(peer.model.parameters()).dtype),
        "cache_kw": peer.cache_kw}}), flush=True)
    peer.emit("torch", "load_s", None, peer.load_s)
    if args.preset:
        # bytes read per decoded token: every weight once (the tied embedding as the head)
        # plus one embedding row, in the model's dtype
        size = torch.tensor([], dtype=peer.dtype).element_size()
        n = sum(p.numel() for p in peer.model.parameters())
        print(json.dumps({"kind": "model", "label": peer.label, "format": args.dtype,
                          "params": n, "file_bytes": 0,
                          "decode_bytes": (n + peer.cfg.hidden_size) * size,
                          "source": "torch_decode.py --preset %s (transformers' random init)" % args.preset}),
              flush=True)
    if args.copy_probe_mib:
        peer.copy_probe(args.copy_probe_mib)
    prompt = peer.tensor(ids_of(args.prompt, peer.vocab))
    if args.greedy_ids:
        peer.emit("torch-eager", "greedy_ids", args.greedy_ids,
                  [peer.greedy_ids(prompt, args.greedy_ids)], prompt_ids=ids_of(args.prompt, peer.vocab))
    lengths = [int(x) for x in args.prefill.split(",") if x.strip()]
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        engine = "torch-" + mode
        if mode == "eager":
            decode, prefill = peer.eager_decode, peer.eager_prefill
        elif mode == "compile":
            peer.compiled_setup(args.prompt + args.new + 16, max(lengths, default=0))
            t0 = time.perf_counter()
            peer.compiled_decode(prompt, 4)  # compiles (and records the CUDA graph)
            peer.emit(engine, "compile_s", None, time.perf_counter() - t0,
                      compile_mode=args.compile_mode)
            decode, prefill = peer.compiled_decode, peer.compiled_prefill
        else:
            sys.exit(f"torch_decode: unknown mode {mode}")
        decode(prompt, 8)  # warm-up
        ts = [decode(prompt, args.new) for _ in range(args.reps)]
        peer.emit(engine, "decode_tok_s", args.new, [args.new / t for t in ts],
                  prompt=args.prompt, compile_mode=args.compile_mode if mode == "compile" else None)
        for p in lengths:
            ids = peer.tensor(ids_of(p, peer.vocab))
            t0 = time.perf_counter()
            # warm-up: a compile per length with --compile-prefill, and a second call (the
            # first initialises the static cache's tensors, which recompiles)
            for _ in range(2 if mode == "compile" else 1):
                prefill(ids)
            warm = time.perf_counter() - t0
            ts = [prefill(ids) for _ in range(args.reps)]
            peer.emit(engine, "prefill_tok_s", p, [p / t for t in ts], warmup_s=warm,
                      compiled=mode == "compile" and args.compile_prefill)


if __name__ == "__main__":
    main()
