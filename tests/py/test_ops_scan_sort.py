"""Scans and orderings through liblx against numpy (an oracle independent of the C tests):
lx_cumsum/cumprod/cummax/cummin against np.cumsum/np.cumprod/np.maximum.accumulate/
np.minimum.accumulate in float64 (integers: exact, wrapping in the dtype as MLX does);
lx_sort/argsort against np.sort/np.argsort(kind="stable") exactly (NaN last as numpy and MLX);
lx_partition/argpartition by their property and against the stable sort's kth element;
lx_topk against the last k of np.sort. Every dtype, every axis (positive and negative),
contiguous, transposed and strided inputs.

Tolerances: cumsum of float32 (and of float16/bfloat16, which accumulate in float32) is a
sequential float32 sum, bounded by i*2^-24*sum|x| at position i, plus one rounding to the
output dtype (2^-11 float16, 2^-8 bfloat16, relative); cumprod i*2^-24*|p_i| plus the same
rounding (inputs in [0.5, 1.5] keep products in range). Everything else is exact.

Env: LX_LIB (liblx.so).
"""
import sys

import numpy as np

from lxpy import (E_ARG, FLOATS, INTS, array, check, close, dtype_is, equal, eval_,
                  expect_error, lx, read, round_to, run_tests, strided_view, test,
                  transposed_view)

RNG = np.random.default_rng(20240611)
DTYPES = ["bool"] + list(INTS) + list(FLOATS)
U_OUT = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 0.0, "float64": 0.0}
U_ACC = {"float16": 2.0 ** -24, "bfloat16": 2.0 ** -24, "float32": 2.0 ** -24,
         "float64": 2.0 ** -53}


def values(dtype, shape, prod=False):
    """Random values exactly representable in dtype (float64 array), with ties; floats get
    NaN/Inf/-0 unless prod."""
    if dtype == "bool":
        return RNG.integers(0, 2, shape).astype(np.float64)
    if dtype in INTS:
        lo = -40 if dtype.startswith("int") else 0
        return RNG.integers(lo, 41, shape).astype(np.float64)
    if prod:
        x = RNG.uniform(0.5, 1.5, shape)
    else:
        x = np.round(RNG.uniform(-4, 4, shape) * 4) / 4
        r = RNG.uniform(0, 1, shape)
        x[r < 0.04] = np.nan
        x[(r >= 0.04) & (r < 0.06)] = np.inf
        x[(r >= 0.06) & (r < 0.08)] = -np.inf
        x[(r >= 0.08) & (r < 0.10)] = -0.0
    return round_to(x, dtype)


def np_typed(x, dtype):
    """The float64 values x as a numpy array of dtype (bfloat16: float32 holding them)."""
    if dtype == "bfloat16":
        return x.astype(np.float32)
    return x.astype(np.bool_ if dtype == "bool" else np.dtype(dtype))


def make(x, dtype, layout):
    if layout == 0:
        return array(np_typed(x, dtype), dtype)
    if layout == 1:
        return transposed_view(np_typed(x, dtype), dtype)
    return strided_view(np_typed(x, dtype), dtype)


def random_shape():
    nd = RNG.integers(1, 4)
    return tuple(int(d) for d in RNG.integers(1, 7, nd))


def axes_of(nd):
    return [int(ax) if RNG.integers(0, 2) else int(ax) - nd for ax in range(nd)]


@test
def test_scans_vs_numpy():
    for it in range(60):
        dtype = DTYPES[it % len(DTYPES)]
        shape = random_shape()
        for op in ("cumsum", "cumprod", "cummax", "cummin"):
            x = values(dtype, shape, prod=(op == "cumprod"))
            a = make(x, dtype, it % 3)
            for ax in axes_of(len(shape)):
                what = "%s %s %s layout %d axis %d" % (op, dtype, shape, it % 3, ax)
                r = getattr(lx, op)(a, ax)
                out_dtype = "int32" if (op == "cumsum" and dtype == "bool") else dtype
                dtype_is(what, r, out_dtype)
                got = read(r)
                if dtype == "bool" or dtype in INTS:
                    xi = x.astype(np.int64)
                    if op == "cumsum":
                        ref = np.cumsum(xi, axis=ax)
                    elif op == "cumprod":
                        ref = np.cumprod(xi, axis=ax)
                    elif op == "cummax":
                        ref = np.maximum.accumulate(xi, axis=ax)
                    else:
                        ref = np.minimum.accumulate(xi, axis=ax)
                    # MLX: the dtype is kept (bool sums in int32) and integers wrap
                    ref = ref.astype(np.bool_ if out_dtype == "bool" else np.dtype(out_dtype))
                    equal(what, got, ref)
                    continue
                if op == "cummax":
                    equal(what, got, np.maximum.accumulate(x, axis=ax))
                    continue
                if op == "cummin":
                    equal(what, got, np.minimum.accumulate(x, axis=ax))
                    continue
                n = shape[ax]
                pos = np.arange(1, n + 1, dtype=np.float64).reshape(
                    [n if i == (ax % len(shape)) else 1 for i in range(len(shape))])
                with np.errstate(invalid="ignore"):
                    if op == "cumsum":
                        ref = np.cumsum(x, axis=ax)
                        tol = pos * U_ACC[dtype] * np.cumsum(np.abs(x), axis=ax)
                    else:
                        ref = np.cumprod(x, axis=ax)
                        tol = pos * U_ACC[dtype] * np.abs(ref)
                    tol = tol + U_OUT[dtype] * np.abs(ref)
                    tol = np.where(np.isfinite(tol), tol, 0)
                close(what, got, ref, tol=tol)


