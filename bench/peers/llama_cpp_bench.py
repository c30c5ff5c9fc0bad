#!/usr/bin/env python3
"""Peer benchmark: llama.cpp through llama-cpp-python on the same GGUF lx runs.

Prints one JSON line per metric on stdout:
  {"peer": "llama-cpp-python", "metric": "prefill_tok_s", "n": 128, "median": ..., "samples": [...]}
Metrics: load_to_first_token_s (model load + prefill of a short prompt + the first sampled
token, fresh process state, median over --load-reps), prefill_tok_s for --prefill sizes
(Llama.eval of a token list on a reset context, n_batch 512), decode_tok_s for --decode sizes
(greedy, one token at a time after a short prompt: eval of 1 token + argmax of its logits),
peak_rss_bytes (resource.getrusage ru_maxrss of this process at the end).

Not a dependency of lx: a measuring tool, run with e.g. /work/peers/venv/bin/python.

llama-cpp-python 0.3.36's wheel is built with AMX, and its AMX matmul segfaults on this
machine (ggml_backend_amx_mul_mat in llama_decode); by default extra buffer types (AMX and
weight repacking) are turned off (llama_model_params.use_extra_bufts = False). --extra-bufts
turns them back on (expect the crash here).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--prefill", default="128,512")
    ap.add_argument("--decode", default="128,512")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--load-reps", type=int, default=3)
    ap.add_argument("--extra-bufts", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import llama_cpp

    if not args.extra_bufts:
        import llama_cpp.llama as L
        orig = llama_cpp.llama_model_default_params

        def params():
            p = orig()
            p.use_extra_bufts = False
            return p
        llama_cpp.llama_model_default_params = params
        L.llama_cpp.llama_model_default_params = params

    prefill = [int(x) for x in args.prefill.split(",") if x]
    decode = [int(x) for x in args.decode.split(",") if x]
    n_ctx = max(prefill + [8 + d for d in decode]) + 16
    common = dict(peer="llama-cpp-python", version=llama_cpp.__version__, threads=args.threads,
                  extra_bufts=args.extra_bufts)

    def make():
        return llama_cpp.Llama(model_path=args.model, n_threads=args.threads, n_threads_batch=args.threads,
                               n_ctx=n_ctx, n_batch=args.batch, n_ubatch=args.batch, logits_all=False,
                               verbose=False)

    def argmax_last(llm):
        # Llama.eval keeps no logits unless logits_all; read the last row from the context
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
        return int(row.argmax())

    short = [504, 3575, 282, 4649, 314]  # "The capital of France is" (5 ids; not the point)

    # load -> first token
    samples = []
    for _ in range(args.load_reps):
        t0 = time.perf_counter()
        llm = make()
        llm.eval(short)
        tok = argmax_last(llm)
        samples.append(time.perf_counter() - t0)
        del llm
    emit(metric="load_to_first_token_s", n=len(short), median=statistics.median(samples), samples=samples, **common)

    llm = make()
    vocab = llm.n_vocab()
    rng = np.random.default_rng(0)
    warm = rng.integers(100, vocab - 100, size=32).tolist()
    llm.reset(); llm.eval(warm)  # warm-up

    for n in prefill:
        ids = rng.integers(100, vocab - 100, size=n).tolist()
        samples = []
        for _ in range(args.reps):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(ids)
            argmax_last(llm)
            samples.append(n / (time.perf_counter() - t0))
        emit(metric="prefill_tok_s", n=n, median=statistics.median(samples), samples=samples, **common)

    for n in decode:
        samples = []
        for _ in range(args.reps):
            llm.reset()
            llm.eval(short)
            tok = argmax_last(llm)
            t0 = time.perf_counter()
            for _ in range(n):
                llm.eval([tok])
                tok = argmax_last(llm)
            samples.append(n / (time.perf_counter() - t0))
        emit(metric="decode_tok_s", n=n, median=statistics.median(samples), samples=samples, **common)

    emit(metric="peak_rss_bytes", median=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, **common)


if __name__ == "__main__":
    main()
