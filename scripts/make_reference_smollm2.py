#!/usr/bin/env python3
"""Makes tests/fixtures/smollm2/: the reference that lx's Llama generator is judged against.

The model is SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch_model.sh). The oracle is Hugging
Face transformers loading that same GGUF and dequantizing it to float32 (Q4_1 and Q8_0 blocks
dequantize exactly to d*q+m / d*q), running in float32, eval mode, eager attention, greedy.
Prompt ids come from llama.cpp's tokenizer on the same file, so the fixture also pins the
tokenizer lx must match. llama.cpp's own greedy output is recorded beside it for comparison
(it quantizes activations to Q8_1/Q8_0 for its quantized matmuls, so it drifts from float32).

This is a maintainer's tool, not a dependency of lx or of its CI. It needs a Python with
torch, transformers (+accelerate, which transformers wants for GGUF), gguf, jinja2, numpy,
safetensors and llama-cpp-python, e.g. the peers venv:

    /work/peers/venv/bin/python scripts/make_reference_smollm2.py \
        [--model PATH] [--out tests/fixtures/smollm2] [--new-tokens 32]

Besides writing the fixture it checks, and prints:
  * that transformers' weights equal an independent numpy dequantization of the GGUF blocks
    (bit for bit), that the head is tied to the Q8_0 token_embd, and that Q/K were un-permuted
    (llama.cpp's convert permutes Q/K rows for its rope; transformers reverses that);
  * a float64 numpy forward pass written from the GGUF as stored (permuted Q/K, ggml's
    "normal" rope on adjacent pairs), compared with HF's float32 logits: an independent check
    of the un-permutation and the size of float32 noise;
  * HF vs llama.cpp: greedy ids, and teacher-forced logits on HF's sequences.
It reloads the written fixture and checks it.
"""
import argparse
import importlib.metadata
import json
import os
import sys

import numpy as np

DEFAULT_MODEL = os.path.join(
    os.environ.get("LX_MODEL_CACHE",
                   os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                "lx", "models")),
    "SmolLM2-135M-Instruct.Q4_1.gguf")

TOP_K = 20
EOS_ID = 2