@test
def test_orderings_vs_numpy():
    for it in range(80):
        dtype = DTYPES[it % len(DTYPES)]
        shape = random_shape()
        if it % 5 == 0:
            shape = shape[:-1] + (int(RNG.integers(500, 1200)),)  # radix-sorted rows
        x = values(dtype, shape)
        a = make(x, dtype, it % 3)
        for ax in axes_of(len(shape)):
            n = shape[ax]
            what = "%s %s layout %d axis %d" % (dtype, shape, it % 3, ax)
            ref_sorted = np.sort(x, axis=ax, kind="stable")
            ref_idx = np.argsort(x, axis=ax, kind="stable")
            equal("sort " + what, read(lx.sort(a, ax)), ref_sorted)
            idx = lx.argsort(a, ax)
            dtype_is("argsort " + what, idx, "uint32")
            equal("argsort " + what, read(idx).astype(np.int64), ref_idx)
            k = int(RNG.integers(0, n + 1))
            top = read(lx.topk(a, k, ax))
            equal("topk %d %s" % (k, what), top,
                  np.take(ref_sorted, np.arange(n - k, n), axis=ax))
            kth = int(RNG.integers(0, n))
            kth_given = kth - n if RNG.integers(0, 2) else kth
            part = read(lx.partition(a, kth_given, ax)).astype(np.float64)
            pidx = read(lx.argpartition(a, kth_given, ax)).astype(np.int64)
            pv = np.take_along_axis(x, pidx, axis=ax)
            for name, v in (("partition", part), ("argpartition", pv)):
                w = "%s kth %d %s" % (name, kth_given, what)
                equal(w + " (kth value)", np.take(v, [kth], axis=ax),
                      np.take(ref_sorted, [kth], axis=ax))
                equal(w + " (same values)", np.sort(v, axis=ax), ref_sorted)
                kv = np.take(v, [kth], axis=ax)
                with np.errstate(invalid="ignore"):
                    before = np.take(v, np.arange(0, kth), axis=ax)
                    after = np.take(v, np.arange(kth + 1, n), axis=ax)
                    ok_b = np.isnan(kv) | (before <= kv)   # NaN is the largest
                    ok_a = np.isnan(after) | (~np.isnan(kv) & (after >= kv))
                check(ok_b.all() and ok_a.all(), w + ": an element on the wrong side of kth")
            equal("argpartition kth index " + what, np.take(pidx, [kth], axis=ax),
                  np.take(ref_idx, [kth], axis=ax))


@test
def test_nan_order_and_errors():
    x = np.array([2.0, np.nan, -1.0, np.inf, np.nan, -np.inf, 0.0], dtype=np.float32)
    equal("argsort with NaN", read(lx.argsort(x, 0)).astype(np.int64),
          np.argsort(x, kind="stable"))
    equal("sort with NaN", read(lx.sort(x, -1)), np.sort(x))
    a = array(np.zeros((3, 4), dtype=np.float32))
    for op in ("cumsum", "cumprod", "cummax", "cummin", "sort", "argsort"):
        expect_error(op + " axis 2", lambda op=op: getattr(lx, op)(a, 2), E_ARG)
        expect_error(op + " axis -3", lambda op=op: getattr(lx, op)(a, -3), E_ARG)
    for op in ("partition", "argpartition"):
        expect_error(op + " kth 4", lambda op=op: getattr(lx, op)(a, 4, 1), E_ARG)
        expect_error(op + " kth -5", lambda op=op: getattr(lx, op)(a, -5, -1), E_ARG)
    expect_error("topk k 5", lambda: lx.topk(a, 5, 1), E_ARG)
    expect_error("topk k -1", lambda: lx.topk(a, -1, 1), E_ARG)
    r = lx.topk(a, 4, 1)
    eval_(r)
    check(read(r).shape == (3, 4), "topk with k = the axis size")


if __name__ == "__main__":
    sys.exit(run_tests())
