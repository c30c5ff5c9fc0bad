"""The lx op set against numpy in float64, with MLX's semantics -- part 2: softmax and
log_softmax, rms_norm / layer_norm / group_norm, rope, scaled dot-product attention, matmul,
convolutions, affine quantization (MLX's packing and rule), random numbers (MLX's threefry).
Part 1 is test_ops_numpy.py (its module docstring states the general tolerance rules).

Tolerances used here, each from the error analysis of the op:
  - dot products of length K accumulated in float32: |err| <= K * eps32 * sum_k |a_k b_k|
    (the classical bound), plus one rounding of the result to the output dtype;
  - softmax: exp and the row sum in float32 -> (n + 8) * eps32 relative, plus the output
    rounding; log_softmax: absolute 8 eps32 * (|x| + |max| + log n);
  - norms: accumulation over the row (n eps32 relative) plus at most two roundings to the
    output dtype (MLX rounds x * rsqrt(...) to the output dtype before multiplying by w);
  - rope: MLX computes the angle (offset + position) * scale * inv_freq in float32, so the
    angle carries |theta| * few eps32 of absolute error and the output |x| times that;
  - quantization: see test_quantize_rule.
Env: LX_LIB (liblx.so).
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lxpy  # noqa: E402
from lxpy import (EPS, LxError, array, check, close, dtype_is, equal, expect_error,  # noqa: E402
                  lx, read, read64, round_to, test)

rng = np.random.default_rng(7777)
EPS32 = EPS["float32"]
HALF = ("float16", "bfloat16")
TINY = {"float16": 2.0 ** -24, "bfloat16": 2.0 ** -133, "float32": 2.0 ** -149,
        "float64": 5e-324}


def vals(dtype, shape, lo=-2.0, hi=2.0):
    return round_to(rng.uniform(lo, hi, tuple(shape)), dtype)


def mk(x, dtype, layout="c"):
    if layout == "t":
        return lxpy.transposed_view(x, dtype)
    if layout == "s":
        return lxpy.strided_view(x, dtype)
    return array(x, dtype)


def acc_eps(dtype):
    return EPS["float64"] if dtype == "float64" else EPS32


# ---- softmax -----------------------------------------------------------------------------
def softmax64(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


@test
def test_softmax_log_softmax():
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        for k, shp in enumerate([(4, 7), (2, 3, 33), (1, 1), (5,), (3, 1, 6)]):
            x = vals(dtype, shp, -6, 6)
            X = mk(x, dtype, "ctc"[k % 3])
            for ax in range(-len(shp), len(shp)):
                n = shp[ax]
                what = "%s %s axis=%d" % (dtype, shp, ax)
                ref = softmax64(x, ax)
                out = lx.softmax(X, ax)
                dtype_is("softmax " + what, out, dtype)
                close("softmax " + what, read64(out), ref,
                      tol=(EPS[dtype] + (n + 8) * acc_eps(dtype)) * ref + TINY[dtype])
                m = np.max(x, axis=ax, keepdims=True)
                lref = x - m - np.log(np.sum(np.exp(x - m), axis=ax, keepdims=True))
                out = lx.log_softmax(X, ax)
                dtype_is("log_softmax " + what, out, dtype)
                close("log_softmax " + what, read64(out), lref,
                      tol=EPS[dtype] * np.abs(lref) +
                      8 * acc_eps(dtype) * (np.abs(x) + np.abs(m) + np.log(n) + 1))
    # half inputs accumulate in float32: 4096 equal logits give exactly 1/4096 each, which a
    # float16 accumulator cannot reach (the sum would stall at 2048)
    x = np.zeros((1, 4096))
    for dtype in HALF:
        close("softmax %s 4096 equal logits (float32 accumulation)" % dtype,
              read64(lx.softmax(array(x, dtype), -1)), np.full((1, 4096), 1 / 4096.0),
              rtol=EPS[dtype])
    # large logits: stable (no overflow), -inf entries give exactly 0
    inf = float("inf")
    x = np.array([[1000.0, 1000.0, -inf], [-1000.0, 0.0, -inf], [0.0, 0.0, 0.0]])
    close("softmax large/-inf", read64(lx.softmax(array(x, "float32"), 1)), softmax64(x, 1),
          rtol=8 * EPS32, atol=TINY["float32"])
    out = read64(lx.log_softmax(array(x, "float32"), 1))
    check(np.isneginf(out[0, 2]) and np.isneginf(out[1, 2]), "log_softmax(-inf) is -inf")
    nan = float("nan")
    out = read64(lx.softmax(array(np.array([[nan, 1.0], [1.0, 2.0]]), "float32"), 1))
    check(np.all(np.isnan(out[0])) and not np.any(np.isnan(out[1])),
          "softmax NaN stays in its row: %s" % out)
    # integer input -> float32 output
    out = lx.softmax(array(np.array([[1, 2, 3]], np.int32)), 1)
    dtype_is("softmax int32", out, "float32")
    close("softmax int32", read64(out), softmax64(np.array([[1.0, 2, 3]]), 1), rtol=16 * EPS32)
    # empty
    equal("softmax empty", read64(lx.softmax(array(np.zeros((0, 4)), "float32"), 1)),
          np.zeros((0, 4)))


# ---- norms -------------------------------------------------------------------------------
@test
def test_rms_norm():
    for xd, wd in [("float32", "float32"), ("float16", "float16"), ("bfloat16", "bfloat16"),
                   ("float16", "float32"), ("float32", None), ("bfloat16", None),
                   ("float64", "float64")]:
        for k, shp in enumerate([(3, 16), (2, 5, 64), (1, 1), (4, 1, 7), (0, 8)]):
            x = vals(xd, shp, -3, 3)
            d = shp[-1]
            w = vals(wd, (d,), 0.5, 1.5) if wd else None
            eps = float(np.float32(1e-5))  # lx takes eps as a C float
            r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
            ref = x * r * (w if wd else 1.0)
            out_dt = xd if wd is None else lxpy.mlx_promote(xd, wd)
            what = "rms_norm x=%s w=%s %s" % (xd, wd, shp)
            try:
                out = lx.rms_norm(mk(x, xd, "cts"[k % 3]), array(w, wd) if wd else None, eps)
            except LxError as e:
                check(False, "%s: %s" % (what, e))
                continue
            dtype_is(what, out, out_dt)
            # mean of squares over d in float32 (d eps32), rsqrt (2 eps32), two roundings to
            # the output dtype
            tol = (2 * EPS[out_dt] + (d + 4) * acc_eps(out_dt)) * np.abs(ref) + TINY[out_dt]
            close(what, read64(out), ref, tol=tol)
    # eps matters for tiny rows; zeros stay zeros
    x = np.zeros((2, 8))
    equal("rms_norm of zeros", read64(lx.rms_norm(array(x, "float32"), None, 1e-6)), x)
    x = np.full((1, 4), 1e-3)
    close("rms_norm eps", read64(lx.rms_norm(array(x, "float32"), None, 1e-4)),
          x / np.sqrt(1e-6 + 1e-4), rtol=8 * EPS32)
    expect_error("rms_norm weight size", lambda: lx.rms_norm(
        array(np.ones((2, 4)), "float32"), array(np.ones(3), "float32"), 1e-5))


@test
def test_layer_norm():
    for xd, wd, bd in [("float32", "float32", "float32"), ("float16", "float16", "float16"),
                       ("bfloat16", "bfloat16", None), ("float32", None, None),
                       ("float64", "float64", "float64"),
                       ("float32", None, "float32"), ("float16", None, None)]:
        for k, shp in enumerate([(3, 16), (2, 5, 64), (4, 1, 7), (1, 1)]):
            x = vals(xd, shp, -3, 3) + 1.0
            x = round_to(x, xd)
            d = shp[-1]
            w = vals(wd, (d,), 0.5, 1.5) if wd else None
            b = vals(bd, (d,), -1, 1) if bd else None
            eps = float(np.float32(1e-5))  # lx takes eps as a C float
            mu = np.mean(x, -1, keepdims=True)
            xc = x - mu
            var = np.mean(xc * xc, -1, keepdims=True)
            n = xc / np.sqrt(var + eps)
            ref = n * (w if wd else 1.0) + (b if bd else 0.0)
            out_dt = xd
            for t in (wd, bd):
                if t:
                    out_dt = lxpy.mlx_promote(out_dt, t)
            what = "layer_norm x=%s w=%s b=%s %s" % (xd, wd, bd, shp)
            out = lx.layer_norm(mk(x, xd, "cts"[k % 3]), array(w, wd) if wd else None,
                                array(b, bd) if bd else None, eps)
            dtype_is(what, out, out_dt)
            # the centred values carry d eps32 |x| / sigma of error (mean in float32)
            sig = np.sqrt(var + eps)
            tol = (3 * EPS[out_dt]) * (np.abs(n * (w if wd else 1.0)) + np.abs(b if bd else 0.0)) \
                + (d + 4) * acc_eps(out_dt) * (np.abs(n) + np.max(np.abs(x), -1, keepdims=True)
                                               / sig) * (np.abs(w) if wd else 1.0) + TINY[out_dt]
            close(what, read64(out), ref, tol=tol)
    # a constant row normalises to 0 (+ bias)
    x = np.full((2, 8), 3.0)
    b = np.arange(8.0)
    close("layer_norm constant row", read64(lx.layer_norm(array(x, "float32"), None,
                                                         array(b, "float32"), 1e-5)),
          np.broadcast_to(b, (2, 8)), atol=1e-6)


@test
def test_group_norm():
    # channels-last [N, ..., C]; group g holds channels [g*C/G, (g+1)*C/G): the grouping of
    # MLX's nn.GroupNorm(pytorch_compatible=True) and of PyTorch (MLX's default
    # pytorch_compatible=False groups channel c with c % G instead; lx_group_norm has no
    # flag, and the diffusion models use the PyTorch grouping)
    for dtype in ("float32", "float16"):
        for shp, G in [((2, 5, 6, 8), 4), ((1, 7, 6), 3), ((3, 4, 4, 4), 1), ((2, 3, 3, 4), 4)]:
            x = vals(dtype, shp, -2, 2)
            C = shp[-1]
            w = vals(dtype, (C,), 0.5, 1.5)
            b = vals(dtype, (C,), -1, 1)
            N = shp[0]
            xg = x.reshape(N, -1, G, C // G)
            mu = xg.mean(axis=(1, 3), keepdims=True)
            var = ((xg - mu) ** 2).mean(axis=(1, 3), keepdims=True)
            nrm = ((xg - mu) / np.sqrt(var + 1e-5)).reshape(shp)
            ref = nrm * w + b
            out = lx.group_norm(array(x, dtype), G, array(w, dtype), array(b, dtype), 1e-5)
            dtype_is("group_norm", out, dtype)
            m = x[0].size // G
            tol = 3 * EPS[dtype] * (np.abs(nrm * w) + np.abs(b)) + \
                (m + 4) * EPS32 * (np.abs(nrm) + 3 / np.sqrt(var.min() + 1e-5)) * np.abs(w)
            close("group_norm %s %s G=%d" % (dtype, shp, G), read64(out), ref, tol=tol)
            out = lx.group_norm(array(x, dtype), G, None, None, 1e-5)
            close("group_norm no affine %s %s G=%d" % (dtype, shp, G), read64(out), nrm,
                  tol=3 * EPS[dtype] * np.abs(nrm) + (m + 4) * EPS32 *
                  (np.abs(nrm) + 3 / np.sqrt(var.min() + 1e-5)))


# ---- rope --------------------------------------------------------------------------------
def rope_ref(x, dims, traditional, base, scale, offset, freqs=None):
    """MLX fast.rope (mlx/fast.cpp fallback) in float64: positions on axis -2."""
    x = np.asarray(x, dtype=np.float64)
    L = x.shape[-2]
    half = dims // 2
    pos = (np.arange(L) + offset) * scale
    if freqs is None:
        inv = np.exp(-np.arange(half) * (np.log(base) / half))
    else:
        inv = 1.0 / np.asarray(freqs, dtype=np.float64)
    theta = pos[:, None] * inv[None, :]
    c, s = np.cos(theta), np.sin(theta)
    out = x.copy()
    if traditional:
        x1, x2 = x[..., 0:dims:2], x[..., 1:dims:2]
        out[..., 0:dims:2] = x1 * c - x2 * s
        out[..., 1:dims:2] = x1 * s + x2 * c
    else:
        x1, x2 = x[..., :half], x[..., half:dims]
        out[..., :half] = x1 * c - x2 * s
        out[..., half:dims] = x1 * s + x2 * c
    return out, theta


def _rope_tol(dtype, x, ref, theta, dims, traditional):
    # angle error |theta| * 4 eps32 (float32 angle), cos/sin 2 eps32, one or two roundings
    th = np.zeros(x.shape[-2:])
    half = dims // 2
    idx = np.arange(dims)
    cols = (idx // 2) if traditional else (idx % half)
    th[:, :dims] = np.abs(theta[:, cols])
    mag = np.abs(x).max(axis=-1, keepdims=True)
    return 2 * EPS[dtype] * np.abs(ref) + (4 * EPS32 * (1 + th) + 2 * EPS[dtype]) * mag \
        + TINY[dtype]


@test
def test_rope():
    for dtype in ("float32", "float16", "bfloat16"):
        for shp, dims, trad, base, scale, offset in [
                ((1, 2, 5, 8), 8, False, 10000.0, 1.0, 0),
                ((2, 3, 7, 16), 16, True, 10000.0, 1.0, 3),
                ((1, 4, 6, 32), 16, False, 500000.0, 0.5, 100),
                ((1, 2, 3, 12), 8, True, 10.0, 2.0, 4000),
                ((2, 1, 1, 64), 64, False, 10000.0, 1.0, 777),   # one decode step
                ((3, 9, 10), 10, False, 10000.0, 1.0, 1),         # 3-d input
                ((2, 2, 2, 4, 8), 8, False, 10000.0, 1.0, 0)]:    # 5-d input
            x = vals(dtype, shp, -2, 2)
            ref, theta = rope_ref(x, dims, trad, base, scale, offset)
            what = "rope %s %s dims=%d trad=%s base=%g scale=%g offset=%d" % (
                dtype, shp, dims, trad, base, scale, offset)
            try:
                out = lx.rope(mk(x, dtype, "t" if len(shp) == 4 else "c"), dims, trad, base,
                              scale, offset)
            except LxError as e:
                check(False, "%s: %s" % (what, e))
                continue
            dtype_is(what, out, dtype)
            close(what, read64(out), ref, tol=_rope_tol(dtype, x, ref, theta, dims, trad))
    # custom frequencies (Llama 3 scaling): the angle is p * scale / freqs[i]
    for trad in (False, True):
        x = vals("float32", (1, 2, 6, 16))
        freqs = np.exp(np.linspace(0, 6, 8)) * rng.uniform(1, 2, 8)
        freqs = round_to(freqs, "float32")
        ref, theta = rope_ref(x, 16, trad, None, 1.0, 5, freqs)
        out = lx.rope_freqs(array(x, "float32"), 16, trad, array(freqs, "float32"), 1.0, 5)
        close("rope_freqs trad=%s" % trad, read64(out), ref,
              tol=_rope_tol("float32", x, ref, theta, 16, trad))
    expect_error("rope odd dims", lambda: lx.rope(array(np.ones((1, 1, 2, 8)), "float32"), 7,
                                                  False, 10000.0, 1.0, 0))
    expect_error("rope dims > D", lambda: lx.rope(array(np.ones((1, 1, 2, 8)), "float32"), 16,
                                                  False, 10000.0, 1.0, 0))
    expect_error("rope_freqs wrong size", lambda: lx.rope_freqs(
        array(np.ones((1, 1, 2, 8)), "float32"), 8, False, array(np.ones(3), "float32"), 1.0, 0))


# ---- sdpa --------------------------------------------------------------------------------
def sdpa_ref(q, k, v, scale, causal=False, mask=None, sinks=None):
    """MLX fast.scaled_dot_product_attention in float64 (grouped-query heads; causal aligned
    bottom-right: query i sees keys j <= i + Lk - Lq)."""
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    rep = Hq // Hkv
    kk = np.repeat(k, rep, axis=1)
    vv = np.repeat(v, rep, axis=1)
    s = scale * np.einsum("bhqd,bhkd->bhqk", q, kk)
    if causal:
        keep = (np.arange(Lq)[:, None] + (Lk - Lq)) >= np.arange(Lk)[None, :]
        s = np.where(keep, s, -np.inf)
    if mask is not None:
        if mask.dtype == np.bool_:
            s = np.where(mask, s, -np.inf)
        else:
            s = s + mask
    if sinks is not None:
        sk = np.broadcast_to(np.asarray(sinks, np.float64)[None, :, None, None], (B, Hq, Lq, 1))
        s = np.concatenate([sk, s], -1)
    m = np.max(s, -1, keepdims=True)
    p = np.exp(s - m)
    p = p / p.sum(-1, keepdims=True)
    if sinks is not None:
        p = p[..., 1:]
    return np.einsum("bhqk,bhkd->bhqd", p, vv), p


def _sdpa_tol(dtype, ref, p, v, D, Lk, q_scale_mag):
    # scores: D-term dot products (D eps32 |q||k|) -> relative weight error ~ score error;
    # the output sums Lk terms: (Lk + D + 8) eps32 * sum p|v| plus output rounding; half
    # inputs add one rounding of q*scale (MLX scales q in its dtype first)
    pv = np.einsum("bhqk,bhkd->bhqd", p, np.abs(np.repeat(v, ref.shape[1] // v.shape[1], 1)))
    e = EPS[dtype] if dtype in HALF else 0.0
    return 2 * EPS[dtype] * np.abs(ref) + ((Lk + D + 8) * EPS32 + 2 * e * q_scale_mag) * pv \
        + TINY[dtype]


@test
def test_sdpa():
    for dtype in ("float32", "float16", "bfloat16"):
        for B, Hq, Hkv, Lq, Lk, D, causal, mkind in [
                (1, 4, 4, 5, 5, 16, False, None), (2, 8, 2, 6, 6, 32, True, None),
                (1, 4, 1, 3, 11, 16, True, None),        # prefill chunk: bottom-right causal
                (2, 6, 3, 1, 9, 64, True, None),         # decode step
                (1, 4, 2, 4, 7, 16, False, "bool"), (2, 4, 4, 5, 5, 8, False, "add"),
                (1, 2, 1, 3, 6, 16, True, "bool_bcast"), (1, 4, 2, 4, 4, 16, False, "add_head")]:
            q = vals(dtype, (B, Hq, Lq, D), -1, 1)
            k = vals(dtype, (B, Hkv, Lk, D), -1, 1)
            v = vals(dtype, (B, Hkv, Lk, D), -1, 1)
            scale = 1.0 / math.sqrt(D)
            mask_np, mask_lx = None, None
            if mkind == "bool":
                mask_np = rng.random((B, Hq, Lq, Lk)) < 0.7
                mask_np[..., 0] = True  # every row sees a key
                mask_lx = array(mask_np)
            elif mkind == "bool_bcast":
                mask_np = rng.random((Lq, Lk)) < 0.6
                mask_np[:, -1] = True
                mask_lx = array(mask_np)
            elif mkind == "add":
                mask_np = round_to(rng.uniform(-3, 0, (B, 1, Lq, Lk)), dtype)
                mask_lx = array(mask_np, dtype)
            elif mkind == "add_head":
                mask_np = round_to(rng.uniform(-2, 1, (Hq, 1, Lk)), dtype)
                mask_lx = array(mask_np, dtype)
            ref, p = sdpa_ref(q, k, v, scale, causal, mask_np)
            what = "sdpa %s B=%d Hq=%d Hkv=%d Lq=%d Lk=%d D=%d causal=%s mask=%s" % (
                dtype, B, Hq, Hkv, Lq, Lk, D, causal, mkind)
            try:
                out = lx.sdpa(mk(q, dtype, "t"), array(k, dtype), mk(v, dtype, "s"), scale,
                              causal, mask_lx)
            except LxError as e:
                check(False, "%s: %s" % (what, e))
                continue
            dtype_is(what, out, dtype)
            close(what, read64(out), ref, tol=_sdpa_tol(dtype, ref, p, v, D, Lk, 1.0))
    # values with their own head size (Dv != D)
    q, k = vals("float32", (2, 4, 3, 16)), vals("float32", (2, 2, 6, 16))
    v = vals("float32", (2, 2, 6, 24))
    ref, p = sdpa_ref(q, k, v, 0.25, True)
    try:
        close("sdpa Dv=24 != D=16", read64(lx.sdpa(array(q, "float32"), array(k, "float32"),
                                                   array(v, "float32"), 0.25, True, None)), ref,
              tol=_sdpa_tol("float32", ref, p, v, 16, 6, 1.0))
    except LxError as e:
        check(False, "sdpa Dv != D: %s" % e)
    # attention sinks: one extra logit per query head in the softmax denominator
    q, k, v = vals("float32", (1, 4, 3, 16)), vals("float32", (1, 2, 5, 16)), \
        vals("float32", (1, 2, 5, 16))
    sinks = vals("float32", (4,), -1, 2)
    for causal in (False, True):
        ref, p = sdpa_ref(q, k, v, 0.25, causal, None, sinks)
        out = lx.sdpa_sinks(array(q, "float32"), array(k, "float32"), array(v, "float32"), 0.25,
                            causal, None, array(sinks, "float32"))
        close("sdpa_sinks causal=%s" % causal, read64(out), ref,
              tol=_sdpa_tol("float32", ref, p, v, 16, 5, 1.0))
    # a large Lk (more keys than one block) and large score magnitudes
    q, k, v = vals("float32", (1, 2, 2, 64), -3, 3), vals("float32", (1, 2, 700, 64), -3, 3), \
        vals("float32", (1, 2, 700, 64))
    ref, p = sdpa_ref(q, k, v, 0.5, True)
    close("sdpa Lk=700 causal", read64(lx.sdpa(array(q, "float32"), array(k, "float32"),
                                               array(v, "float32"), 0.5, True, None)), ref,
          tol=_sdpa_tol("float32", ref, p, v, 64, 700, 1.0) * 4)
    expect_error("sdpa Hq not a multiple of Hkv", lambda: lx.sdpa(
        array(np.ones((1, 3, 2, 4)), "float32"), array(np.ones((1, 2, 2, 4)), "float32"),
        array(np.ones((1, 2, 2, 4)), "float32"), 1.0, False, None))
    expect_error("sdpa D mismatch", lambda: lx.sdpa(
        array(np.ones((1, 2, 2, 4)), "float32"), array(np.ones((1, 2, 2, 8)), "float32"),
        array(np.ones((1, 2, 2, 8)), "float32"), 1.0, False, None))


# ---- matmul ------------------------------------------------------------------------------
def _mm_tol(dtype, a, b, ref, K):
    ab = np.matmul(np.abs(a), np.abs(b))
    return EPS[dtype] * np.abs(ref) + K * acc_eps(dtype) * ab + TINY[dtype]


@test
def test_matmul():
    cases = [((3, 4), (4, 5)), ((1, 64), (64, 33)), ((2, 3, 4), (4, 6)), ((4,), (4, 3)),
             ((3, 4), (4,)), ((5,), (5,)), ((2, 1, 3, 4), (5, 4, 2)), ((7, 1, 8), (1, 8, 9)),
             ((0, 4), (4, 3)), ((3, 0), (0, 2)), ((65, 130), (130, 67)), ((2, 17, 31), (2, 31, 3))]
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        for k, (sa, sb) in enumerate(cases):
            a, b = vals(dtype, sa, -1, 1), vals(dtype, sb, -1, 1)
            ref = np.matmul(a, b)
            K = sa[-1]
            what = "matmul %s %s @ %s" % (dtype, sa, sb)
            try:
                out = lx.matmul(mk(a, dtype, "cts"[k % 3]), mk(b, dtype, "tsc"[k % 3]))
            except LxError as e:
                check(False, "%s: %s" % (what, e))
                continue
            dtype_is(what, out, dtype)
            if a.ndim == 1 and b.ndim == 1:
                tol = EPS[dtype] * abs(ref) + K * acc_eps(dtype) * np.abs(a) @ np.abs(b)
            else:
                tol = _mm_tol(dtype, a, b, ref, K)
            close(what, read64(out), ref, tol=tol)
    # mixed dtypes promote
    out = lx.matmul(array(vals("float16", (2, 3)), "float16"), array(vals("float32", (3, 2)),
                                                                     "float32"))
    dtype_is("matmul f16 @ f32", out, "float32")
    # W^T form used by GEMV: x [1, K] @ transpose(W [N, K])
    W = vals("float32", (40, 96), -1, 1)
    x = vals("float32", (1, 96), -1, 1)
    ref = x @ W.T
    close("matmul x @ W^T (transposed view)",
          read64(lx.matmul(array(x, "float32"), lx.transpose(array(W, "float32"), None, 0))),
          ref, tol=_mm_tol("float32", x, W.T, ref, 96))
    # NaN / Inf propagate through the dot products
    a = np.array([[1.0, float("nan")], [1.0, 2.0]])
    b = np.array([[1.0, 0.0], [0.0, float("inf")]])
    with np.errstate(all="ignore"):
        equal("matmul NaN/Inf", read64(lx.matmul(array(a, "float32"), array(b, "float32"))),
              a @ b)
    expect_error("matmul inner mismatch",
                 lambda: lx.matmul(array(np.ones((2, 3)), "float32"),
                                   array(np.ones((4, 2)), "float32")), lxpy.E_SHAPE)
    expect_error("matmul 0-d", lambda: lx.matmul(array(np.float32(1)),
                                                 array(np.ones((1, 2)), "float32")))
    # MLX refuses integer matmul ("Only inexact types are supported")
    # MLX refuses integer matmul ("Only inexact types are supported"); an lx that accepts it
    # (an extension) must at least compute it exactly
    ia = rng.integers(-50, 50, (3, 4)).astype(np.int32)
    ib = rng.integers(-50, 50, (4, 2)).astype(np.int32)
    try:
        out = lx.matmul(array(ia), array(ib))
        equal("matmul int32 (accepted as an extension of MLX)", read(out).astype(np.int64),
              ia.astype(np.int64) @ ib)
    except LxError:
        check(True, "matmul int32 refused, as MLX")
    # addmm: c * beta + (a @ b) * alpha, c broadcast
    a, b, c = vals("float32", (3, 5)), vals("float32", (5, 4)), vals("float32", (4,))
    ref = c * 0.5 + (a @ b) * 2.0
    close("addmm", read64(lx.addmm(array(c, "float32"), array(a, "float32"),
                                    array(b, "float32"), 2.0, 0.5)), ref,
          tol=2 * _mm_tol("float32", a, b, ref, 5) + 4 * EPS32 * np.abs(c))


# ---- convolutions ------------------------------------------------------------------------
def conv_ref(x, w, stride, padding, dilation, groups):
    """Channels-last N-d convolution (cross-correlation, as MLX): x [N, *S, Cin],
    w [Cout, *K, Cin/groups]."""
    nd = x.ndim - 2
    N, Cin = x.shape[0], x.shape[-1]
    Cout = w.shape[0]
    ks = w.shape[1:-1]
    xp = np.pad(x, [(0, 0)] + [(p, p) for p in padding] + [(0, 0)])
    outs = [(xp.shape[1 + i] - dilation[i] * (ks[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    out = np.zeros([N] + outs + [Cout])
    cig, cog = Cin // groups, Cout // groups
    for g in range(groups):
        xs = xp[..., g * cig:(g + 1) * cig]
        ws = w[g * cog:(g + 1) * cog]
        for kidx in np.ndindex(*ks):
            sl = tuple(slice(kidx[i] * dilation[i],
                             kidx[i] * dilation[i] + stride[i] * (outs[i] - 1) + 1, stride[i])
                       for i in range(nd))
            patch = xs[(slice(None),) + sl]
            out[..., g * cog:(g + 1) * cog] += patch @ ws[(slice(None),) + kidx].T
    return out


def conv_transpose1d_ref(x, w, stride, padding, dilation, output_padding, groups):
    """MLX conv_transpose1d: out[t] += x[l] * w[co, k, ci] with t = l*stride + k*dilation -
    padding (PyTorch's conv_transpose1d with weight w.transpose(2, 0, 1))."""
    N, L, Cin = x.shape
    Cout, K = w.shape[0], w.shape[1]
    Lout = (L - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1
    out = np.zeros((N, Lout, Cout))
    cig, cog = Cin // groups, Cout // groups
    for g in range(groups):
        for l in range(L):
            for kk in range(K):
                t = l * stride + kk * dilation - padding
                if 0 <= t < Lout:
                    out[:, t, g * cog:(g + 1) * cog] += \
                        x[:, l, g * cig:(g + 1) * cig] @ w[g * cog:(g + 1) * cog, kk, :].T
    return out


def _conv_tol(dtype, ref, absref, fan_in):
    return EPS[dtype] * np.abs(ref) + fan_in * acc_eps(dtype) * absref + TINY[dtype]


@test
def test_conv():
    for dtype in ("float32", "float16"):
        for (N, L, Cin, Cout, K, s, p, d, g) in [(2, 10, 3, 4, 3, 1, 0, 1, 1),
                                                 (1, 17, 4, 6, 5, 2, 2, 1, 2),
                                                 (2, 9, 6, 6, 3, 1, 2, 2, 6),
                                                 (1, 8, 2, 3, 1, 3, 0, 1, 1)]:
            x = vals(dtype, (N, L, Cin))
            w = vals(dtype, (Cout, K, Cin // g))
            ref = conv_ref(x, w, [s], [p], [d], g)
            absref = conv_ref(np.abs(x), np.abs(w), [s], [p], [d], g)
            what = "conv1d %s x%s w%s s=%d p=%d d=%d g=%d" % (dtype, x.shape, w.shape, s, p, d, g)
            try:
                out = lx.conv1d(mk(x, dtype, "t"), array(w, dtype), s, p, d, g)
            except LxError as e:
                check(False, "%s: %s" % (what, e))
                continue
            dtype_is(what, out, dtype)
            close(what, read64(out), ref, tol=_conv_tol(dtype, ref, absref, K * Cin // g))
        for (N, H, W, Cin, Cout, KH, KW, st, pd, dl, g) in [
                (1, 6, 7, 3, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
                (2, 9, 8, 4, 6, 3, 2, (2, 1), (0, 1), (1, 2), 2),
                (1, 5, 5, 4, 4, 3, 3, (1, 1), (1, 1), (1, 1), 4)]:
            x = vals(dtype, (N, H, W, Cin))
            w = vals(dtype, (Cout, KH, KW, Cin // g))
            ref = conv_ref(x, w, st, pd, dl, g)
            absref = conv_ref(np.abs(x), np.abs(w), st, pd, dl, g)
            what = "conv2d %s x%s w%s s=%s p=%s d=%s g=%d" % (dtype, x.shape, w.shape, st, pd,
                                                              dl, g)
            try:
                out = lx.conv2d(mk(x, dtype, "s"), array(w, dtype), list(st), list(pd), list(dl),
                                g)
            except LxError as e:
                check(False, "%s: %s" % (what, e))
                continue
            dtype_is(what, out, dtype)
            close(what, read64(out), ref, tol=_conv_tol(dtype, ref, absref, KH * KW * Cin // g))
        for (N, L, Cin, Cout, K, s, p, d, op, g) in [(1, 5, 3, 2, 3, 1, 0, 1, 0, 1),
                                                     (2, 6, 4, 6, 4, 2, 1, 1, 1, 1),
                                                     (1, 4, 2, 2, 3, 3, 0, 2, 0, 1),
                                                     (1, 5, 4, 4, 3, 2, 1, 1, 0, 2)]:
            x = vals(dtype, (N, L, Cin))
            w = vals(dtype, (Cout, K, Cin // g))
            ref = conv_transpose1d_ref(x, w, s, p, d, op, g)
            absref = conv_transpose1d_ref(np.abs(x), np.abs(w), s, p, d, op, g)
            what = "conv_transpose1d %s x%s w%s s=%d p=%d d=%d op=%d g=%d" % (
                dtype, x.shape, w.shape, s, p, d, op, g)
            try:
                out = lx.conv_transpose1d(array(x, dtype), array(w, dtype), s, p, d, op, g)
            except LxError as e:
                check(False, "%s: %s" % (what, e))
                continue
            close(what, read64(out), ref, tol=_conv_tol(dtype, ref, absref, K * Cin))
    x = vals("float32", (2, 3, 4, 5))
    for sh, sw in [(2, 2), (1, 3), (3, 1)]:
        equal("upsample_nearest %dx%d" % (sh, sw),
              read64(lx.upsample_nearest(mk(x, "float32", "t"), sh, sw)),
              np.repeat(np.repeat(x, sh, 1), sw, 2))
    expect_error("conv1d channel mismatch", lambda: lx.conv1d(
        array(np.ones((1, 5, 3)), "float32"), array(np.ones((2, 3, 2)), "float32"), 1, 0, 1, 1))


# ---- affine quantization -----------------------------------------------------------------
def mlx_quantize(w, group_size, bits):
    """MLX's affine quantization (mlx/backend/cpu/quantized.cpp `quantize`, float32
    arithmetic as there): returns q (uint, [..., K]), scale and bias (float32, per group,
    before rounding to w's dtype)."""
    f = np.float32
    n_bins = f((1 << bits) - 1)
    g = np.asarray(w, dtype=np.float32).reshape(-1, group_size)
    wmax, wmin = g.max(1), g.min(1)
    mask = np.abs(wmin) > np.abs(wmax)
    scale = np.maximum((wmax - wmin) / n_bins, f(1e-7))
    scale = np.where(mask, scale, -scale).astype(np.float32)
    edge = np.where(mask, wmin, wmax).astype(np.float32)
    q0 = np.rint(edge / scale)
    nz = q0 != 0
    scale = np.where(nz, edge / np.where(nz, q0, f(1)), scale).astype(np.float32)
    bias = np.where(nz, edge, f(0)).astype(np.float32)
    q = np.clip(np.rint((g - bias[:, None]) / scale[:, None]), 0, n_bins)
    shp = np.shape(w)
    return q.astype(np.uint32).reshape(shp), scale.reshape(shp[:-1] + (-1,)), \
        bias.reshape(shp[:-1] + (-1,)), (g - bias[:, None]) / scale[:, None]


def pack(q, bits):
    """MLX's packing: along the last axis, value j at bit j*bits of a little-endian stream of
    uint32 words (for bits 2/4/8: value j of a word at bit j*bits of that word)."""
    q = np.asarray(q, dtype=np.uint64)
    K = q.shape[-1]
    nw = K * bits // 32
    flat = q.reshape(-1, K)
    out = np.zeros((flat.shape[0], nw + 1), dtype=np.uint64)
    for j in range(K):
        o = j * bits
        wi, sh = o // 32, o % 32
        v = flat[:, j] << np.uint64(sh)
        out[:, wi] |= v & np.uint64(0xFFFFFFFF)
        out[:, wi + 1] |= v >> np.uint64(32)
    return out[:, :nw].astype(np.uint32).reshape(q.shape[:-1] + (nw,))


def unpack(wq, bits, K):
    wq = np.asarray(wq, dtype=np.uint64)
    flat = wq.reshape(-1, wq.shape[-1])
    ext = np.concatenate([flat, np.zeros((flat.shape[0], 1), np.uint64)], 1)
    out = np.zeros((flat.shape[0], K), dtype=np.uint64)
    mask = np.uint64((1 << bits) - 1)
    for j in range(K):
        o = j * bits
        wi, sh = o // 32, o % 32
        v = (ext[:, wi] >> np.uint64(sh)) | (ext[:, wi + 1] << np.uint64(32 - sh))
        out[:, j] = v & mask
    return out.reshape(wq.shape[:-1] + (K,))


def dequant64(q, scales, biases, group_size):
    shp = q.shape
    qg = q.reshape(-1, group_size).astype(np.float64)
    s = np.asarray(scales, np.float64).reshape(-1, 1)
    b = np.asarray(biases, np.float64).reshape(-1, 1)
    return (qg * s + b).reshape(shp)


@test
def test_quantize_rule():
    for dtype in ("float32", "float16", "bfloat16"):
        for bits in (2, 3, 4, 5, 6, 8):
            for gs in (32, 64, 128):
                shp = (6, 2 * gs) if bits != 3 else (3, 2, 2 * gs)
                w = round_to(rng.standard_normal(shp) * 0.05, dtype)
                w[0, ..., :gs] = round_to(rng.uniform(-1, 0.99, gs), dtype)  # |min|>|max| group
                w[1, ..., :gs] = 0.0                                        # constant group
                what = "quantize %s bits=%d group=%d %s" % (dtype, bits, gs, shp)
                try:
                    wq, sc, bi = lxpy.quantize(array(w, dtype), gs, bits)
                except LxError as e:
                    check(False, "%s: %s" % (what, e))
                    continue
                dtype_is(what + " wq", wq, "uint32")
                dtype_is(what + " scales", sc, dtype)
                dtype_is(what + " biases", bi, dtype)
                K = shp[-1]
                gwq, gsc, gbi = read(wq), read64(sc), read64(bi)
                check(gwq.shape == shp[:-1] + (K * bits // 32,),
                      "%s: wq shape %s" % (what, gwq.shape))
                check(gsc.shape == shp[:-1] + (K // gs,), "%s: scales shape %s" % (what, gsc.shape))
                if gwq.shape != shp[:-1] + (K * bits // 32,):
                    continue
                q_ref, s_ref, b_ref, coord = mlx_quantize(w, gs, bits)
                # scales and biases: MLX's float32 values rounded to dtype
                close(what + " scales (MLX rule)", gsc, round_to(s_ref, dtype),
                      rtol=EPS[dtype] if dtype != "float32" else 2 * EPS32)
                close(what + " biases (MLX rule)", gbi, round_to(b_ref, dtype),
                      rtol=EPS[dtype] if dtype != "float32" else 2 * EPS32)
                # the packing: unpacking lx's words with MLX's bit layout gives MLX's q
                # (except where (w - bias) / scale sits within 1e-4 of a rounding tie)
                q_lx = unpack(gwq, bits, K)
                tie = np.abs(np.abs(coord.reshape(shp) - np.floor(coord.reshape(shp))) - 0.5) \
                    < 1e-4
                bad = (q_lx != q_ref) & ~tie
                check(not bad.any(), "%s: %d of %d quantized values differ from MLX's rule/packing"
                      " (first at %s: lx %s, MLX %s)" % (
                          what, int(bad.sum()), bad.size,
                          tuple(np.argwhere(bad)[0]) if bad.any() else (),
                          q_lx[bad][:1], q_ref[bad][:1]))
                if not tie.any():
                    equal(what + " packed words equal MLX's", gwq, pack(q_ref, bits))
                # error bound: |w - deq| <= |scale|/2 wherever the value was not clipped
                # (its coordinate (w - bias)/scale lies in [0, 2^bits - 1]); MLX's rule can
                # push the far edge of a group up to one step past the range (the scale is
                # adjusted to make the near edge exact), where the bound is |scale|. Plus
                # the rounding of scale and bias to dtype (q * ulp(scale) + ulp(bias)).
                deq_lx = dequant64(q_lx, gsc, gbi, gs)
                sc_full = np.repeat(np.abs(gsc), gs, -1)
                bi_full = np.repeat(np.abs(gbi), gs, -1)
                rnd = 0.0 if dtype == "float32" else \
                    (EPS[dtype] * ((1 << bits) - 1) * sc_full + EPS[dtype] * bi_full)
                c = coord.reshape(shp)
                n_bins = (1 << bits) - 1
                inside = (c >= -1e-3) & (c <= n_bins + 1e-3)
                err = np.abs(w - deq_lx)
                lim = np.where(inside, 0.5, 1.0) * sc_full * (1 + 1e-5) + rnd + 1e-12
                check(np.all(err <= lim), "%s: |w - deq| above the bound at %d places (max"
                      " err/|scale| %.3f)" % (what, int((err > lim).sum()),
                                              float(np.max(err / np.maximum(sc_full, 1e-30)))))
                check(np.all(err[1, ..., :gs] == 0), "%s: a constant zero group is exact" % what)
                # lx_dequantize: scale * q + bias, in the scales' dtype
                try:
                    dq = lx.dequantize(wq, sc, bi, gs, bits)
                except LxError as e:
                    check(False, "%s dequantize: %s" % (what, e))
                    continue
                dtype_is(what + " dequantize", dq, dtype)
                # computed as MLX does, in dtype: (scale * q) rounded, + bias rounded
                sq = np.abs(deq_lx - np.repeat(gbi, gs, -1))
                close(what + " dequantize", read64(dq), deq_lx,
                      tol=EPS[dtype] * (np.abs(deq_lx) + sq) + TINY[dtype])


@test
def test_quantize_known_words():
    # hand-checked packings. MLX's rule makes the group's larger-magnitude edge exact: for
    # w = v - 15 (v = 0..15, twice) the edge is -15, scale 1, bias -15, q = v, so at 4 bits
    # word i holds values 8i..8i+7 at bits 4j: 0x76543210, 0xFEDCBA98
    w = np.tile(np.arange(16.0) - 15, 2)[None, :].repeat(2, 0)
    wq, sc, bi = lxpy.quantize(array(w, "float32"), 32, 4)
    equal("4-bit words", read(wq)[0], np.array([0x76543210, 0xFEDCBA98] * 2, np.uint32))
    close("4-bit scale", read64(sc), np.ones((2, 1)), rtol=1e-6)
    close("4-bit bias", read64(bi), np.full((2, 1), -15.0), rtol=1e-6)
    # |max| >= |min|: the scale is negative and the bias is the max (q = 15 - v here)
    wq, sc, bi = lxpy.quantize(array(np.tile(np.arange(16.0), 2)[None, :], "float32"), 32, 4)
    equal("4-bit words, negative scale", read(wq)[0],
          np.array([0x89ABCDEF, 0x01234567] * 2, np.uint32))
    close("4-bit negative scale", read64(sc), np.full((1, 1), -1.0), rtol=1e-6)
    close("4-bit bias = max", read64(bi), np.full((1, 1), 15.0), rtol=1e-6)
    # 8 bits: w = v - 255 (v = 0..62) and one 0: scale 1, bias -255, q = v (and 255)
    w8 = np.arange(64.0)[None, :] - 255
    w8[0, 63] = 0
    wq, sc, bi = lxpy.quantize(array(w8, "float32"), 64, 8)
    words = read(wq)[0]
    equal("8-bit words", words[[0, 1, 15]], np.array([0x03020100, 0x07060504, 0xFF3E3D3C],
                                                     np.uint32))
    close("8-bit scale", read64(sc), np.ones((1, 1)), rtol=1e-6)
    # 2 bits: sixteen values per word
    w2 = np.tile(np.array([0.0, 1.0, 2.0, 3.0]) - 3, 8)[None, :]
    wq, sc, bi = lxpy.quantize(array(w2, "float32"), 32, 2)
    equal("2-bit words", read(wq)[0], np.array([0xE4E4E4E4, 0xE4E4E4E4], np.uint32))


@test
def test_quantized_matmul():
    for dtype in ("float32", "float16", "bfloat16"):
        for bits, gs in [(4, 64), (8, 32), (4, 128), (2, 32), (3, 64), (6, 32)]:
            for xshape, N, K in [((1, 256), 48, 256), ((3, 128), 16, 128), ((2, 5, 128), 8, 128)]:
                if K % gs:
                    continue
                w = round_to(rng.standard_normal((N, K)) * 0.1, dtype)
                x = round_to(rng.standard_normal(xshape), dtype)
                what = "quantized_matmul %s bits=%d group=%d x%s N=%d" % (dtype, bits, gs, xshape,
                                                                           N)
                try:
                    wq, sc, bi = lxpy.quantize(array(w, dtype), gs, bits)
                    deq = dequant64(unpack(read(wq), bits, K), read64(sc), read64(bi), gs)
                    out = lx.quantized_matmul(array(x, dtype), wq, sc, bi, True, gs, bits)
                except LxError as e:
                    check(False, "%s: %s" % (what, e))
                    continue
                dtype_is(what, out, dtype)
                ref = x @ deq.T
                # K-term dot products in float32 against the float64 product with the
                # dequantized weights, plus the output rounding
                tol = EPS[dtype] * np.abs(ref) + K * EPS32 * (np.abs(x) @ np.abs(deq).T) \
                    + TINY[dtype]
                close(what, read64(out), ref, tol=tol)
                # transpose=False: w holds [K, N] (quantized along N)
                wt = round_to(rng.standard_normal((K, 2 * gs)) * 0.1, dtype)
                wq2, sc2, bi2 = lxpy.quantize(array(wt, dtype), gs, bits)
                deq2 = dequant64(unpack(read(wq2), bits, 2 * gs), read64(sc2), read64(bi2), gs)
                out = lx.quantized_matmul(array(x, dtype), wq2, sc2, bi2, False, gs, bits)
                ref = x @ deq2
                close(what + " transpose=False", read64(out), ref,
                      tol=EPS[dtype] * np.abs(ref) + K * EPS32 * (np.abs(x) @ np.abs(deq2))
                      + TINY[dtype])
    # x of a wider dtype promotes (MLX: promote_types(x, scales))
    w = rng.standard_normal((8, 64)) * 0.1
    wq, sc, bi = lxpy.quantize(array(w, "float16"), 64, 4)
    out = lx.quantized_matmul(array(np.ones((1, 64)), "float32"), wq, sc, bi, True, 64, 4)
    dtype_is("quantized_matmul f32 x, f16 scales", out, "float32")
    expect_error("quantized_matmul K mismatch", lambda: lx.quantized_matmul(
        array(np.ones((1, 32)), "float32"), wq, sc, bi, True, 64, 4))
    expect_error("quantize group 48", lambda: lxpy.quantize(array(np.ones((2, 96)), "float32"),
                                                            48, 4), lxpy.E_ARG)
    expect_error("quantize bits 7", lambda: lxpy.quantize(array(np.ones((2, 64)), "float32"),
                                                          64, 7), lxpy.E_ARG)
    expect_error("quantize K not a multiple of the group", lambda: lxpy.quantize(
        array(np.ones((2, 96)), "float32"), 64, 4))


@test
def test_gather_mm_qmm():
    E, N, K, M = 4, 16, 64, 3
    w = rng.standard_normal((E, N, K)) * 0.1
    wq, sc, bi = lxpy.quantize(array(w, "float32"), 32, 4)
    deq = dequant64(unpack(read(wq), 4, K), read64(sc), read64(bi), 32)  # [E, N, K]
    x = rng.standard_normal((5, M, K))
    lhs = np.array([0, 2, 4, 1], np.uint32)
    rhs = np.array([3, 0, 1, 3], np.uint32)
    ref = np.stack([x[l] @ deq[r].T for l, r in zip(lhs, rhs)])
    try:
        out = lx.gather_qmm(array(x, "float32"), wq, sc, bi, array(lhs), array(rhs), True, 32, 4)
        close("gather_qmm", read64(out), ref,
              tol=EPS32 * np.abs(ref) + K * EPS32 * np.stack(
                  [np.abs(x[l]) @ np.abs(deq[r]).T for l, r in zip(lhs, rhs)]))
    except LxError as e:
        check(False, "gather_qmm: %s" % e)
    a = rng.standard_normal((3, M, K))
    b = rng.standard_normal((E, K, N))
    lhs = np.array([[0, 1], [2, 2]], np.uint32)
    rhs = np.array([[3, 0], [1, 1]], np.uint32)
    ref = np.stack([np.stack([a[lhs[i, j]] @ b[rhs[i, j]] for j in range(2)]) for i in range(2)])
    try:
        out = lx.gather_mm(array(a, "float32"), array(b, "float32"), array(lhs), array(rhs))
        check(lxpy.shape(out) == (2, 2, M, N), "gather_mm shape %s" % (lxpy.shape(out),))
        close("gather_mm", read64(out), ref, rtol=1e-5, atol=K * EPS32 * 10)
    except LxError as e:
        check(False, "gather_mm: %s" % e)


# ---- random ------------------------------------------------------------------------------
def threefry2x32(k0, k1, c0, c1):
    """mlx/backend/cpu/threefry.cpp in numpy uint32 arithmetic."""
    u = np.uint32
    k0, k1 = u(k0), u(k1)
    x0 = np.asarray(c0, np.uint32).copy()
    x1 = np.asarray(c1, np.uint32).copy()
    ks = [k0, k1, u(k0 ^ k1 ^ u(0x1BD11BDA))]
    rot = [[13, 15, 26, 6], [17, 29, 16, 24]]
    with np.errstate(over="ignore"):
        x0 += ks[0]
        x1 += ks[1]
        for i in range(5):
            for r in rot[i % 2]:
                x0 += x1
                x1 = (x1 << u(r)) | (x1 >> u(32 - r))
                x1 ^= x0
            x0 += ks[(i + 1) % 3]
            x1 += ks[(i + 2) % 3] + u(i + 1)
    return x0, x1


def mlx_bits(key, n):
    """RandomBits::eval_cpu for one key and n uint32 words."""
    k0, k1 = int(key[0]), int(key[1])
    half, odd = n // 2, n % 2
    out = np.zeros(n, np.uint32)
    j = np.arange(half, dtype=np.uint32)
    a, b = threefry2x32(k0, k1, j, j + np.uint32(half + odd))
    out[:half] = a
    out[half + odd:] = b
    if odd:
        out[half] = threefry2x32(k0, k1, np.array([half], np.uint32),
                                 np.array([0], np.uint32))[0][0]
    return out


def mlx_uniform01(key, n):
    """MLX uniform(0, 1) in float32: min(bits / float32(2^32 - 1), nextafter(1, 0))."""
    b = mlx_bits(key, n).astype(np.float32)
    u = b / np.float32(4294967295.0)
    return np.minimum(u, np.nextafter(np.float32(1), np.float32(0)))


@test
def test_random_threefry_exact():
    for seed in (0, 1, 42, 2 ** 33 + 5, 2 ** 64 - 1):
        key = lx.random_key(seed)
        kk = read(key)
        equal("random_key(%d)" % seed, kk, np.array([seed >> 32, seed & 0xFFFFFFFF], np.uint32))
        for n in (1, 2, 7, 64, 1001):
            out = lx.random_bits([n], 1, 4, key)
            dtype_is("random_bits", out, "uint32")
            equal("random_bits seed=%d n=%d (MLX threefry layout)" % (seed, n), read(out),
                  mlx_bits(kk, n))
        out = read(lx.random_bits([3, 5], 2, 4, key))
        equal("random_bits 2-d seed=%d" % seed, out, mlx_bits(kk, 15).reshape(3, 5))
        k1, k2 = lxpy.random_split(key)
        sp = mlx_bits(kk, 4).reshape(2, 2)
        equal("random_split first seed=%d" % seed, read(k1), sp[0])
        equal("random_split second seed=%d" % seed, read(k2), sp[1])
        out = read(lx.random_split_n(key, 3))
        equal("random_split_n seed=%d" % seed, out, mlx_bits(kk, 6).reshape(3, 2))
        u = read64(lx.random_uniform([500], 1, "float32", 0.0, 1.0, key))
        equal("uniform(0, 1) seed=%d equals MLX's" % seed, u, mlx_uniform01(kk, 500))
        # normal = sqrt(2) * erfinv(uniform(nextafter(-1, 0), 1)) in float32
        lo = np.nextafter(np.float32(-1), np.float32(0))
        uu = mlx_uniform01(kk, 300) * (np.float32(1) - lo) + lo
        ref = np.sqrt(2) * lxpy.erfinv64(uu.astype(np.float64))
        got = read64(lx.random_normal([300], 1, "float32", key))
        cond = np.sqrt(np.pi) / 2 * np.exp(ref ** 2 / 2) * np.sqrt(2)
        close("normal seed=%d equals MLX's (erfinv of the same uniforms)" % seed, got, ref,
              tol=16 * EPS32 * (np.abs(ref) + cond))
        # narrower widths: the first bytes of the same word stream
        for width, npdt in ((1, np.uint8), (2, np.uint16)):
            for n in (1, 3, 10, 33):
                nw = (n * width + 3) // 4
                exp = mlx_bits(kk, nw).view(npdt)[:n]
                equal("random_bits width %d n=%d seed=%d" % (width, n, seed),
                      read(lx.random_bits([n], 1, width, key)), exp)
        # half uniforms: min(u, below_one(dtype)) in float32, then rounded to dtype
        for dtype, below in (("float16", 1 - 2.0 ** -11), ("bfloat16", 1 - 2.0 ** -8)):
            u32 = np.minimum(mlx_bits(kk, 200).astype(np.float32) / np.float32(4294967295.0),
                             np.float32(below))
            equal("uniform(0, 1) %s seed=%d equals MLX's" % (dtype, seed),
                  read64(lx.random_uniform([200], 1, dtype, 0.0, 1.0, key)), round_to(u32, dtype))
        # randint = clip(floor(uniform(low, high) in float32), low, high - 1)
        u01 = mlx_uniform01(kk, 400)
        ref = np.clip(np.floor(np.float32(10) * u01 + np.float32(-3)), -3, 6).astype(np.int32)
        equal("randint(-3, 7) seed=%d equals MLX's" % seed,
              read(lx.random_randint([400], 1, "int32", -3, 7, key)), ref)
        # bernoulli = float32(bits) < float32(p) * nextafter(float32(2^32 - 1), inf)
        up = np.nextafter(np.float32(4294967295.0), np.float32(np.inf))
        ref = mlx_bits(kk, 300).astype(np.float32) < np.float32(0.3) * up
        equal("bernoulli(0.3) seed=%d equals MLX's" % seed,
              read(lx.random_bernoulli([300], 1, 0.3, key)), ref)


@test
def test_random_distributions():
    key = lx.random_key(1234)
    n = 200000
    # uniform [low, high)
    for dtype in ("float32", "float16", "bfloat16"):
        u = read64(lx.random_uniform([n], 1, dtype, -2.0, 3.0, key))
        check(u.min() >= -2.0 and u.max() < 3.0, "uniform %s in [-2, 3): [%g, %g]" % (
            dtype, u.min(), u.max()))
        check(abs(u.mean() - 0.5) < 5 * 5 / math.sqrt(12 * n), "uniform %s mean %g" % (
            dtype, u.mean()))
        check(abs(u.var() - 25 / 12) < 0.05, "uniform %s variance %g" % (dtype, u.var()))
    # normal: moments (5-sigma bounds)
    for dtype in ("float32", "float16", "bfloat16"):
        z = read64(lx.random_normal([n], 1, dtype, key))
        dtype_is("normal dtype", lx.random_normal([2], 1, dtype, key), dtype)
        check(abs(z.mean()) < 5 / math.sqrt(n), "normal %s mean %g" % (dtype, z.mean()))
        check(abs(z.var() - 1) < 5 * math.sqrt(2 / n) + 2 * EPS[dtype],
              "normal %s variance %g" % (dtype, z.var()))
        check(abs(np.mean(z ** 3)) < 5 * math.sqrt(15 / n), "normal %s skew" % dtype)
        check(np.all(np.isfinite(z)), "normal %s finite" % dtype)
    # truncated normal in [lower, upper] with the right mean
    a, b = -1.0, 2.0
    t = read64(lx.random_truncated_normal([n], 1, "float32", a, b, key))
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    Z = Phi(b) - Phi(a)
    mean = (phi(a) - phi(b)) / Z
    check(t.min() >= a and t.max() <= b, "truncated_normal in [%g, %g]: [%g, %g]" % (
        a, b, t.min(), t.max()))
    check(abs(t.mean() - mean) < 5 / math.sqrt(n), "truncated_normal mean %g vs %g" % (
        t.mean(), mean))
    # randint [low, high): every value, roughly uniform (chi-square, 9 dof: < 40)
    r = read(lx.random_randint([n], 1, "int32", -3, 7, key))
    dtype_is("randint dtype", lx.random_randint([2], 1, "int32", 0, 5, key), "int32")
    check(r.min() == -3 and r.max() == 6, "randint range [%d, %d]" % (r.min(), r.max()))
    cnt = np.bincount(r + 3, minlength=10)
    chi = float(np.sum((cnt - n / 10) ** 2 / (n / 10)))
    check(chi < 40, "randint uniformity chi2=%g" % chi)
    r = read(lx.random_randint([1000], 1, "int64", 2 ** 40, 2 ** 40 + 3, key))
    check(r.min() >= 2 ** 40 and r.max() < 2 ** 40 + 3, "randint int64 large bounds [%d, %d]" % (
        r.min(), r.max()))
    # bernoulli
    for p in (0.0, 0.3, 1.0):
        bb = read(lx.random_bernoulli([n], 1, p, key))
        check(bb.dtype == np.bool_, "bernoulli is bool")
        check(abs(bb.mean() - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-9,
              "bernoulli p=%g frequency %g" % (p, bb.mean()))
    # gumbel: mean = Euler-Mascheroni, variance pi^2/6
    gmb = read64(lx.random_gumbel([n], 1, "float32", key))
    check(abs(gmb.mean() - 0.5772156649) < 5 * math.sqrt(math.pi ** 2 / 6 / n),
          "gumbel mean %g" % gmb.mean())
    # categorical: frequencies follow softmax(logits), per row
    logits = np.array([[0.0, 1.0, 2.0, -1.0], [3.0, 3.0, -np.inf, 0.0]])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    S = 40000
    c = read(lx.random_categorical_n(array(logits, "float32"), 1, S, key))
    check(c.shape == (2, S), "categorical_n shape %s" % (c.shape,))
    for i in range(2):
        cnt = np.bincount(c[i].astype(np.int64), minlength=4)
        exp = p[i] * S
        nz = exp > 0
        chi = float(np.sum((cnt[nz] - exp[nz]) ** 2 / exp[nz]))
        check(chi < 30 and np.all(cnt[~nz] == 0), "categorical row %d chi2=%g counts %s" % (
            i, chi, cnt))
    one = lx.random_categorical(array(logits, "float32"), -1, key)
    check(lxpy.shape(one) == (2,), "categorical removes the axis: %s" % (lxpy.shape(one),))
    dtype_is("categorical dtype", one, "uint32")
    c0 = read(lx.random_categorical_n(array(logits.T.copy(), "float32"), 0, 5000, key))
    check(c0.shape == (2, 5000) and np.all(c0[1] != 2), "categorical_n along axis 0: %s" % (
        c0.shape,))


@test
def test_random_reproducible():
    key = lx.random_key(99)
    a = read64(lx.random_normal([4096], 1, "float32", key))
    b = read64(lx.random_normal([4096], 1, "float32", key))
    equal("same key, same numbers", a, b)
    k1, k2 = lxpy.random_split(key)
    c = read64(lx.random_normal([4096], 1, "float32", k1))
    check(not np.array_equal(a, c), "a split key gives different numbers")
    old = lxpy.lib.lx_set_num_threads(1)
    d = read64(lx.random_normal([4096], 1, "float32", key))
    e = read64(lx.random_uniform([3, 1000], 2, "bfloat16", 0.0, 1.0, key))
    lxpy.lib.lx_set_num_threads(max(2, old))
    f = read64(lx.random_uniform([3, 1000], 2, "bfloat16", 0.0, 1.0, key))
    lxpy.lib.lx_set_num_threads(old)
    equal("independent of the thread count (normal)", a, d)
    equal("independent of the thread count (uniform bf16)", e, f)
    lxpy.lib.lx_random_seed(5)
    g = read64(lx.random_uniform([100], 1, "float32", 0.0, 1.0, None))
    h = read64(lx.random_uniform([100], 1, "float32", 0.0, 1.0, None))
    lxpy.lib.lx_random_seed(5)
    g2 = read64(lx.random_uniform([100], 1, "float32", 0.0, 1.0, None))
    equal("global key stream reproducible after random_seed", g, g2)
    check(not np.array_equal(g, h), "global key stream advances")
    # MLX's global stream: seed -> key(seed); next() = split(state) -> (state, key)
    st = np.array([0, 5], np.uint32)
    sp = mlx_bits(st, 4).reshape(2, 2)
    equal("global stream key equals MLX's next()", g, mlx_uniform01(sp[1], 100))


@test
def test_nn_larger_and_half_ranges():
    # matmul with K = 4096 in float16/bfloat16: needs float32 accumulation
    for dtype in ("float16", "bfloat16"):
        a, b = vals(dtype, (3, 4096), 0, 1), vals(dtype, (4096, 5), 0, 1)
        ref = a @ b
        close("matmul K=4096 %s" % dtype, read64(lx.matmul(array(a, dtype), array(b, dtype))), ref,
              tol=_mm_tol(dtype, a, b, ref, 4096))
        # GEMV forms x @ W and x @ W^T
        W = vals(dtype, (1024, 700), -1, 1)
        x = vals(dtype, (1, 1024), -1, 1)
        ref = x @ W
        close("gemv x @ W %s" % dtype, read64(lx.matmul(array(x, dtype), array(W, dtype))), ref,
              tol=_mm_tol(dtype, x, W, ref, 1024))
        Wt = W.T.copy()
        close("gemv x @ W^T %s" % dtype, read64(lx.matmul(array(x, dtype), lx.transpose(
            array(Wt, dtype), None, 0))), ref, tol=_mm_tol(dtype, x, W, ref, 1024))
    # float32 matmul big enough for blocking / threads, with a strided batch
    a, b = vals("float32", (2, 257, 300), -1, 1), vals("float32", (300, 129), -1, 1)
    ref = a @ b
    close("matmul [2,257,300] @ [300,129]", read64(lx.matmul(mk(a, "float32", "s"),
                                                            array(b, "float32"))), ref,
          tol=_mm_tol("float32", a, b, ref, 300))
    # half inputs whose squares overflow float16 (65504): MLX's norms work in float32
    x = vals("float16", (4, 256), -2000, 2000)
    r = x / np.sqrt(np.mean(x * x, -1, keepdims=True) + float(np.float32(1e-5)))
    close("rms_norm float16 |x| ~ 2000", read64(lx.rms_norm(array(x, "float16"), None, 1e-5)), r,
          tol=(2 * EPS["float16"] + 300 * EPS32) * np.abs(r) + TINY["float16"])
    mu = x.mean(-1, keepdims=True)
    ln = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + float(np.float32(1e-5)))
    close("layer_norm float16 |x| ~ 2000", read64(lx.layer_norm(array(x, "float16"), None, None,
                                                                1e-5)), ln,
          tol=3 * EPS["float16"] * np.abs(ln) + 300 * EPS32 * 4)
    # long softmax rows in half precision
    for dtype in HALF:
        x = vals(dtype, (2, 32000), -10, 10)
        ref = softmax64(x, -1)
        close("softmax %s rows of 32000" % dtype, read64(lx.softmax(array(x, dtype), -1)), ref,
              tol=(EPS[dtype] + 64 * EPS32) * ref + 2 * TINY[dtype])
    # attention over a long context, half precision, GQA, decode and prefill
    for dtype in HALF:
        for Lq in (1, 9):
            q = vals(dtype, (1, 8, Lq, 64), -1, 1)
            k = vals(dtype, (1, 2, 2500, 64), -1, 1)
            v = vals(dtype, (1, 2, 2500, 64), -1, 1)
            ref, p = sdpa_ref(q, k, v, 0.125, True)
            close("sdpa %s Lq=%d Lk=2500 causal" % (dtype, Lq),
                  read64(lx.sdpa(array(q, dtype), array(k, dtype), array(v, dtype), 0.125, True,
                                 None)), ref, tol=_sdpa_tol(dtype, ref, p, v, 64, 2500, 1.0))
    # quantized GEMV at the benchmark's shape
    K, N = 4096, 256
    w = rng.standard_normal((N, K)) * 0.02
    for dtype in ("float32", "bfloat16"):
        wq, sc, bi = lxpy.quantize(array(w, dtype), 64, 4)
        deq = dequant64(unpack(read(wq), 4, K), read64(sc), read64(bi), 64)
        x = round_to(rng.standard_normal((2, K)), dtype)
        ref = x @ deq.T
        close("quantized_matmul K=4096 %s" % dtype,
              read64(lx.quantized_matmul(array(x, dtype), wq, sc, bi, True, 64, 4)), ref,
              tol=EPS[dtype] * np.abs(ref) + K * EPS32 * (np.abs(x) @ np.abs(deq).T))



if __name__ == "__main__":
    sys.exit(lxpy.run_tests())