# (name, text or messages, chat)
PROMPTS = [
    ("english", "The capital of France is Paris. The capital of Germany is", False),
    ("code", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n', False),
    ("french", "Il était une fois, dans un petit village de Provence, une boulangère qui", False),
    ("chat_simple", [{"role": "user", "content": "What is the capital of France?"}], True),
    ("chat_system", [{"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
                     {"role": "user", "content": "Why is the sky blue?"}], True),
    ("chat_multiturn", [{"role": "user", "content": "Hi! Can you count to three?"},
                        {"role": "assistant", "content": "Sure: 1, 2, 3."},
                        {"role": "user", "content": "Now write a haiku about the number 3 — «trois», 三."}], True),
]


def no_extra_bufts(llama_cpp):
    """llama-cpp-python's wheel here was built with AMX; its AMX matmul (an "extra buffer type"
    that repacks Q4_1/Q8_0 weights) segfaults in llama_decode on this machine. Turn extra buffer
    types off (llama_model_params.use_extra_bufts = False): plain ggml CPU kernels."""
    import llama_cpp.llama as L
    orig = llama_cpp.llama_model_default_params
    if getattr(orig, "_lx_patched", False):
        return
    def params():
        p = orig()
        p.use_extra_bufts = False
        return p
    params._lx_patched = True
    llama_cpp.llama_model_default_params = params
    L.llama_cpp.llama_model_default_params = params


def render_chat(template, messages):
    """Renders the GGUF's chat template the way transformers' apply_chat_template does."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token="<|im_start|>", eos_token="<|im_end|>")


# ---------------------------------------------------------------------------------------------
# Independent numpy dequantization and float64 forward pass from the GGUF as stored.

def dequant_np(t):
    """Dequantizes a gguf ReaderTensor from its raw bytes; float32, numpy shape [rows, cols]."""
    name = t.tensor_type.name
    cols = int(t.shape[0])
    rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
    raw = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
    if name == "F32":
        return raw.view(np.float32).reshape(rows, cols).copy()
    if name == "Q4_1":  # block of 32: f16 d, f16 m, 16 bytes of nibbles; x = q*d + m
        b = raw.reshape(-1, 20)
        d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
        m = b[:, 2:4].copy().view(np.float16).astype(np.float32)
        qs = b[:, 4:20]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # j<16 low, j>=16 high
        return (q * d + m).reshape(rows, cols)
    if name == "Q8_0":  # block of 32: f16 d, 32 int8; x = q*d
        b = raw.reshape(-1, 34)
        d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
        q = b[:, 2:34].copy().view(np.int8).astype(np.float32)
        return (q * d).reshape(rows, cols)
    raise ValueError(f"{t.name}: type {name} not handled")


def unpermute(w, n_head):
    """Reverses llama.cpp convert's Q/K row permutation (w is [out, in])."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def np_forward(W, cfg, ids):
    """float64 forward of a Llama from GGUF weights as stored: Q/K rows permuted, ggml NORM rope
    (rotates adjacent pairs (2i, 2i+1) of each head). Returns logits [len(ids), vocab]."""
    H, KV, L = cfg["n_head"], cfg["n_kv"], cfg["n_layer"]
    D = cfg["dim"] // H
    eps, theta = cfg["eps"], cfg["theta"]
    T = len(ids)
    f = lambda k: W[k].astype(np.float64)
    x = f("token_embd.weight")[ids]                              # [T, dim]
    pos = np.arange(T, dtype=np.float64)
    inv = theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)  # [D/2]
    ang = pos[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)                          # [T, D/2]

    def rope_pairs(v):  # v [T, heads, D]; pairs (2i, 2i+1)
        a, b = v[..., 0::2], v[..., 1::2]
        c, s = cos[:, None, :], sin[:, None, :]
        out = np.empty_like(v)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = a * s + b * c
        return out

    def rms(v, w):
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps) * w

    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, f(p + "attn_norm.weight")[0])
        q = (h @ f(p + "attn_q.weight").T).reshape(T, H, D)
        k = (h @ f(p + "attn_k.weight").T).reshape(T, KV, D)
        v = (h @ f(p + "attn_v.weight").T).reshape(T, KV, D)
        q, k = rope_pairs(q), rope_pairs(k)
        rep = H // KV
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(T, H * D)
        x = x + o @ f(p + "attn_output.weight").T
        h = rms(x, f(p + "ffn_norm.weight")[0])
        g = h @ f(p + "ffn_gate.weight").T
        u = h @ f(p + "ffn_up.weight").T
        x = x + ((g / (1 + np.exp(-g))) * u) @ f(p + "ffn_down.weight").T
    x = rms(x, f("output_norm.weight")[0])
    return x @ f("token_embd.weight").T                          # tied head


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "fixtures", "smollm2"))
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()

    import torch
    import transformers
    import gguf
    import jinja2
    import llama_cpp
    import safetensors
    from safetensors.numpy import save_file, load_file
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model_path = os.path.abspath(args.model)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    folder, fname = os.path.split(model_path)
    versions = {
        "python": sys.version.split()[0], "torch": torch.__version__,
        "transformers": transformers.__version__, "gguf": importlib.metadata.version("gguf"),
        "llama_cpp_python": llama_cpp.__version__, "numpy": np.__version__,
        "jinja2": jinja2.__version__, "safetensors": safetensors.__version__,
        "accelerate": importlib.metadata.version("accelerate"),
    }
    print("versions:", json.dumps(versions))

    # --- GGUF as stored
    reader = gguf.GGUFReader(model_path)
    meta = lambda k: reader.fields[k].contents()
    cfg = dict(n_head=int(meta("llama.attention.head_count")), n_kv=int(meta("llama.attention.head_count_kv")),
               n_layer=int(meta("llama.block_count")), dim=int(meta("llama.embedding_length")),
               eps=float(meta("llama.attention.layer_norm_rms_epsilon")),
               theta=float(meta("llama.rope.freq_base")))
    template = meta("tokenizer.chat_template")
    W = {t.name: dequant_np(t) for t in reader.tensors}
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert "output.weight" not in W, "expected a tied head (no output.weight)"

    # --- HF model
    try:
        hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32,
                                                  attn_implementation="eager")
    except TypeError:
        hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, torch_dtype=torch.float32,
                                                  attn_implementation="eager")
    hf.eval()
    c = hf.config
    assert c.tie_word_embeddings and hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr(), \
        "transformers did not tie lm_head to embed_tokens"
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    checks = {}
    # weights: bit-exact vs the independent dequantization (Q/K after un-permuting)
    def same(a, b): return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
    ok = same(sd["model.embed_tokens.weight"], W["token_embd.weight"])
    ok &= same(sd["lm_head.weight"], W["token_embd.weight"])
    for l in range(cfg["n_layer"]):
        p, g = f"model.layers.{l}.", f"blk.{l}."
        ok &= same(sd[p + "self_attn.q_proj.weight"], unpermute(W[g + "attn_q.weight"], cfg["n_head"]))
        ok &= same(sd[p + "self_attn.k_proj.weight"], unpermute(W[g + "attn_k.weight"], cfg["n_kv"]))
        ok &= not np.array_equal(sd[p + "self_attn.q_proj.weight"], W[g + "attn_q.weight"])
        for hn, gn in (("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"),
                       ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down")):
            ok &= same(sd[p + hn + ".weight"], W[g + gn + ".weight"])
        ok &= same(sd[p + "input_layernorm.weight"], W[g + "attn_norm.weight"][0])
        ok &= same(sd[p + "post_attention_layernorm.weight"], W[g + "ffn_norm.weight"][0])
    ok &= same(sd["model.norm.weight"], W["output_norm.weight"][0])
    checks["hf_weights_equal_numpy_dequant_bitwise"] = bool(ok)
    checks["head_tied_to_q8_0_token_embd"] = types["token_embd.weight"] == "Q8_0"
    print("weights: HF == independent dequant (Q/K un-permuted), bitwise:", bool(ok))
    assert ok

    # --- llama.cpp: tokenizer, greedy, teacher-forced logits
    no_extra_bufts(llama_cpp)
    vocab = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    lcpp = llama_cpp.Llama(model_path=model_path, n_threads=2, n_threads_batch=2, n_ctx=512, n_batch=512,
                           logits_all=True, seed=0, verbose=False)

    def lcpp_greedy(ids, n):
        outs = []
        for t in lcpp.generate(ids, top_k=1, top_p=1.0, min_p=0.0, typical_p=1.0, temp=0.0,
                               repeat_penalty=1.0, reset=True):
            outs.append(int(t))
            if t == EOS_ID or len(outs) >= n:
                break
        return outs

    def lcpp_logits(ids):
        lcpp.reset()
        lcpp.eval(ids)
        return np.array(lcpp.scores[:len(ids)], dtype=np.float32)

    from transformers import AutoTokenizer
    hf_tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)

    tensors, prompts_json, summary = {}, [], []
    for i, (name, content, chat) in enumerate(PROMPTS):
        text = render_chat(template, content) if chat else content
        ids = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        P = len(ids)
        hf_tok_ids = hf_tok(text, add_special_tokens=False).input_ids
        inp = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            gen = hf.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=args.new_tokens,
                              do_sample=False, num_beams=1, eos_token_id=EOS_ID, pad_token_id=EOS_ID,
                              temperature=None, top_p=None, top_k=None)
        out_ids = gen[0, P:].tolist()
        # HF stops after EOS (the EOS is included in its output); cut there explicitly too
        eos_at = out_ids.index(EOS_ID) if EOS_ID in out_ids else -1
        if eos_at >= 0:
            out_ids = out_ids[:eos_at + 1]
        seq = ids + out_ids
        with torch.no_grad():
            logits = hf(torch.tensor([seq]), use_cache=False).logits[0].to(torch.float64).numpy()
        # consistency: greedy ids are the argmax of the one-pass logits
        am = logits.argmax(-1)
        gen_consistent = all(int(am[P - 1 + j]) == out_ids[j] for j in range(len(out_ids)))
        top_idx = np.argsort(-logits, axis=-1, kind="stable")[:, :TOP_K].astype(np.int32)
        top_val = np.take_along_axis(logits, top_idx, axis=-1).astype(np.float32)
        mx = logits.max(-1, keepdims=True)
        lse = (mx[:, 0] + np.log(np.exp(logits - mx).sum(-1))).astype(np.float32)
        margin = (top_val[:, 0].astype(np.float64) - top_val[:, 1]).astype(np.float32)
        pre = f"p{i}."
        tensors[pre + "prompt_ids"] = np.array(ids, dtype=np.int32)
        tensors[pre + "output_ids"] = np.array(out_ids, dtype=np.int32)
        tensors[pre + "top_idx"] = top_idx
        tensors[pre + "top_val"] = top_val
        tensors[pre + "lse"] = lse
        tensors[pre + "margin"] = margin
        tensors[pre + "last_logits"] = logits[P - 1].astype(np.float32)
        # independent float64 forward (GGUF layout, ggml rope) vs HF float32
        ref64 = np_forward(W, cfg, seq)
        d64 = np.abs(logits - ref64)
        rel64 = float(d64.max() / np.abs(ref64).max())
        am64_ok = bool((ref64.argmax(-1) == am).all())
        # llama.cpp
        lc_out = lcpp_greedy(ids, args.new_tokens)
        tensors[pre + "llama_cpp_output_ids"] = np.array(lc_out, dtype=np.int32)
        div = next((j for j in range(min(len(lc_out), len(out_ids))) if lc_out[j] != out_ids[j]), None)
        if div is None and len(lc_out) != len(out_ids):
            div = min(len(lc_out), len(out_ids))
        lcl = lcpp_logits(seq).astype(np.float64)
        dl = np.abs(lcl - logits)
        lc_top1 = float((lcl.argmax(-1) == am).mean())
        entry = dict(index=i, name=name, chat=chat, text=text, prompt_tokens=P,
                     hf_output_tokens=len(out_ids), hf_eos=eos_at >= 0, hf_eos_at=eos_at,
                     hf_output_text=vocab.detokenize(out_ids).decode("utf-8", "replace"),
                     llama_cpp_output_tokens=len(lc_out),
                     llama_cpp_first_divergence=div,
                     llama_cpp_output_text=vocab.detokenize(lc_out).decode("utf-8", "replace"))
        if chat:
            entry["messages"] = content
        prompts_json.append(entry)
        s = dict(name=name, P=P, G=len(out_ids), eos=eos_at, hf_tokenizer_agrees=hf_tok_ids == ids, gen_consistent=gen_consistent,
                 min_margin_gen=float(margin[P - 1:P - 1 + len(out_ids)].min()),
                 near_ties_1e3=int((margin < 1e-3).sum()), near_ties_1e2=int((margin < 1e-2).sum()),
                 hf32_vs_np64_max_abs=float(d64.max()), hf32_vs_np64_rel=rel64, argmax_eq_np64=am64_ok,
                 lcpp_div=div, lcpp_teacher_top1_agree=lc_top1, lcpp_max_abs=float(dl.max()),
                 lcpp_mean_abs=float(dl.mean()), logit_absmax=float(np.abs(logits).max()))
        summary.append(s)
        print(json.dumps(s))
        print("  HF  :", repr(entry["hf_output_text"]))
        print("  lcpp:", repr(entry["llama_cpp_output_text"]))

    meta_out = dict(model=os.path.basename(model_path), top_k=TOP_K, eos_id=EOS_ID, new_tokens=args.new_tokens,
                    versions=versions, checks=checks, summary=summary,
                    note="positions: row t of top_idx/top_val/lse/margin is the logits after prompt_ids+output_ids "
                         "[0..t], i.e. it predicts token t+1; rows = len(prompt_ids)+len(output_ids)")
    st_path = os.path.join(out, "reference.safetensors")
    save_file(tensors, st_path, metadata={"info": json.dumps(meta_out)})
    with open(os.path.join(out, "prompts.json"), "w", encoding="utf-8") as fh:
        json.dump(dict(meta=meta_out, prompts=prompts_json), fh, ensure_ascii=False, indent=1)
        fh.write("\n")

    # --- reload and check
    back = load_file(st_path)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    for i, (name, content, chat) in enumerate(PROMPTS):
        pre = f"p{i}."
        n = len(back[pre + "prompt_ids"]) + len(back[pre + "output_ids"])
        assert back[pre + "top_idx"].shape == (n, TOP_K) and back[pre + "top_val"].shape == (n, TOP_K)
        assert back[pre + "lse"].shape == (n,) and back[pre + "last_logits"].shape == (c.vocab_size,)
        P = len(back[pre + "prompt_ids"])
        ll = back[pre + "last_logits"]
        assert int(ll.argmax()) == int(back[pre + "top_idx"][P - 1, 0])
        assert np.allclose(np.sort(ll)[::-1][:TOP_K], back[pre + "top_val"][P - 1])
        o = back[pre + "output_ids"]
        if len(o):
            assert int(o[0]) == int(back[pre + "top_idx"][P - 1, 0])
        assert (back[pre + "top_val"][:, 0] <= back[pre + "lse"]).all()
    print(f"wrote {st_path} ({os.path.getsize(st_path)} bytes) and prompts.json; reload check ok")


if __name__ == "__main__":
    main()
