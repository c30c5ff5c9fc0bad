"""The lx op set against numpy in float64, with MLX's semantics (ml-explore/mlx, mlx/ops.cpp
and mlx/backend/cpu): type promotion, output dtypes, broadcasting, negative axes, keepdims,
non-contiguous inputs (lx_transpose / strided lx_slice views), float16/bfloat16, empty arrays,
size-1 dims, NaN/Inf. Part 1: promotion, elementwise, reductions, scans, sorting, shapes and
indexing. Part 2 (test_ops_nn.py): softmax, norms, rope, sdpa, matmul, conv, quantization,
random numbers.

Tolerances. References are computed in float64 from the exact input values (the inputs are
first rounded to the tested dtype), so the only error allowed is lx's own:
  - one rounding of the result to the output dtype: half an ulp, <= eps/2 * |ref|; checks
    allow 1 ulp (eps * |ref|) because half-precision ops compute in float32 and round again
    (double rounding), plus the smallest subnormal of the dtype for results that underflow;
  - elementary functions (exp, log, sin, erf, ...) computed in float32: a few float32 ulps of
    the result (libm-quality: <= 4 eps32 relative, and 4 eps32 absolute at the scale of the
    function's natural magnitude for functions with zeros (sin near pi, log near 1));
  - reductions of n terms: the accumulation error bound n * eps_acc * sum|x| with float32
    accumulation (float64 for float64), plus the final rounding to the output dtype.
Each check names its tolerance where it differs from these.

Env: LX_LIB (liblx.so). Run: /usr/bin/python3 test_ops_numpy.py [test-name-substring...]
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lxpy  # noqa: E402
from lxpy import (EPS, FLOATS, INTS, LxError, array, check, close, dtype_is, equal,  # noqa: E402
                  expect_error, lx, read, read64, round_to, test)

E_ARG, E_SHAPE, E_DTYPE = lxpy.E_ARG, lxpy.E_SHAPE, lxpy.E_DTYPE
rng = np.random.default_rng(20240611)
HALF = ("float16", "bfloat16")
TINY = {"float16": 2.0 ** -24, "bfloat16": 2.0 ** -133, "float32": 2.0 ** -149,
        "float64": 5e-324}
EPS32 = EPS["float32"]


# ---- inputs --------------------------------------------------------------------------------
def vals(dtype, shape, lo=-3.0, hi=3.0):
    """Random values exactly representable in dtype: float64 for floats (already rounded to
    the dtype), the numpy integer dtype for integers, numpy bool for bool."""
    shape = tuple(shape)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype in INTS:
        info = np.iinfo(lxpy.NP_OF[dtype])
        a, b = max(int(lo), int(info.min)), min(int(hi), int(info.max))
        return rng.integers(a, b + 1, shape, dtype=np.int64).astype(lxpy.NP_OF[dtype])
    return round_to(rng.uniform(lo, hi, shape), dtype)


def away0(dtype, shape, lo=0.5, hi=3.0):
    """Values with |v| in [lo, hi] and random signs (divisors)."""
    if dtype in INTS:
        v = rng.integers(max(1, int(lo)), int(hi) + 1, shape)
        if np.iinfo(lxpy.NP_OF[dtype]).min < 0:
            v = v * rng.choice([-1, 1], shape)
        return v.astype(lxpy.NP_OF[dtype])
    return round_to(rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape), dtype)


def mk(x, dtype, layout="c"):
    """lx array of x in dtype: 'c' contiguous, 't' a transposed view, 's' a strided slice."""
    if layout == "t":
        return lxpy.transposed_view(x, dtype)
    if layout == "s":
        return lxpy.strided_view(x, dtype)
    return array(x, dtype)


def ftol(dtype, ref, ulps=1.0, extra_rel=0.0, extra_abs=0.0):
    """ulps of dtype relative to |ref| + extra relative + the dtype's smallest subnormal."""
    return (ulps * EPS[dtype] + extra_rel) * np.abs(ref) + TINY[dtype] + extra_abs


def f32ish(dtype):
    """Working precision of a float dtype in lx (halves compute in float32)."""
    return "float64" if dtype == "float64" else "float32"


# ---- 1. type promotion -------------------------------------------------------------------
promote = lxpy.mlx_promote


def at_least_float(t):
    return t if t in FLOATS else "float32"


@test
def test_promotion_table():
    bad = []
    for a in lxpy.DTYPES:
        for b in lxpy.DTYPES:
            got = lxpy.DTYPES[lxpy.lib.lx_promote_types(lxpy.CODE[a], lxpy.CODE[b])]
            if got != promote(a, b):
                bad.append("%s+%s -> %s (MLX %s)" % (a, b, got, promote(a, b)))
    check(not bad, "lx_promote_types differs from MLX: " + ", ".join(bad))


def one(dtype, v=1):
    return array(np.array([v]), dtype)


@test
def test_op_output_dtypes():
    # binary arithmetic: promote_types; div/arctan2: at least float
    for a in lxpy.DTYPES:
        for b in lxpy.DTYPES:
            exp = promote(a, b)
            dtype_is("add(%s,%s)" % (a, b), lx.add(one(a), one(b)), exp)
            dtype_is("div(%s,%s)" % (a, b), lx.div(one(a), one(b)), at_least_float(exp))
            dtype_is("less(%s,%s)" % (a, b), lx.less(one(a), one(b)), "bool")
            dtype_is("maximum(%s,%s)" % (a, b), lx.maximum(one(a), one(b)), exp)
    # the cases named in the brief
    dtype_is("int32 + float16", lx.add(one("int32"), one("float16")), "float16")
    dtype_is("uint32 + int32", lx.add(one("uint32"), one("int32")), "int64")
    dtype_is("pow(int32, float32)", lx.pow(one("int32"), one("float32")), "float32")
    dtype_is("floor_divide(int32,int32)", lx.floor_divide(one("int32"), one("int32")), "int32")
    dtype_is("remainder(int8,uint8)", lx.remainder(one("int8"), one("uint8")), "int16")
    dtype_is("logical_and(float32,int32)", lx.logical_and(one("float32"), one("int32")), "bool")
    dtype_is("where(bool, int32, float16)",
             lx.where(one("bool"), one("int32"), one("float16")), "float16")
    dtype_is("where(float32 cond, int8, uint8)",
             lx.where(one("float32"), one("int8"), one("uint8")), "int16")
    # unary: math ops go to at least float32; neg/abs/sign/square/floor/ceil/round keep
    for t in ("bool", "uint8", "int8", "int32", "uint32", "int64", "float16", "bfloat16",
              "float32", "float64"):
        for op in ("sqrt", "rsqrt", "exp", "log", "log1p", "sin", "cos", "tanh", "erf",
                   "sigmoid", "reciprocal", "expm1", "log2", "log10", "tan", "erfinv"):
            dtype_is("%s(%s)" % (op, t), getattr(lx, op)(one(t)), at_least_float(t))
        for op in ("abs", "sign", "square", "floor", "ceil", "round"):
            dtype_is("%s(%s)" % (op, t), getattr(lx, op)(one(t)), t)
        for op in ("logical_not", "isnan", "isinf", "isfinite"):
            dtype_is("%s(%s)" % (op, t), getattr(lx, op)(one(t)), "bool")
        if t != "bool":
            dtype_is("neg(%s)" % t, lx.neg(one(t)), t)
    expect_error("neg(bool) (MLX: use logical_not)", lambda: lx.neg(one("bool")), E_DTYPE)
    # reductions (mlx/ops.cpp sum/prod: ints of <= 4 bytes -> int32/uint32, bool -> int32)
    sum_dt = {"bool": "int32", "uint8": "uint32", "uint16": "uint32", "uint32": "uint32",
              "uint64": "uint64", "int8": "int32", "int16": "int32", "int32": "int32",
              "int64": "int64", "float16": "float16", "bfloat16": "bfloat16",
              "float32": "float32", "float64": "float64"}
    m = np.ones((2, 3))
    for t in lxpy.DTYPES:
        x = array(m, t)
        dtype_is("sum(%s)" % t, lx.sum(x, 0, False), sum_dt[t])
        dtype_is("prod(%s)" % t, lx.prod(x, 1, False), sum_dt[t])
        dtype_is("sum_axes(%s) all" % t, lx.sum_axes(x, None, 0, False), sum_dt[t])
        dtype_is("mean(%s)" % t, lx.mean(x, 0, False), at_least_float(t))
        dtype_is("var(%s)" % t, lx.var(x, 0, False, 0), at_least_float(t))
        dtype_is("std(%s)" % t, lx.std(x, 0, False, 1), at_least_float(t))
        dtype_is("max(%s)" % t, lx.max(x, 0, False), t)
        dtype_is("min(%s)" % t, lx.min(x, 0, False), t)
        dtype_is("all(%s)" % t, lx.all(x, 0, False), "bool")
        dtype_is("any(%s)" % t, lx.any(x, 0, False), "bool")
        dtype_is("argmax(%s)" % t, lx.argmax(x, 0, False), "uint32")
        dtype_is("argmin(%s)" % t, lx.argmin(x, 1, True), "uint32")
        dtype_is("argsort(%s)" % t, lx.argsort(x, 1), "uint32")
        dtype_is("argpartition(%s)" % t, lx.argpartition(x, 1, 1), "uint32")
        dtype_is("sort(%s)" % t, lx.sort(x, 1), t)
        dtype_is("topk(%s)" % t, lx.topk(x, 2, 1), t)
        dtype_is("logsumexp(%s)" % t, lx.logsumexp(x, 1, False), at_least_float(t))
        dtype_is("softmax(%s)" % t, lx.softmax(x, 1), at_least_float(t))
        # scans (mlx/ops.cpp cumsum: bool -> int32, otherwise the input's dtype; cumprod
        # keeps the dtype, bool included)
        dtype_is("cumsum(%s)" % t, lx.cumsum(x, 1), "int32" if t == "bool" else t)
        dtype_is("cumprod(%s)" % t, lx.cumprod(x, 1), t)
        dtype_is("cummax(%s)" % t, lx.cummax(x, 1), t)


# ---- 2. binary elementwise ---------------------------------------------------------------
BIN_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 5), (3, 1)), ((1,), (6,)),
              ((), (2, 3)), ((0, 3), (3,)), ((2, 0), (1, 1)), ((4, 1), (1, 5))]
LAYOUTS = ["c", "t", "s"]


def _pow_ref(a, b):
    with np.errstate(all="ignore"):
        return np.power(a, b)


def _bin_case(op, dtype, sa, sb):
    """(a, b, ref, tol_fn) for a float op."""
    if op == "div" or op == "floor_divide" or op == "remainder":
        a, b = vals(dtype, sa), away0(dtype, sb)
    elif op == "pow":
        a, b = vals(dtype, sa, 0.1, 3.0), vals(dtype, sb, -3.0, 3.0)
    else:
        a, b = vals(dtype, sa), vals(dtype, sb)
    w = f32ish(dtype)
    if op == "add":
        ref, tol = a + b, ftol(dtype, a + b)
    elif op == "sub":
        ref, tol = a - b, ftol(dtype, a - b)
    elif op == "mul":
        ref, tol = a * b, ftol(dtype, a * b)
    elif op == "div":
        ref, tol = a / b, ftol(dtype, a / b)
    elif op == "maximum":
        ref, tol = np.maximum(a, b), 0.0
    elif op == "minimum":
        ref, tol = np.minimum(a, b), 0.0
    elif op == "pow":
        # libm pow: <= 2 ulps of the working precision, then the rounding to dtype
        ref = _pow_ref(a, b)
        tol = ftol(dtype, ref, 1.0, 2 * EPS[w])
    elif op == "arctan2":
        ref = np.arctan2(a, b)
        tol = ftol(dtype, ref, 1.0, 2 * EPS[w], 2 * EPS[w])
    elif op == "floor_divide":
        # MLX: floor(divide(a, b)) -- the quotient rounded to the dtype, then floored: exact
        q = round_to(a / b, dtype if dtype not in HALF else "float32")
        ref, tol = np.floor(q), 0.0
    elif op == "remainder":
        # numpy's remainder (sign of the divisor), as MLX's Remainder: fmod is exact and the
        # final "+ b" rounds once: |err| <= ulp(|b|)
        ref = np.remainder(a, b)
        tol = EPS[dtype] * np.abs(np.broadcast_to(b, np.broadcast(a, b).shape)) + TINY[dtype]
    return a, b, ref, tol


@test
def test_binary_float():
    ops = ["add", "sub", "mul", "div", "maximum", "minimum", "pow", "arctan2", "floor_divide",
           "remainder"]
    for op in ops:
        for dtype in ("float32", "float64", "float16", "bfloat16"):
            if op == "floor_divide" and dtype in HALF:
                continue  # floor of a rounded half quotient: tested in float32/float64 only
            for k, (sa, sb) in enumerate(BIN_SHAPES):
                la, lb = LAYOUTS[k % 3], LAYOUTS[(k + 1) % 3]
                a, b, ref, tol = _bin_case(op, dtype, sa, sb)
                what = "%s %s %s%s x %s%s" % (op, dtype, sa, la, sb, lb)
                try:
                    out = getattr(lx, op)(mk(a, dtype, la), mk(b, dtype, lb))
                except LxError as e:
                    check(False, "%s: %s" % (what, e))
                    continue
                dtype_is(what, out, dtype)
                close(what, read64(out), ref, tol=tol)


@test
def test_binary_nan_inf():
    nan, inf = float("nan"), float("inf")
    a = np.array([nan, 1.0, nan, inf, -inf, inf, 0.0, -0.0, 2.0, -inf])
    b = np.array([1.0, nan, nan, 1.0, 1.0, inf, 0.0, 0.0, inf, -inf])
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        A, B = array(a, dtype), array(b, dtype)
        with np.errstate(all="ignore"):
            # MLX maximum/minimum: NaN from either side propagates (np.maximum)
            equal("maximum nan/inf %s" % dtype, read64(lx.maximum(A, B)), np.maximum(a, b))
            equal("minimum nan/inf %s" % dtype, read64(lx.minimum(A, B)), np.minimum(a, b))
            equal("add nan/inf %s" % dtype, read64(lx.add(A, B)), a + b)
            equal("sub nan/inf %s" % dtype, read64(lx.sub(A, B)), a - b)
            equal("mul nan/inf %s" % dtype, read64(lx.mul(A, B)), a * b)
            equal("div nan/inf %s" % dtype, read64(lx.div(A, B)), a / b)
            # x / 0 = +-inf, 0 / 0 = nan
            d = read64(lx.div(array([1.0, -1.0, 0.0], dtype), array([0.0, 0.0, 0.0], dtype)))
            equal("div by zero %s" % dtype, d, np.array([inf, -inf, nan]))
            # remainder(x, 0) is NaN for floats; remainder(inf, y) is NaN
            r = read64(lx.remainder(array([1.0, inf, 3.0], dtype), array([0.0, 2.0, inf], dtype)))
            check(np.isnan(r[0]) and np.isnan(r[1]), "remainder(1,0), remainder(inf,2) NaN: %s" % r)
            # overflow to inf in the output dtype
            big = {"float16": 300.0, "bfloat16": 2.0 ** 100, "float32": 2.0 ** 100,
                   "float64": 2.0 ** 600}[dtype]
            equal("mul overflows to inf %s" % dtype,
                  read64(lx.mul(array(np.array([big, -big]), dtype), array(np.array([big, big]),
                                                                           dtype))),
                  np.array([inf, -inf]))
            equal("pow special %s" % dtype,
                  read64(lx.pow(array([0.0, 0.0, nan, 1.0, -inf, inf], dtype),
                                array([0.0, -1.0, 0.0, nan, 2.0, -1.0], dtype))),
                  np.power([0.0, 0.0, nan, 1.0, -inf, inf], [0.0, -1.0, 0.0, nan, 2.0, -1.0]))


@test
def test_pow_sign_rules():
    # negative bases: integer exponents give signed results, others NaN (C pow)
    a = np.array([-2.0, -2.0, -2.0, -0.5, -3.0, -1.0, -8.0, 0.0, -0.0])
    b = np.array([3.0, 2.0, -1.0, -3.0, 0.5, 1e10, 1.0 / 3.0, 0.0, 3.0])
    with np.errstate(all="ignore"):
        ref = np.power(a, b)
    for dtype in ("float32", "float64"):
        got = read64(lx.pow(array(a, dtype), array(b, dtype)))
        close("pow negative bases %s" % dtype, got, round_to(ref, dtype),
              rtol=2 * EPS[dtype])
        check(np.signbit(got[8]) == np.signbit(ref[8]), "pow(-0, 3) keeps the sign (-0)")
    # integers: exact repeated multiplication, wrapping in the dtype
    for dtype in ("int32", "int64", "int8", "uint8", "uint32"):
        x = vals(dtype, (40,), -6, 6)
        e = vals("int32", (40,), 0, 7).astype(lxpy.NP_OF[dtype])
        out = lx.pow(array(x), array(e))
        dtype_is("pow int %s" % dtype, out, dtype)
        with np.errstate(all="ignore"):
            equal("pow int %s" % dtype, read(out), np.power(x, e))
    # negative integer exponents: numpy refuses them; the truncated real value is 0 for
    # |base| >= 2 (MLX returns 0; bases +-1 are left out: MLX's CPU kernel gives 0 there too,
    # not the real value 1 / -1)
    base = np.array([2, -2, 3, -5, 7], dtype=np.int32)
    ex = np.array([-1, -1, -2, -3, -1], dtype=np.int32)
    equal("pow int negative exponent", read(lx.pow(array(base), array(ex))),
          np.zeros(5, np.int32))
    # pow_scalar keeps a's dtype
    x = vals("float32", (7,), 0.5, 2.0)
    out = lx.pow_scalar(array(x, "float32"), 2.5)
    dtype_is("pow_scalar f32", out, "float32")
    close("pow_scalar f32", read64(out), x ** 2.5, rtol=3 * EPS32)


@test
def test_binary_int():
    for dtype in ("int32", "int8", "uint8", "int64", "uint32", "int16", "uint16", "uint64"):
        info = np.iinfo(lxpy.NP_OF[dtype])
        lo, hi = max(info.min, -120), min(info.max, 120)
        for k, (sa, sb) in enumerate(BIN_SHAPES):
            la, lb = LAYOUTS[k % 3], LAYOUTS[(k + 2) % 3]
            a, b = vals(dtype, sa, lo, hi), vals(dtype, sb, lo, hi)
            d = away0(dtype, sb, 1, 9)
            A, B, D = mk(a, dtype, la), mk(b, dtype, lb), mk(d, dtype, lb)
            what = "%s %s x %s" % (dtype, sa, sb)
            with np.errstate(all="ignore"):
                for op, ref in (("add", a + b), ("sub", a - b), ("mul", a * b),
                                ("maximum", np.maximum(a, b)), ("minimum", np.minimum(a, b))):
                    out = getattr(lx, op)(A, B)
                    dtype_is(op + " " + what, out, dtype)
                    equal(op + " " + what + " (wraps)", read(out), ref)
                # floor_divide / remainder: Python's sign rules (floor, sign of the divisor)
                out = lx.floor_divide(A, D)
                dtype_is("floor_divide " + what, out, dtype)
                equal("floor_divide " + what, read(out), np.floor_divide(a, d))
                out = lx.remainder(A, D)
                dtype_is("remainder " + what, out, dtype)
                equal("remainder " + what, read(out), np.remainder(a, d))
                # integer / integer is true division in float32
                out = lx.div(A, D)
                dtype_is("div " + what, out, "float32")
                close("div " + what, read64(out), a.astype(np.float64) / d,
                      rtol=EPS32)
    # the sign rules spelled out
    a = np.array([7, -7, 7, -7, 0, 6, -6], dtype=np.int32)
    b = np.array([2, 2, -2, -2, 3, -4, 4], dtype=np.int32)
    equal("floor_divide signs", read(lx.floor_divide(array(a), array(b))),
          np.array([3, -4, -4, 3, 0, -2, -2], np.int32))
    equal("remainder signs", read(lx.remainder(array(a), array(b))),
          np.array([1, 1, -1, -1, 0, -2, 2], np.int32))
    af, bf = a.astype(np.float64) + 0.5, b.astype(np.float64)
    equal("float remainder signs", read64(lx.remainder(array(af, "float32"), array(bf, "float32"))),
          np.remainder(af, bf))
    equal("float floor_divide signs",
          read64(lx.floor_divide(array(af, "float32"), array(bf, "float32"))),
          np.floor_divide(af, bf))


@test
def test_binary_mixed_values():
    # values survive promotion (and do not wrap in the narrower type)
    u = np.array([3000000000, 5, 4294967295], dtype=np.uint32)
    i = np.array([-5, -10, 1], dtype=np.int32)
    out = lx.add(array(u), array(i))
    dtype_is("uint32 + int32", out, "int64")
    equal("uint32 + int32 values", read(out), u.astype(np.int64) + i)
    out = lx.less(array(i), array(u))
    equal("int32 < uint32 compares as int64", read(out), i.astype(np.int64) < u)
    a8, b8 = np.array([100, -100], np.int8), np.array([200, 250], np.uint8)
    out = lx.add(array(a8), array(b8))
    dtype_is("int8 + uint8", out, "int16")
    equal("int8 + uint8 values", read(out), a8.astype(np.int16) + b8)
    ii = np.array([1, -7, 2048, 3], np.int32)
    h = round_to(np.array([0.5, 1.25, 1.0, -3.0]), "float16")
    out = lx.mul(array(ii), array(h, "float16"))
    dtype_is("int32 * float16", out, "float16")
    close("int32 * float16 values", read64(out), round_to(ii * h, "float16"), rtol=EPS["float16"])
    out = lx.add(array(h, "float16"), array(h, "bfloat16"))
    dtype_is("float16 + bfloat16", out, "float32")
    out = lx.add(array(np.array([True, False])), array(np.array([True, True])))
    dtype_is("bool + bool", out, "bool")
    out = lx.add(array(np.array([True, False])), array(np.array([3, 4], np.int8)))
    dtype_is("bool + int8", out, "int8")
    equal("bool + int8 values", read(out), np.array([4, 4], np.int8))
    u64 = np.array([2 ** 40, 7], np.uint64)
    out = lx.add(array(u64), array(np.array([1, -1], np.int32)))
    dtype_is("uint64 + int32", out, "float32")
    close("uint64 + int32 values", read64(out), np.array([2.0 ** 40 + 1, 6.0]), rtol=EPS32)


@test
def test_scalar_forms():
    x = vals("float32", (3, 5))
    X = array(x, "float32")
    for op, f in (("add_scalar", lambda v, s: v + s), ("sub_scalar", lambda v, s: v - s),
                  ("mul_scalar", lambda v, s: v * s), ("div_scalar", lambda v, s: v / s)):
        s = 0.3
        out = getattr(lx, op)(X, s)
        dtype_is(op + " f32", out, "float32")
        # s is converted to float32 first; one rounding of the result
        ref = f(x, float(np.float32(s)))
        close(op + " f32", read64(out), ref, tol=ftol("float32", ref))
    h = vals("float16", (9,))
    out = lx.add_scalar(array(h, "float16"), 1000.3)
    dtype_is("add_scalar f16", out, "float16")
    # 1000.3 becomes float16 1000.5, then one rounding of h + 1000.5
    close("add_scalar f16", read64(out), round_to(h + 1000.5, "float16"), rtol=EPS["float16"])
    i = np.array([7, -7, 5, 100], np.int32)
    out = lx.add_scalar(array(i), 2.7)
    dtype_is("add_scalar int32 keeps int32", out, "int32")
    equal("add_scalar int32: s truncated to 2", read(out), i + 2)
    out = lx.div_scalar(array(i), 2.5)
    dtype_is("div_scalar int32 keeps int32", out, "int32")
    equal("div_scalar int32 (quotient truncated)", read(out), np.trunc(i / 2.5).astype(np.int32))
    out = lx.mul_scalar(array(np.array([200, 3], np.uint8)), 2.0)
    equal("mul_scalar uint8 wraps", read(out), np.array([144, 6], np.uint8))


# ---- 3. comparisons, logical, where, clip ------------------------------------------------
@test
def test_comparisons_logical():
    cmp = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less,
           "less_equal": np.less_equal, "greater": np.greater, "greater_equal": np.greater_equal}
    for dtype in ("float32", "float16", "bfloat16", "int32", "uint8", "bool", "float64"):
        for k, (sa, sb) in enumerate(BIN_SHAPES):
            a = vals(dtype, sa, -3, 3)
            b = vals(dtype, sb, -3, 3)
            if dtype in FLOATS:  # make ties likely
                a = np.round(a * 2) / 2
                b = np.round(b * 2) / 2
            A, B = mk(a, dtype, LAYOUTS[k % 3]), mk(b, dtype, LAYOUTS[(k + 1) % 3])
            for name, f in cmp.items():
                out = getattr(lx, name)(A, B)
                dtype_is(name, out, "bool")
                equal("%s %s %s %s" % (name, dtype, sa, sb), read(out), f(a, b))
            for name, f in (("logical_and", np.logical_and), ("logical_or", np.logical_or)):
                out = getattr(lx, name)(A, B)
                dtype_is(name, out, "bool")
                equal("%s %s %s %s" % (name, dtype, sa, sb), read(out), f(a, b))
            equal("logical_not %s" % dtype, read(lx.logical_not(A)), np.logical_not(a))
    nan = float("nan")
    a = np.array([nan, nan, 1.0, 0.0, -0.0, float("inf")])
    b = np.array([nan, 1.0, nan, -0.0, 0.0, float("inf")])
    for dtype in ("float32", "float16", "bfloat16"):
        A, B = array(a, dtype), array(b, dtype)
        for name, f in cmp.items():
            with np.errstate(invalid="ignore"):
                equal("%s with NaN %s" % (name, dtype), read(getattr(lx, name)(A, B)), f(a, b))
        # NaN is nonzero, so true for the logical ops
        equal("logical_and NaN %s" % dtype, read(lx.logical_and(A, B)), np.logical_and(a, b))
        equal("logical_not NaN %s" % dtype, read(lx.logical_not(A)), np.logical_not(a))


@test
def test_where():
    for k, (sc, sa, sb) in enumerate([((3, 4), (3, 4), (3, 4)), ((4,), (3, 1), ()),
                                      ((2, 1, 3), (1, 4, 1), (3,)), ((0, 2), (2,), (1,))]):
        c = vals("float32", sc)
        c = np.where(np.abs(c) < 1.0, 0.0, c)  # cond from a float: nonzero is true
        a, b = vals("int32", sa, -50, 50), vals("float16", sb)
        out = lx.where(mk(c, "float32", LAYOUTS[k % 3]), mk(a, "int32", LAYOUTS[(k + 1) % 3]),
                       array(b, "float16"))
        dtype_is("where dtype", out, "float16")
        equal("where %s %s %s" % (sc, sa, sb), read64(out),
              round_to(np.where(c != 0, a, b), "float16"))
    nan = float("nan")
    out = lx.where(array(np.array([True, False])), array(np.array([nan, 1.0]), "float32"),
                   array(np.array([2.0, nan]), "float32"))
    equal("where selects NaN untouched", read64(out), np.array([nan, nan]))
    expect_error("where bad shapes", lambda: lx.where(array(np.ones((2, 3), bool)),
                                                      array(np.ones(4)), array(np.ones(3))),
                 E_SHAPE)


@test
def test_clip():
    for dtype in ("float32", "float16", "bfloat16", "int32", "float64"):
        x = vals(dtype, (5, 6), -10, 10)
        lo = vals(dtype, (6,), -5, 0)
        hi = vals(dtype, (5, 1), 1, 5)
        X = mk(x, dtype, "t")
        equal("clip both %s" % dtype, read64(lx.clip(X, array(lo, dtype), array(hi, dtype))),
              np.minimum(np.maximum(x, lo), hi))
        equal("clip lo only %s" % dtype, read64(lx.clip(X, array(lo, dtype), None)),
              np.maximum(x, lo))
        equal("clip hi only %s" % dtype, read64(lx.clip(X, None, array(hi, dtype))),
              np.minimum(x, hi))
    # promotion as maximum/minimum: int32 array clipped by float32 bounds is float32
    out = lx.clip(array(np.array([1, 5, 9], np.int32)), array(np.float32(2.5)),
                  array(np.float32(7.5)))
    dtype_is("clip int32 by float32", out, "float32")
    equal("clip int32 by float32", read64(out), np.array([2.5, 5.0, 7.5]))
    nan = float("nan")
    equal("clip NaN propagates", read64(lx.clip(array(np.array([nan, 3.0]), "float32"),
                                                 array(np.float32(0)), array(np.float32(1)))),
          np.array([nan, 1.0]))


@test
def test_isclose_allclose_array_equal():
    nan, inf = float("nan"), float("inf")
    a = np.array([1.0, 1.0, 1.0, nan, nan, inf, inf, -inf, 0.0, 1e-9, 100.0])
    b = np.array([1.0, 1.0 + 1e-6, 1.1, nan, 1.0, inf, -inf, -inf, 1e-9, 0.0, 100.1])
    for dtype in ("float32", "float64"):
        A, B = array(a, dtype), array(b, dtype)
        aa, bb = round_to(a, dtype), round_to(b, dtype)
        for rtol, atol in ((1e-5, 1e-8), (1e-2, 0.0), (0.0, 0.2)):
            for en in (False, True):
                out = lx.isclose(A, B, rtol, atol, en)
                dtype_is("isclose", out, "bool")
                equal("isclose %s rtol=%g atol=%g equal_nan=%s" % (dtype, rtol, atol, en),
                      read(out), np.isclose(aa, bb, rtol=rtol, atol=atol, equal_nan=en))
    # broadcasting, and a random bulk check away from the boundary
    x = vals("float32", (4, 5))
    y = x + rng.choice([0.0, 1e-7, 1e-3], (4, 5)) * np.abs(x)
    y = round_to(y, "float32")
    equal("isclose broadcast", read(lx.isclose(array(x, "float32"), array(y[:1], "float32"),
                                               1e-5, 1e-8, False)),
          np.isclose(x, y[:1], 1e-5, 1e-8))
    ac = lx.allclose(array(x, "float32"), array(x * (1 + 1e-7), "float32"), 1e-5, 1e-8, False)
    dtype_is("allclose", ac, "bool")
    check(bool(read(ac)), "allclose of nearly equal arrays")
    check(lxpy.read(ac).shape == (), "allclose is a scalar: %s" % (read(ac).shape,))
    check(not bool(read(lx.allclose(array(x, "float32"), array(x + 1, "float32"),
                                    1e-5, 1e-8, False))), "allclose of different arrays")
    check(not bool(read(lx.allclose(array(a, "float32"), array(a, "float32"), 1e-5, 1e-8,
                                    False))), "allclose with NaN, equal_nan=False")
    check(bool(read(lx.allclose(array(a, "float32"), array(a, "float32"), 1e-5, 1e-8,
                                True))), "allclose with NaN, equal_nan=True")
    ae = lx.array_equal(array(x, "float32"), array(x, "float32"), False)
    dtype_is("array_equal", ae, "bool")
    check(bool(read(ae)), "array_equal same")
    check(bool(read(lx.array_equal(array(np.array([1, 2, 3], np.int32)),
                                   array(np.array([1.0, 2.0, 3.0]), "float32"), False))),
          "array_equal across dtypes (values compared after promotion)")
    check(not bool(read(lx.array_equal(array(x, "float32"), array(x[:, :4], "float32"),
                                       False))), "array_equal different shapes is false")
    check(not bool(read(lx.array_equal(array(x, "float32"), array(x[None], "float32"),
                                       False))), "array_equal [4,5] vs [1,4,5] is false")
    check(not bool(read(lx.array_equal(array(a, "float32"), array(a, "float32"), False))),
          "array_equal NaN equal_nan=False")
    check(bool(read(lx.array_equal(array(a, "float32"), array(a, "float32"), True))),
          "array_equal NaN equal_nan=True")
    check(bool(read(lx.array_equal(array(np.zeros((0, 3))), array(np.zeros((0, 3))), False))),
          "array_equal of empty arrays")


# ---- 4. unary math -----------------------------------------------------------------------
_erfinv64 = lxpy.erfinv64
_erf64 = lxpy.erf64


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name: (numpy reference, low, high, scale of the absolute error budget, extra ulps)
UNARY = {
    "neg": (lambda x: -x, -3, 3, 0, 0),
    "abs": (np.abs, -3, 3, 0, 0),
    "sign": (np.sign, -3, 3, 0, 0),
    "square": (np.square, -3, 3, 0, 0),
    "sqrt": (np.sqrt, 0, 9, 0, 1),
    "rsqrt": (lambda x: 1 / np.sqrt(x), 0.01, 9, 0, 2),
    "reciprocal": (lambda x: 1 / x, 0.1, 3, 0, 1),
    "exp": (np.exp, -10, 10, 0, 3),
    "expm1": (np.expm1, -3, 3, 0, 3),
    "log": (np.log, 0.01, 20, 1, 3),
    "log1p": (np.log1p, -0.99, 5, 1, 3),
    "log2": (np.log2, 0.01, 20, 1, 3),
    "log10": (np.log10, 0.01, 20, 1, 3),
    "sin": (np.sin, -10, 10, 1, 3),
    "cos": (np.cos, -10, 10, 1, 3),
    "tan": (np.tan, -1.4, 1.4, 1, 4),
    "tanh": (np.tanh, -5, 5, 1, 3),
    "erf": (_erf64, -3, 3, 1, 4),
    "erfinv": (_erfinv64, -0.99, 0.99, 1, 8),
    "sigmoid": (_sigmoid, -12, 12, 1, 3),
    "silu": (lambda x: x * _sigmoid(x), -8, 8, 1, 4),
    "relu": (lambda x: np.maximum(x, 0), -3, 3, 0, 0),
    "gelu": (lambda x: 0.5 * x * (1 + _erf64(x / np.sqrt(2))), -5, 5, 1, 4),
    "gelu_approx": (lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) *
                                                     (x + 0.044715 * x ** 3))), -5, 5, 1, 4),
    "floor": (np.floor, -5, 5, 0, 0),
    "ceil": (np.ceil, -5, 5, 0, 0),
    "round": (np.round, -5, 5, 0, 0),  # half to even (std::rint), as numpy
}


@test
def test_unary_float():
    shapes = [(17,), (3, 5), (2, 3, 4), (0,), (1, 1), ()]
    for name, (f, lo, hi, absscale, ulps) in UNARY.items():
        for dtype in ("float32", "float16", "bfloat16", "float64"):
            for k, shp in enumerate(shapes):
                x = vals(dtype, shp, lo, hi)
                if name in ("floor", "ceil", "round"):
                    x = round_to(np.round(x * 4) / 4, dtype)  # exact halves and quarters
                with np.errstate(all="ignore"):
                    ref = f(x)
                w = f32ish(dtype)
                # the function's own error (ulps of the working precision, relative and at
                # the function's absolute scale), then one rounding to dtype
                tol = ftol(dtype, ref, 1.0, ulps * EPS[w], ulps * EPS[w] * absscale)
                if name in ("gelu", "gelu_approx", "silu") and dtype in HALF:
                    # MLX composes these from elementwise ops in the input dtype; lx may
                    # compute them in float32: allow a few ulps of the dtype at |x|
                    tol = tol + 3 * EPS[dtype] * np.abs(x)
                if name == "erfinv":
                    # condition: erfinv'(y) = sqrt(pi)/2 exp(erfinv(y)^2)
                    tol = tol + 8 * EPS[w] * np.abs(x) * np.sqrt(np.pi) / 2 * np.exp(ref ** 2)
                what = "%s %s %s" % (name, dtype, shp)
                try:
                    out = getattr(lx, name)(mk(x, dtype, LAYOUTS[k % 3]))
                except LxError as e:
                    check(False, "%s: %s" % (what, e))
                    continue
                dtype_is(what, out, dtype)
                close(what, read64(out), ref, tol=tol)


@test
def test_unary_int_inputs():
    x = np.array([-3, -1, 0, 2, 5], np.int32)
    X = array(x)
    for name in ("neg", "abs", "sign", "square", "floor", "ceil", "round", "relu"):
        f = UNARY[name][0]
        out = getattr(lx, name)(X)
        dtype_is(name + " int32", out, "int32")
        equal(name + " int32", read(out), f(x).astype(np.int32))
    for name in ("sqrt", "exp", "sin", "sigmoid", "erf", "log1p"):
        f = UNARY[name][0]
        out = getattr(lx, name)(array(np.abs(x)))
        dtype_is(name + " int32 -> float32", out, "float32")
        close(name + " int32 -> float32", read64(out), f(np.abs(x).astype(np.float64)),
              rtol=5 * EPS32, atol=5 * EPS32)
    u = np.array([0, 1, 200], np.uint8)
    equal("sign uint8", read(lx.sign(array(u))), np.array([0, 1, 1], np.uint8))
    equal("abs uint8", read(lx.abs(array(u))), u)
    equal("abs int8 -128 wraps", read(lx.abs(array(np.array([-128, -5], np.int8)))),
          np.array([-128, 5], np.int8))
    b = np.array([True, False])
    equal("isnan int", read(lx.isnan(X)), np.zeros(5, bool))
    equal("isfinite int", read(lx.isfinite(X)), np.ones(5, bool))
    equal("logical_not bool", read(lx.logical_not(array(b))), ~b)
    equal("logical_not int", read(lx.logical_not(X)), x == 0)


@test
def test_unary_nan_inf():
    nan, inf = float("nan"), float("inf")
    x = np.array([nan, inf, -inf, 0.0, -0.0])
    with np.errstate(all="ignore"):
        cases = {
            "neg": -x, "abs": np.abs(x), "square": x * x, "sqrt": np.sqrt(x),
            "exp": np.exp(x), "expm1": np.expm1(x), "log": np.log(x), "log1p": np.log1p(x),
            "sin": np.sin(x), "cos": np.cos(x), "tanh": np.tanh(x),
            "erf": np.array([nan, 1.0, -1.0, 0.0, -0.0]),
            "sigmoid": np.array([nan, 1.0, 0.0, 0.5, 0.5]),
            "relu": np.array([nan, inf, 0.0, 0.0, 0.0]),
            "floor": x, "ceil": x, "round": x, "reciprocal": 1 / x,
            "rsqrt": 1 / np.sqrt(x),
        }
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        X = array(x, dtype)
        for name, ref in cases.items():
            equal("%s of NaN/Inf/0 %s" % (name, dtype), read64(getattr(lx, name)(X)), ref)
        equal("isnan %s" % dtype, read(lx.isnan(X)), np.isnan(x))
        equal("isinf %s" % dtype, read(lx.isinf(X)), np.isinf(x))
        equal("isfinite %s" % dtype, read(lx.isfinite(X)), np.isfinite(x))
        # erfinv(+-1) = +-inf, outside (-1, 1) NaN
        equal("erfinv edges %s" % dtype,
              read64(lx.erfinv(array(np.array([1.0, -1.0, 2.0, nan]), dtype))),
              np.array([inf, -inf, nan, nan]))
        # log of a negative is NaN; -0 keeps its sign through neg
        check(np.isnan(read64(lx.log(array(np.array([-1.0]), dtype)))[0]), "log(-1) NaN")
        check(not np.signbit(read64(lx.neg(array(np.array([-0.0]), dtype)))[0]),
              "neg(-0) = +0 %s" % dtype)


@test
def test_astype():
    x = np.array([1.5, -1.5, 2.5, -2.7, 0.0, 300.7, -300.2, 1e5])
    # float -> int truncates toward zero (C conversion), in range
    xi = x[np.abs(x) < 127]
    equal("astype f32->int8", read(lx.astype(array(xi, "float32"), "int8")),
          np.trunc(xi).astype(np.int8))
    equal("astype f32->int32", read(lx.astype(array(x, "float32"), "int32")),
          np.trunc(x).astype(np.int32))
    equal("astype f64->int64", read(lx.astype(array(x), "int64")), np.trunc(x).astype(np.int64))
    # float -> half rounds to nearest even
    y = rng.standard_normal(1000) * 100
    equal("astype f64->f16", read64(lx.astype(array(y), "float16")), y.astype(np.float16))
    equal("astype f32->bf16", read64(lx.astype(array(y, "float32"), "bfloat16")),
          round_to(y.astype(np.float32), "bfloat16"))
    # ties: bf16 spacing at 1 is 2^-7; 1 + 2^-8 is a tie -> 1 (even), 1 + 3*2^-8 -> 1 + 2^-6
    t = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8)], np.float32)
    equal("astype bf16 ties to even", read64(lx.astype(array(t), "bfloat16")),
          np.array([1.0, 1 + 2 ** -6, -1.0]))
    big = np.array([70000.0, -70000.0, float("inf"), float("nan")])
    with np.errstate(over="ignore"):
        equal("astype f32->f16 overflow to inf",
              read64(lx.astype(array(big, "float32"), "float16")),
              big.astype(np.float16).astype(np.float64))
    # int -> narrower int wraps; bool conversions
    v = np.array([300, -1, 255, 128], np.int32)
    equal("astype int32->uint8 wraps", read(lx.astype(array(v), "uint8")), v.astype(np.uint8))
    equal("astype int32->bool", read(lx.astype(array(v), "bool")), v != 0)
    equal("astype f32->bool (NaN true)",
          read(lx.astype(array(np.array([0.0, -0.0, 0.5, float("nan")]), "float32"), "bool")),
          np.array([False, False, True, True]))
    equal("astype bool->f16", read64(lx.astype(array(np.array([True, False])), "float16")),
          np.array([1.0, 0.0]))
    # non-contiguous source
    m = vals("float32", (3, 4))
    equal("astype of a transposed view", read64(lx.astype(mk(m, "float32", "t"), "float16")),
          m.astype(np.float16))


# ---- 5. reductions -----------------------------------------------------------------------
RED_SHAPES = [(4, 5, 6), (7,), (3, 1, 4), (1, 8), (2, 3, 1, 5)]


def _red_tol(dtype, ref, absx_sum, n):
    """Accumulation in float32 (float64 for float64): n * eps * sum|x|, then rounding."""
    w = f32ish(dtype)
    return ftol(dtype, ref, 1.0, 0.0, n * EPS[w] * absx_sum)


def _axes_list(nd):
    out = [(a,) for a in range(nd)] + [(a - nd,) for a in range(nd)]
    if nd >= 2:
        out.append((0, nd - 1))
        out.append((-1, -2))
    out.append(None)
    return out


def _lx_reduce(name, X, axes, keepdims, ddof=None):
    """one axis -> lx_<name>(a, axis, keepdims); several or all -> lx_<name>_axes."""
    extra = () if ddof is None else (ddof,)
    if axes is not None and len(axes) == 1:
        return getattr(lx, name)(X, axes[0], keepdims, *extra)
    if axes is None:
        return getattr(lx, name + "_axes")(X, None, 0, keepdims, *extra)
    return getattr(lx, name + "_axes")(X, list(axes), len(axes), keepdims, *extra)


@test
def test_reductions_float():
    for dtype in ("float32", "float16", "bfloat16", "float64"):
        for k, shp in enumerate(RED_SHAPES):
            x = vals(dtype, shp)
            X = mk(x, dtype, LAYOUTS[k % 3])
            for axes in _axes_list(len(shp)):
                ax = None if axes is None else tuple(axes)
                n = x.size if ax is None else int(np.prod([shp[a] for a in ax]))
                for kd in (False, True):
                    what = "%s %s axes=%s keepdims=%s" % (dtype, shp, axes, kd)
                    s = np.sum(x, axis=ax, keepdims=kd)
                    sa = np.sum(np.abs(x), axis=ax, keepdims=kd)
                    out = _lx_reduce("sum", X, axes, kd)
                    close("sum " + what, read64(out), s, tol=_red_tol(dtype, s, sa, n))
                    m = s / n
                    out = _lx_reduce("mean", X, axes, kd)
                    close("mean " + what, read64(out), m, tol=_red_tol(dtype, m, sa / n, n))
                    equal("max " + what, read64(_lx_reduce("max", X, axes, kd)),
                          np.max(x, axis=ax, keepdims=kd))
                    equal("min " + what, read64(_lx_reduce("min", X, axes, kd)),
                          np.min(x, axis=ax, keepdims=kd))
                    p = np.prod(x, axis=ax, keepdims=kd)
                    pa = np.prod(np.abs(x), axis=ax, keepdims=kd)
                    # (the float64 product rounded to dtype: float16 products may overflow)
                    close("prod " + what, read64(_lx_reduce("prod", X, axes, kd)),
                          round_to(p, dtype),
                          tol=ftol(dtype, p, 1.0, 0.0, 2 * n * EPS[f32ish(dtype)] * pa))
                    lse = np.log(np.sum(np.exp(x), axis=ax, keepdims=kd))
                    close("logsumexp " + what, read64(_lx_reduce("logsumexp", X, axes, kd)), lse,
                          tol=ftol(dtype, lse, 1.0, 0.0, (n + 8) * EPS[f32ish(dtype)] * 4))
                    for ddof in (0, 1):
                        if n - ddof <= 0:
                            continue
                        v = np.var(x, axis=ax, keepdims=kd, ddof=ddof)
                        # var = sum((x - mean)^2) / (n - ddof): error ~ n eps * sum x^2 / n
                        sq = np.sum(x * x, axis=ax, keepdims=kd) / max(n - ddof, 1)
                        vt = ftol(dtype, v, 1.0, 0.0, 4 * n * EPS[f32ish(dtype)] * sq)
                        close("var ddof=%d %s" % (ddof, what),
                              read64(_lx_reduce("var", X, axes, kd, ddof)), v, tol=vt)
                        sd = np.sqrt(v)
                        close("std ddof=%d %s" % (ddof, what),
                              read64(_lx_reduce("std", X, axes, kd, ddof)), sd,
                              tol=ftol(dtype, sd, 1.0, 0.0) + vt / np.maximum(2 * sd, 1e-30))
                    equal("all " + what, read(_lx_reduce("all", X, axes, kd)),
                          np.all(x, axis=ax, keepdims=kd))
                    equal("any " + what, read(_lx_reduce("any", X, axes, kd)),
                          np.any(x, axis=ax, keepdims=kd))


@test
def test_reductions_int_bool():
    for dtype in ("int32", "int8", "uint8", "int64", "bool", "uint32"):
        for k, shp in enumerate(RED_SHAPES[:4]):
            x = vals(dtype, shp, -9, 9)
            X = mk(x, dtype, LAYOUTS[k % 3])
            for axes in _axes_list(len(shp)):
                ax = None if axes is None else tuple(axes)
                n = x.size if ax is None else int(np.prod([shp[a] for a in ax]))
                what = "%s %s axes=%s" % (dtype, shp, axes)
                acc = {"int64": np.int64, "uint32": np.uint32, "uint8": np.uint32}.get(
                    dtype, np.int32)
                with np.errstate(all="ignore"):
                    equal("sum " + what, read(_lx_reduce("sum", X, axes, False)),
                          np.sum(x.astype(acc), axis=ax, dtype=acc))
                    equal("prod " + what, read(_lx_reduce("prod", X, axes, True)),
                          np.prod(x.astype(acc), axis=ax, keepdims=True, dtype=acc))
                m = np.mean(x.astype(np.float64), axis=ax)
                close("mean " + what, read64(_lx_reduce("mean", X, axes, False)), m,
                      rtol=2 * EPS32, atol=n * EPS32 * 9)
                if dtype != "bool":
                    equal("max " + what, read(_lx_reduce("max", X, axes, False)),
                          np.max(x, axis=ax))
                    equal("min " + what, read(_lx_reduce("min", X, axes, True)),
                          np.min(x, axis=ax, keepdims=True))
                v = np.var(x.astype(np.float64), axis=ax)
                close("var " + what, read64(_lx_reduce("var", X, axes, False, 0)), v,
                      rtol=8 * n * EPS32, atol=8 * n * EPS32 * 81)
                equal("all " + what, read(_lx_reduce("all", X, axes, False)), np.all(x, axis=ax))
                equal("any " + what, read(_lx_reduce("any", X, axes, True)),
                      np.any(x, axis=ax, keepdims=True))
    # sum of bool counts the true values in int32
    b = rng.integers(0, 2, (50, 7)).astype(bool)
    out = lx.sum(array(b), 0, False)
    dtype_is("sum(bool)", out, "int32")
    equal("sum(bool) counts", read(out), b.sum(0).astype(np.int32))
    # int8 sums do not wrap at 8 bits (accumulated in int32)
    i8 = np.full((300,), 100, np.int8)
    equal("sum(int8) in int32", read(lx.sum(array(i8), 0, False)), np.int32(30000))


@test
def test_reductions_edge():
    nan, inf = float("nan"), float("inf")
    x = np.array([[1.0, nan, 3.0], [inf, 2.0, -inf], [1.0, 2.0, 3.0]])
    X = array(x, "float32")
    for name, f in (("sum", np.sum), ("max", np.max), ("min", np.min), ("prod", np.prod),
                    ("mean", np.mean)):
        with np.errstate(all="ignore"):
            equal("%s NaN/Inf rows" % name, read64(getattr(lx, name)(X, 1, False)), f(x, axis=1))
    equal("logsumexp with NaN/-inf", read64(lx.logsumexp(
        array(np.array([[nan, 0.0], [-inf, -inf], [inf, 1.0], [-inf, 0.0]]), "float32"), 1, False)),
        np.array([nan, -inf, inf, 0.0]))
    # logsumexp of large values does not overflow
    big = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])
    close("logsumexp stable", read64(lx.logsumexp(array(big, "float32"), 1, False)),
          np.array([1000 + np.log(2), -1000 + np.log(2)]), rtol=2 * EPS32)
    # empty reductions: identities
    e = np.zeros((0, 4))
    E = array(e, "float32")
    equal("sum over empty axis", read64(lx.sum(E, 0, False)), np.zeros(4))
    equal("prod over empty axis", read64(lx.prod(E, 0, False)), np.ones(4))
    equal("sum over non-empty axis of empty", read64(lx.sum(E, 1, False)), np.zeros(0))
    equal("sum all of empty", read64(lx.sum_axes(E, None, 0, False)), np.float64(0))
    equal("all over empty axis", read(lx.all(E, 0, False)), np.ones(4, bool))
    equal("any over empty axis", read(lx.any(E, 0, False)), np.zeros(4, bool))
    with np.errstate(all="ignore"):
        equal("mean over empty axis is NaN", read64(lx.mean(E, 0, False)), np.full(4, nan))
    expect_error("argmax of empty (MLX refuses)", lambda: lx.argmax(E, 0, False))
    # max / min / logsumexp have no identity: MLX refuses a size-0 reduced axis, and
    # accepts an empty array reduced over a non-empty axis
    expect_error("max over an empty axis (MLX refuses)", lambda: lx.max(E, 0, False))
    expect_error("min over an empty axis (MLX refuses)", lambda: lx.min(E, 0, False))
    expect_error("max over all axes of an empty array",
                 lambda: lx.max_axes(E, None, 0, False))
    equal("max over the non-empty axis of an empty array", read64(lx.max(E, 1, False)),
          np.zeros(0))
    expect_error("logsumexp of an empty array (MLX refuses)",
                 lambda: lx.logsumexp(E, 0, False))
    # size-1 axis and scalar input
    equal("sum over size-1 axis", read64(lx.sum(array(np.ones((3, 1, 2)), "float32"), 1, True)),
          np.ones((3, 1, 2)))
    s = array(np.float32(2.5))
    equal("sum_axes of 0-d", read64(lx.sum_axes(s, None, 0, False)), np.float64(2.5))
    # bad axes
    expect_error("sum axis out of range", lambda: lx.sum(X, 2, False), E_ARG)
    expect_error("sum axis -3", lambda: lx.sum(X, -3, False), E_ARG)
    expect_error("sum_axes duplicate axes", lambda: lx.sum_axes(X, [0, -2], 2, False))


@test
def test_argmax_argmin():
    for dtype in ("float32", "float16", "bfloat16", "int32", "uint8", "bool", "float64"):
        for k, shp in enumerate(RED_SHAPES):
            x = vals(dtype, shp, -4, 4)
            if dtype in FLOATS:
                x = np.round(x)  # ties: the first occurrence wins
            X = mk(x, dtype, LAYOUTS[k % 3])
            for ax in range(-len(shp), len(shp)):
                for kd in (False, True):
                    out = lx.argmax(X, ax, kd)
                    dtype_is("argmax", out, "uint32")
                    ref = np.argmax(x, axis=ax)
                    if kd:
                        ref = np.expand_dims(ref, ax)
                    equal("argmax %s %s axis=%d kd=%s" % (dtype, shp, ax, kd), read(out), ref)
                    ref = np.argmin(x, axis=ax)
                    if kd:
                        ref = np.expand_dims(ref, ax)
                    equal("argmin %s %s axis=%d kd=%s" % (dtype, shp, ax, kd),
                          read(lx.argmin(X, ax, kd)), ref)
    inf = float("inf")
    x = np.array([[-inf, -inf, 1.0], [inf, 5.0, inf], [2.0, 2.0, 2.0]])
    equal("argmax with inf and ties", read(lx.argmax(array(x, "float32"), 1, False)),
          np.array([2, 0, 0]))
    equal("argmin with -inf and ties", read(lx.argmin(array(x, "float32"), 1, False)),
          np.array([0, 1, 0]))


# ---- 6. scans ----------------------------------------------------------------------------
@test
def test_scans():
    for dtype in ("float32", "float16", "bfloat16", "float64", "int32", "int64"):
        for k, shp in enumerate([(4, 6), (10,), (2, 3, 5), (1, 1), (0, 3)]):
            lo, hi = (-2, 2) if dtype in FLOATS else (-3, 3)
            x = vals(dtype, shp, lo, hi)
            X = mk(x, dtype, LAYOUTS[k % 3])
            for ax in range(-len(shp), len(shp)):
                n = shp[ax]
                what = "%s %s axis=%d" % (dtype, shp, ax)
                if dtype in FLOATS:
                    c = np.cumsum(x, axis=ax)
                    ca = np.cumsum(np.abs(x), axis=ax)
                    close("cumsum " + what, read64(lx.cumsum(X, ax)), c,
                          tol=ftol(dtype, c, 1.0, 0.0, n * EPS[f32ish(dtype)] * ca))
                    xp = x * 0.5 + np.sign(x) * 0.75  # factors away from 0
                    p = np.cumprod(xp, axis=ax)
                    XP = array(round_to(xp, dtype), dtype)
                    p = np.cumprod(round_to(xp, dtype), axis=ax)
                    close("cumprod " + what, read64(lx.cumprod(XP, ax)), p,
                          tol=ftol(dtype, p, 1.0 + 2 * n, 2 * n * EPS[f32ish(dtype)]))
                else:
                    equal("cumsum " + what, read(lx.cumsum(X, ax)),
                          np.cumsum(x, axis=ax).astype(x.dtype))
                    equal("cumprod " + what, read(lx.cumprod(X, ax)),
                          np.cumprod(x, axis=ax).astype(x.dtype))
                equal("cummax " + what, read64(lx.cummax(X, ax)),
                      np.maximum.accumulate(x, axis=ax).astype(np.float64))
                equal("cummin " + what, read64(lx.cummin(X, ax)),
                      np.minimum.accumulate(x, axis=ax).astype(np.float64))
    b = rng.integers(0, 2, (4, 9)).astype(bool)
    out = lx.cumsum(array(b), 1)
    dtype_is("cumsum(bool)", out, "int32")
    equal("cumsum(bool)", read(out), np.cumsum(b, 1).astype(np.int32))
    nan = float("nan")
    equal("cumsum NaN propagates forward",
          read64(lx.cumsum(array(np.array([1.0, nan, 2.0]), "float32"), 0)),
          np.array([1.0, nan, nan]))
    expect_error("cumsum bad axis", lambda: lx.cumsum(array(np.ones((2, 2))), 2), E_ARG)


# ---- 7. sorting --------------------------------------------------------------------------
@test
def test_sort_argsort():
    for dtype in ("float32", "float16", "bfloat16", "int32", "uint8", "int64", "float64"):
        for k, shp in enumerate([(5, 9), (33,), (2, 3, 7), (1, 1), (0, 4), (6, 1)]):
            x = vals(dtype, shp, -20, 20)
            if dtype in FLOATS:
                x = np.round(x * 2) / 2  # ties
            X = mk(x, dtype, LAYOUTS[k % 3])
            for ax in range(-len(shp), len(shp)):
                what = "%s %s axis=%d" % (dtype, shp, ax)
                equal("sort " + what, read64(lx.sort(X, ax)), np.sort(x, axis=ax))
                idx = read(lx.argsort(X, ax)).astype(np.int64)
                # argsort: a permutation along the axis that sorts; MLX's argsort is stable
                # (ties keep their order), as numpy's kind='stable'
                equal("argsort sorts " + what, np.take_along_axis(x, idx, ax),
                      np.sort(x, axis=ax))
                equal("argsort stable " + what, idx, np.argsort(x, axis=ax, kind="stable"))
    nan, inf = float("nan"), float("inf")
    x = np.array([3.0, nan, -inf, 1.0, nan, inf, -0.0, 0.0])
    equal("sort puts NaN last", read64(lx.sort(array(x, "float32"), 0)), np.sort(x))
    idx = read(lx.argsort(array(x, "float32"), 0))
    equal("argsort puts NaN last", x[idx], np.sort(x))


@test
def test_partition_topk():
    for dtype in ("float32", "float16", "int32", "bfloat16"):
        for k, shp in enumerate([(4, 11), (17,), (3, 5, 6)]):
            x = vals(dtype, shp, -50, 50)
            X = mk(x, dtype, LAYOUTS[k % 3])
            for ax in range(-len(shp), len(shp)):
                n = shp[ax]
                for kth in sorted({0, n // 2, n - 1, -1, -n}):
                    kk = kth % n
                    what = "%s %s axis=%d kth=%d" % (dtype, shp, ax, kth)
                    p = read64(lx.partition(X, kth, ax))
                    s = np.sort(x, axis=ax)
                    # property: p[kth] is the kth smallest; before it <=, after it >=; and
                    # p is a permutation of x along the axis
                    pm = np.moveaxis(p, ax, -1)
                    sm = np.moveaxis(s, ax, -1)
                    equal("partition kth value " + what, pm[..., kk], sm[..., kk])
                    check(np.all(pm[..., :kk] <= pm[..., kk:kk + 1]) and
                          np.all(pm[..., kk + 1:] >= pm[..., kk:kk + 1]),
                          "partition order " + what)
                    equal("partition permutes " + what, np.sort(pm, -1), sm)
                    idx = read(lx.argpartition(X, kth, ax)).astype(np.int64)
                    im = np.moveaxis(idx, ax, -1)
                    equal("argpartition is a permutation " + what, np.sort(im, -1),
                          np.broadcast_to(np.arange(n), im.shape))
                    v = np.moveaxis(np.take_along_axis(x, idx, ax), ax, -1)
                    equal("argpartition kth value " + what, v[..., kk], sm[..., kk])
                    check(np.all(v[..., :kk] <= v[..., kk:kk + 1]) and
                          np.all(v[..., kk + 1:] >= v[..., kk:kk + 1]),
                          "argpartition order " + what)
                for kk in (1, n // 2, n):
                    t = read64(lx.topk(X, kk, ax))
                    tm = np.sort(np.moveaxis(t, ax, -1), -1)
                    ref = np.moveaxis(np.sort(x, axis=ax), ax, -1)[..., n - kk:]
                    equal("topk %s k=%d (as a set)" % (what, kk), tm, ref)
    expect_error("topk k > n", lambda: lx.topk(array(np.ones(3), "float32"), 4, 0), E_ARG)
    expect_error("partition kth out of range",
                 lambda: lx.partition(array(np.ones(3), "float32"), 3, 0), E_ARG)


# ---- 8. shapes and views -----------------------------------------------------------------
@test
def test_reshape_transpose():
    x = vals("float32", (2, 3, 4))
    for layout in LAYOUTS:
        X = mk(x, "float32", layout)
        for shp in [(6, 4), (4, -1), (-1,), (2, 12), (1, 24, 1), (2, 3, 2, 2)]:
            equal("reshape %s %s" % (layout, shp), read64(lx.reshape(X, list(shp), len(shp))),
                  x.reshape(shp))
        for perm in [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)]:
            equal("transpose %s %s" % (layout, perm), read64(lx.transpose(X, list(perm), 3)),
                  x.transpose(perm))
        equal("transpose reverse (n=0)", read64(lx.transpose(X, None, 0)), x.transpose())
        equal("transpose negative axes", read64(lx.transpose(X, [-1, 0, -2], 3)),
              x.transpose(2, 0, 1))
        equal("swapaxes", read64(lx.swapaxes(X, 0, -1)), np.swapaxes(x, 0, -1))
        equal("moveaxis", read64(lx.moveaxis(X, 0, -1)), np.moveaxis(x, 0, -1))
        equal("moveaxis -1 -> 0", read64(lx.moveaxis(X, -1, 0)), np.moveaxis(x, -1, 0))
    expect_error("reshape wrong size", lambda: lx.reshape(array(x), [5, 5], 2), E_SHAPE)
    expect_error("reshape two -1", lambda: lx.reshape(array(x), [-1, -1], 2))
    expect_error("transpose repeated axis", lambda: lx.transpose(array(x), [0, 0, 1], 3))
    equal("reshape empty", read64(lx.reshape(array(np.zeros((0, 4))), [2, 0, 4], 3)),
          np.zeros((2, 0, 4)))


@test
def test_expand_squeeze_flatten_broadcast():
    x = vals("float32", (3, 1, 4))
    X = mk(x, "float32", "t")
    for axes in [(0,), (-1,), (1,), (0, 2), (-1, 0), (0, 1, 2)]:
        equal("expand_dims %s" % (axes,), read64(lx.expand_dims(X, list(axes), len(axes))),
              np.expand_dims(x, axes))
    equal("squeeze all", read64(lx.squeeze(X, None, 0)), np.squeeze(x))
    equal("squeeze axis 1", read64(lx.squeeze(X, [1], 1)), np.squeeze(x, 1))
    equal("squeeze axis -2", read64(lx.squeeze(X, [-2], 1)), np.squeeze(x, -2))
    expect_error("squeeze a non-1 axis", lambda: lx.squeeze(X, [0], 1))
    y = vals("float32", (2, 3, 4, 5))
    Y = mk(y, "float32", "s")
    for s, e in [(0, -1), (1, 2), (0, 0), (-3, -2), (2, 3)]:
        ee = e % 4
        ref = y.reshape(y.shape[:s % 4] + (-1,) + y.shape[ee + 1:])
        equal("flatten %d..%d" % (s, e), read64(lx.flatten(Y, s, e)), ref)
    for shp in [(3, 3, 4), (2, 3, 5, 4), (3, 1, 4)]:
        equal("broadcast_to %s" % (shp,), read64(lx.broadcast_to(X, list(shp), len(shp))),
              np.broadcast_to(x, shp))
    equal("broadcast_to to 0", read64(lx.broadcast_to(X, [3, 0, 4], 3)), np.zeros((3, 0, 4)))
    expect_error("broadcast_to incompatible", lambda: lx.broadcast_to(X, [3, 2, 5], 3), E_SHAPE)
    # contiguous / as_strided
    equal("contiguous of a view", read64(lx.contiguous(X)), x)
    base = np.arange(20, dtype=np.float32)
    out = lx.as_strided(array(base), [3, 4], [5, 1], 2, 2)
    equal("as_strided", read64(out), np.lib.stride_tricks.as_strided(
        base[2:], (3, 4), (20, 4)))
    out = lx.as_strided(array(base), [4, 3], [1, 0], 2, 0)
    equal("as_strided zero stride", read64(out), np.repeat(base[:4, None], 3, 1))


def _mlx_slice_norm(n, start, stop, step):
    """mlx normalize_slice for one axis -> a Python slice with the same elements."""
    s = start + n if start < 0 else start
    e = stop + n if stop < 0 else stop
    if step < 0:
        st = min(s, n - 1)
        ed = e if e > -1 else -1
        ed = st if ed > st else ed
        if st < 0:
            return slice(0, 0)  # nothing: start before the first element
        return slice(st, None if ed < 0 else ed, step)
    st = max(0, min(s, n))
    ed = max(0, min(e, n))
    ed = st if ed < st else ed
    return slice(st, ed, step)


@test
def test_slice():
    x = vals("float32", (6, 7, 5))
    for layout in LAYOUTS:
        X = mk(x, "float32", layout)
        cases = [([0, 0, 0], [6, 7, 5], [1, 1, 1]), ([1, 2, 0], [5, 7, 3], [2, 3, 1]),
                 ([-3, 0, -1], [6, -1, 5], [1, 2, 1]), ([5, 6, 4], [-7, -8, -6], [-1, -2, -1]),
                 ([0, 0, 0], [10, 100, 5], [4, 1, 5]), ([4, 0, 0], [2, 7, 5], [1, 1, 1]),
                 ([2, 3, 1], [2, 4, 2], [1, 1, 1])]
        for st, sp, sd in cases:
            sl = tuple(_mlx_slice_norm(x.shape[i], st[i], sp[i], sd[i]) for i in range(3))
            equal("slice %s %s %s %s" % (layout, st, sp, sd), read64(lx.slice(X, st, sp, sd, 3)),
                  x[sl])
        equal("slice strides NULL", read64(lx.slice(X, [1, 1, 1], [3, 4, 5], None, 3)),
              x[1:3, 1:4, 1:5])
    expect_error("slice stride 0", lambda: lx.slice(array(x), [0, 0, 0], [1, 1, 1], [1, 0, 1], 3))
    # slices of slices (views of views)
    X = lx.slice(array(x), [0, 1, 0], [6, 7, 5], [2, 1, 1], 3)
    Y = lx.slice(X, [1, 0, 4], [3, 6, -6], [1, 2, -1], 3)
    equal("slice of a slice", read64(Y), x[::2, 1:][1:3, 0:6:2, 4::-1])


@test
def test_slice_update():
    for dtype in ("float32", "int32", "float16"):
        x = vals(dtype, (6, 8), -9, 9)
        for st, sp, sd in [([1, 2], [4, 6], [1, 1]), ([0, 1], [6, 8], [2, 3]),
                           ([5, 7], [-7, -9], [-2, -3]), ([2, 0], [3, 8], [1, 1])]:
            sl = tuple(_mlx_slice_norm(x.shape[i], st[i], sp[i], sd[i]) for i in range(2))
            tgt_shape = x[sl].shape
            u = vals(dtype, tgt_shape, -9, 9)
            ref = x.copy()
            ref[sl] = u
            out = lx.slice_update(array(x, dtype), array(u, dtype), st, sp, sd, 2)
            equal("slice_update %s %s %s %s" % (dtype, st, sp, sd), read64(out),
                  ref.astype(np.float64))
            # the update broadcasts
            ref2 = x.copy()
            ref2[sl] = u[:1] if tgt_shape[0] else u
            out = lx.slice_update(mk(x, dtype, "t"), array(u[:1], dtype), st, sp, sd, 2)
            equal("slice_update broadcast %s %s" % (dtype, st), read64(out),
                  ref2.astype(np.float64))
    # the source array is unchanged (value semantics) even when updated in place
    x = np.zeros((4, 4), np.float32)
    X = array(x)
    lxpy.keep(X)
    Y = lx.slice_update(X, array(np.ones((1, 4), np.float32)), [1, 0], [2, 4], None, 2)
    lxpy.eval_(Y)
    equal("slice_update result", read64(Y)[1], np.ones(4))
    equal("slice_update leaves the source as it was", read64(X), np.zeros((4, 4)))
    lxpy.lib.lx_free(X)
    # dtype of the update is converted to the target's
    out = lx.slice_update(array(np.zeros(4, np.int32)), array(np.array([2.7], np.float32)),
                          [1], [2], None, 1)
    dtype_is("slice_update keeps the target dtype", out, "int32")
    expect_error("slice_update wrong shape",
                 lambda: lx.slice_update(array(np.zeros((4, 4))), array(np.ones((2, 3))),
                                         [0, 0], [2, 2], None, 2), E_SHAPE)


@test
def test_concatenate_stack_split():
    for dtype in ("float32", "int32", "bfloat16"):
        a, b, c = vals(dtype, (2, 3, 4)), vals(dtype, (2, 1, 4)), vals(dtype, (2, 0, 4))
        arrs = [mk(a, dtype, "t"), mk(b, dtype, "s"), array(c, dtype)]
        for ax in (1, -2):
            equal("concatenate %s axis=%d" % (dtype, ax),
                  read64(lx.concatenate(arrs, 3, ax)),
                  np.concatenate([a, b, c], axis=ax).astype(np.float64))
        equal("concatenate axis 0", read64(lx.concatenate([mk(a, dtype, "t"), array(a, dtype)],
                                                          2, 0)),
              np.concatenate([a, a], 0).astype(np.float64))
        for ax in (0, 1, 3, -1, -4):
            equal("stack %s axis=%d" % (dtype, ax),
                  read64(lx.stack([mk(a, dtype, "t"), array(a, dtype)], 2, ax)),
                  np.stack([a, a], axis=ax).astype(np.float64))
    # promotion in concatenate (MLX promotes to a common dtype)
    out = lx.concatenate([array(np.ones(2, np.int32)), array(np.ones(2, np.float16))], 2, 0)
    dtype_is("concatenate int32 + float16", out, "float16")
    expect_error("concatenate mismatched shapes",
                 lambda: lx.concatenate([array(np.ones((2, 3))), array(np.ones((3, 3)))], 2, 1),
                 E_SHAPE)
    expect_error("stack mismatched shapes",
                 lambda: lx.stack([array(np.ones((2, 3))), array(np.ones((3, 3)))], 2, 0),
                 E_SHAPE)
    x = vals("float32", (4, 10, 3))
    X = mk(x, "float32", "t")
    for idx, ax in [([3, 7], 1), ([0, 10], 1), ([2], 0), ([5, 5, 8], -2), ([12], 1)]:
        parts = lxpy.split(X, idx, ax)
        ref = np.split(x, idx, axis=ax)
        check(len(parts) == len(ref), "split count")
        for i, (p, r) in enumerate(zip(parts, ref)):
            equal("split %s axis=%d part %d" % (idx, ax, i), read64(p), r)
    for parts_n, ax in [(2, 0), (5, 1), (3, -1)]:
        parts = lxpy.split_equal(X, parts_n, ax)
        for i, (p, r) in enumerate(zip(parts, np.split(x, parts_n, axis=ax))):
            equal("split_equal %d axis=%d part %d" % (parts_n, ax, i), read64(p), r)
    expect_error("split_equal not divisible", lambda: lxpy.split_equal(X, 3, 1))


@test
def test_tile_repeat_pad():
    x = vals("float32", (2, 3))
    X = mk(x, "float32", "t")
    for reps in [(2,), (2, 1), (1, 3), (2, 2, 2), (0, 1)]:
        equal("tile %s" % (reps,), read64(lx.tile(X, list(reps), len(reps))), np.tile(x, reps))
    for r, ax in [(2, 0), (3, 1), (1, -1), (0, 0), (2, -2)]:
        equal("repeat %d axis=%d" % (r, ax), read64(lx.repeat(X, r, ax)), np.repeat(x, r, ax))
    for dtype in ("float32", "int32", "float16"):
        y = vals(dtype, (2, 3, 4), -9, 9)
        Y = mk(y, dtype, "s")
        for low, high, v in [([0, 1, 2], [1, 0, 3], 0.0), ([2, 2, 2], [0, 0, 0], -1.5),
                             ([0, 0, 0], [0, 0, 0], 7.0)]:
            ref = np.pad(y.astype(np.float64), list(zip(low, high)), constant_values=v)
            if dtype == "int32":
                ref = np.pad(y, list(zip(low, high)), constant_values=int(v)).astype(np.float64)
            out = lx.pad(Y, low, high, 3, v)
            dtype_is("pad keeps dtype", out, dtype)
            equal("pad %s %s %s %g" % (dtype, low, high, v), read64(out), ref)
    expect_error("pad negative", lambda: lx.pad(X, [-1, 0], [0, 0], 2, 0.0))


@test
def test_take():
    x = vals("float32", (5, 6, 3))
    X = mk(x, "float32", "t")
    for itype in ("int32", "uint32", "int64", "int8", "uint8"):
        for ishape in [(4,), (2, 3), (), (0,)]:
            lo = -5 if itype.startswith("int") else 0
            idx = vals(itype, ishape, lo, 4)
            for ax in (0, 1, -1):
                n = x.shape[ax]
                ii = np.clip(idx.astype(np.int64), -n, n - 1)
                out = lx.take(X, array(idx, itype), ax)
                equal("take %s %s axis=%d" % (itype, ishape, ax), read64(out),
                      np.take(x, ii, axis=ax))
    # embedding lookup: take rows of a [vocab, dim] table with a [B, L] index
    emb = vals("bfloat16", (50, 8))
    ids = rng.integers(0, 50, (2, 7)).astype(np.int32)
    equal("embedding lookup", read64(lx.take(array(emb, "bfloat16"), array(ids), 0)), emb[ids])
    # out of range indices are clamped (documented in lx.h), never a wild read
    out = read64(lx.take(array(x), array(np.array([100, -100], np.int32)), 0))
    equal("take clamps out-of-range", out, x[[4, 0]])


@test
def test_take_put_along_axis():
    x = vals("float32", (4, 5, 6))
    for layout in LAYOUTS:
        X = mk(x, "float32", layout)
        for ax in (0, 1, 2, -1):
            n = x.shape[ax]
            ishape = list(x.shape)
            ishape[ax] = 3
            idx = rng.integers(-n, n, ishape).astype(np.int32)
            equal("take_along_axis %s axis=%d" % (layout, ax),
                  read64(lx.take_along_axis(X, array(idx), ax)),
                  np.take_along_axis(x, idx % n, ax))
            # indices broadcast against a (except along axis)
            bshape = [1] * 3
            bshape[ax] = 2
            bidx = rng.integers(0, n, bshape).astype(np.int32)
            ref = np.take_along_axis(x, np.broadcast_to(bidx, tuple(
                2 if i == ax % 3 else x.shape[i] for i in range(3))), ax)
            equal("take_along_axis broadcast idx %s axis=%d" % (layout, ax),
                  read64(lx.take_along_axis(X, array(bidx), ax)), ref)
            # put_along_axis: unique indices per line so the result is defined
            perm = np.argsort(rng.random(x.shape), axis=ax)
            sel = np.take(perm, range(2), axis=ax).astype(np.int32)
            v = vals("float32", sel.shape)
            ref = x.copy()
            np.put_along_axis(ref, sel, v, ax)
            out = lx.put_along_axis(X, array(sel), array(v, "float32"), ax)
            equal("put_along_axis %s axis=%d" % (layout, ax), read64(out), ref)
            # scalar-ish values broadcast
            ref = x.copy()
            np.put_along_axis(ref, sel, 9.0, ax)
            out = lx.put_along_axis(X, array(sel), array(np.float32(9.0)), ax)
            equal("put_along_axis broadcast value axis=%d" % ax, read64(out), ref)
    # argsort + take_along_axis round trip
    y = vals("float32", (3, 9))
    Y = array(y, "float32")
    equal("take_along_axis(argsort)", read64(lx.take_along_axis(Y, lx.argsort(Y, 1), 1)),
          np.sort(y, 1))
    expect_error("take_along_axis ndim mismatch",
                 lambda: lx.take_along_axis(Y, array(np.zeros(3, np.int32)), 1))


@test
def test_tri_creation():
    for n, m, k in [(4, 4, 0), (3, 5, 1), (5, 3, -1), (4, 0, 2), (1, 1, 0)]:
        mm = n if m <= 0 else m
        equal("tri %d %d %d" % (n, m, k), read64(lx.tri(n, m, k, "float32")),
              np.tri(n, mm, k))
        equal("eye %d %d %d" % (n, m, k), read64(lx.eye(n, m, k, "float32")), np.eye(n, mm, k))
    x = vals("float32", (2, 4, 5))
    X = mk(x, "float32", "t")
    for k in (-2, -1, 0, 1, 3, 10, -10):
        equal("tril k=%d" % k, read64(lx.tril(X, k)), np.tril(x, k))
        equal("triu k=%d" % k, read64(lx.triu(X, k)), np.triu(x, k))
    # arange / linspace (MLX: arange(start, stop, step) has ceil((stop - start) / step))
    for st, sp, sd, dt in [(0, 10, 1, "int32"), (0, 1, 0.1, "float32"), (5, -3, -2, "int32"),
                           (1, 1, 1, "float32"), (0.5, 4, 0.5, "float64")]:
        ref = np.arange(st, sp, sd)
        out = lx.arange(st, sp, sd, dt)
        dtype_is("arange dtype", out, dt)
        close("arange %g %g %g" % (st, sp, sd), read64(out), ref.astype(lxpy.NP_OF[dt]),
              rtol=EPS32, atol=EPS32 * 10)
    for st, sp, num in [(0, 1, 5), (-1, 1, 1), (2, -2, 9), (0, 1, 0)]:
        close("linspace %g %g %d" % (st, sp, num), read64(lx.linspace(st, sp, num, "float32")),
              np.linspace(st, sp, num), rtol=2 * EPS32, atol=2 * EPS32)
    equal("zeros", read64(lx.zeros([2, 3], 2, "float16")), np.zeros((2, 3)))
    equal("ones", read(lx.ones([3], 1, "int32")), np.ones(3, np.int32))
    equal("full", read64(lx.full([2, 2], 2, 1.5, "bfloat16")), np.full((2, 2), 1.5))
    equal("full to int truncates", read(lx.full([2], 1, 2.9, "int32")), np.array([2, 2], np.int32))
    equal("zeros_like", read64(lx.zeros_like(array(x, "float32"))), np.zeros_like(x))
    equal("empty zeros", read64(lx.zeros([0, 3], 2, "float32")), np.zeros((0, 3)))
    equal("ones_like keeps dtype", read(lx.ones_like(array(np.zeros(3, np.int8)))),
          np.ones(3, np.int8))
    sc = lx.scalar(2.75, "bfloat16")
    dtype_is("scalar bf16", sc, "bfloat16")
    check(lxpy.shape(sc) == (), "scalar is 0-d")
    equal("scalar value", read64(sc), np.float64(2.75))
    dtype_is("scalar_f32", lx.scalar_f32(1.5), "float32")
    dtype_is("scalar_i32", lx.scalar_i32(-7), "int32")
    check(lxpy.lib.lx_item_i32(lx.scalar_i32(-7)) == -7, "item_i32")
    check(lxpy.lib.lx_item_f32(lx.scalar(2.5, "float16")) == 2.5, "item_f32 of float16")
    check(lxpy.lib.lx_item_f64(lx.scalar(3.0, "uint8")) == 3.0, "item_f64 of uint8")
    check(lxpy.lib.lx_item_i32(lx.scalar(-2.9, "float32")) == -2, "item_i32 of float truncates")
    f = (lxpy.ctypes.c_float * 4)(1, 2, 3, 4)
    a = lx.array_f32(f, [2, 2], 2)
    equal("array_f32", read64(a), np.array([[1.0, 2], [3, 4]]))
    i = (lxpy.ctypes.c_int32 * 3)(5, -6, 7)
    equal("array_i32", read(lx.array_i32(i, [3], 1)), np.array([5, -6, 7], np.int32))


@test
def test_bad_arguments():
    a = array(np.ones((2, 3)), "float32")
    expect_error("add null array", lambda: lx.add(a, None))
    expect_error("softmax axis out of range", lambda: lx.softmax(a, 5), E_ARG)
    expect_error("concatenate axis", lambda: lx.concatenate([a, a], 2, 2), E_ARG)
    expect_error("take axis", lambda: lx.take(a, array(np.zeros(1, np.int32)), 3), E_ARG)
    expect_error("take float indices", lambda: lx.take(a, array(np.zeros(1, np.float32)), 0))
    expect_error("expand_dims axis out of range", lambda: lx.expand_dims(a, [4], 1), E_ARG)
    expect_error("tile negative", lambda: lx.tile(a, [-1, 1], 2))
    # a released handle is LX_E_FREED, not a crash
    b = array(np.ones(3), "float32")
    lxpy.lib.lx_sweep()
    expect_error("use after release", lambda: lx.exp(b), lxpy.E_FREED)


@test
def test_random_shapes():
    """Random shapes (0 to 4 dims, sizes 0 to 5), random broadcasting partners, random
    layouts, axes and dtypes, through binary ops, reductions, scans, transposes and slices."""
    fuzz = np.random.default_rng(4242)
    dtypes = ["float32", "float16", "bfloat16", "int32", "float64"]
    for trial in range(150):
        nd = int(fuzz.integers(0, 5))
        shp = tuple(int(fuzz.integers(0 if fuzz.random() < 0.1 else 1, 6)) for _ in range(nd))
        dtype = dtypes[trial % len(dtypes)]
        layout = LAYOUTS[int(fuzz.integers(0, 3))]
        x = vals(dtype, shp, -4, 4)
        X = mk(x, dtype, layout)
        # a broadcasting partner: drop leading dims, set some dims to 1
        k = int(fuzz.integers(0, nd + 1))
        bs = tuple(1 if fuzz.random() < 0.4 else d for d in shp[k:])
        y = vals(dtype, bs, -4, 4)
        Y = mk(y, dtype, LAYOUTS[int(fuzz.integers(0, 3))])
        what = "trial %d %s %s%s vs %s" % (trial, dtype, shp, layout, bs)
        ref = x + y
        out = lx.add(X, Y)
        if dtype in FLOATS:
            close("add " + what, read64(out), ref, tol=ftol(dtype, ref))
        else:
            equal("add " + what, read(out), ref)
        equal("maximum " + what, read64(lx.maximum(X, Y)), np.maximum(x, y).astype(np.float64))
        equal("greater " + what, read(lx.greater(X, Y)), x > y)
        if nd == 0:
            continue
        ax = int(fuzz.integers(-nd, nd))
        kd = bool(fuzz.integers(0, 2))
        n = shp[ax]
        if dtype in FLOATS:
            s = np.sum(x, axis=ax, keepdims=kd)
            sa = np.sum(np.abs(x), axis=ax, keepdims=kd)
            close("sum " + what + " axis=%d kd=%s" % (ax, kd), read64(lx.sum(X, ax, kd)), s,
                  tol=_red_tol(dtype, s, sa, n))
        else:
            equal("sum " + what + " axis=%d" % ax, read(lx.sum(X, ax, kd)),
                  np.sum(x, axis=ax, keepdims=kd, dtype=np.int32))
        if n > 0:
            equal("max " + what + " axis=%d" % ax, read64(lx.max(X, ax, kd)),
                  np.max(x, axis=ax, keepdims=kd).astype(np.float64))
            if x.size:
                r = np.argmin(x, axis=ax)
                equal("argmin " + what + " axis=%d" % ax, read(lx.argmin(X, ax, kd)),
                      np.expand_dims(r, ax) if kd else r)
            else:  # MLX: "[argmin] Cannot argmin reduce zero size array."
                expect_error("argmin of an empty array " + what, lambda: lx.argmin(X, ax, kd))
            equal("sort " + what + " axis=%d" % ax, read64(lx.sort(X, ax)),
                  np.sort(x, axis=ax).astype(np.float64))
        if dtype == "int32":
            equal("cumsum " + what + " axis=%d" % ax, read(lx.cumsum(X, ax)),
                  np.cumsum(x, axis=ax, dtype=np.int32))
        perm = [int(p) for p in fuzz.permutation(nd)]
        equal("transpose " + what + " %s" % perm, read64(lx.transpose(X, perm, nd)),
              x.transpose(perm).astype(np.float64))
        st = [int(fuzz.integers(-d - 1, d + 2)) if d else 0 for d in shp]
        sp = [int(fuzz.integers(-d - 1, d + 2)) if d else 0 for d in shp]
        sd = [int(fuzz.choice([-3, -2, -1, 1, 2, 3])) for _ in shp]
        sl = tuple(_mlx_slice_norm(shp[i], st[i], sp[i], sd[i]) for i in range(nd))
        equal("slice " + what + " %s %s %s" % (st, sp, sd), read64(lx.slice(X, st, sp, sd, nd)),
              x[sl].astype(np.float64))


# ---- 9. larger sizes (the threaded and blocked code paths), donation, more edges ----------
@test
def test_large_sizes():
    # elementwise over ~1M elements with broadcasting and a transposed operand
    for dtype in ("float32", "float16"):
        a, b = vals(dtype, (1000, 1001)), vals(dtype, (1001,))
        ref = a * b
        out = lx.mul(mk(a, dtype, "t"), array(b, dtype))
        close("mul 1000x1001 %s" % dtype, read64(out), ref, tol=ftol(dtype, ref))
        ref = np.exp(a)
        close("exp 1000x1001 %s" % dtype, read64(lx.exp(array(a, dtype))), ref,
              tol=ftol(dtype, ref, 1.0, 4 * EPS32))
    # long reductions: a float16 accumulator would stall far from these sums
    for dtype in ("float16", "bfloat16", "float32"):
        x = vals(dtype, (64, 4001), 0.0, 1.0)
        for ax in (1, 0):
            s = x.sum(ax)
            n = x.shape[ax]
            close("sum %s [64, 4001] axis=%d" % (dtype, ax), read64(lx.sum(array(x, dtype), ax,
                                                                              False)),
                  s, tol=_red_tol(dtype, s, s, n))
            m = s / n
            close("mean %s [64, 4001] axis=%d" % (dtype, ax),
                  read64(lx.mean(mk(x, dtype, "t"), ax, False)), m, tol=_red_tol(dtype, m, m, n))
        s = x[:, :2000].sum()  # about 64000: below float16's largest finite value
        close("sum all %s 128k" % dtype, read64(lx.sum_axes(array(x[:, :2000], dtype), None, 0,
                                                            False)), round_to(s, dtype),
              tol=_red_tol(dtype, s, s, 128000))
        s = x.sum()  # 128000: overflows float16 to inf
        close("sum all %s 256k" % dtype, read64(lx.sum_axes(array(x, dtype), None, 0, False)),
              round_to(s, dtype), tol=_red_tol(dtype, s, s, x.size))
        v = x.var(1)
        close("var %s rows of 4001" % dtype, read64(lx.var(array(x, dtype), 1, False, 0)), v,
              tol=ftol(dtype, v, 1.0, 0.0, 4 * 4001 * EPS32 * np.mean(x * x, 1)))
    x = vals("float32", (3, 100000))
    equal("argmax rows of 100k", read(lx.argmax(array(x, "float32"), 1, False)), np.argmax(x, 1))
    equal("max rows of 100k", read64(lx.max(mk(x, "float32", "s"), 1, False)), np.max(x, 1))
    c = np.cumsum(x, 1)
    close("cumsum rows of 100k", read64(lx.cumsum(array(x, "float32"), 1)), c,
          tol=ftol("float32", c, 1.0, 0.0, 100000 * EPS32 * np.cumsum(np.abs(x), 1)))
    y = vals("float32", (5, 20000), -100, 100)
    equal("sort rows of 20000", read64(lx.sort(array(y, "float32"), 1)), np.sort(y, 1))
    idx = read(lx.argsort(mk(y, "float32", "t"), 0)).astype(np.int64)
    equal("argsort axis 0 of a view", np.take_along_axis(y, idx, 0), np.sort(y, 0))
    t = read64(lx.topk(array(y, "float32"), 50, 1))
    equal("topk 50 of 20000", np.sort(t, 1), np.sort(y, 1)[:, -50:])
    i = vals("int32", (4, 300000), -1000, 1000)
    equal("sum int32 rows of 300k", read(lx.sum(array(i), 1, False)), i.sum(1, dtype=np.int32))


@test
def test_donation_chains():
    # intermediates whose buffers lx may reuse in place: every value must still be right
    x = vals("float32", (64, 65))
    X = array(x, "float32")
    lxpy.keep(X)
    a = lx.add_scalar(X, 1.0)
    b = lx.mul(a, a)
    c = lx.sub(b, a)
    d = lx.exp(lx.neg(c))
    e = lx.add(d, lx.broadcast_to(lx.sum(d, 1, True), [64, 65], 2))
    lxpy.eval_(c, e)
    xa = x + 1.0
    xb = xa * xa
    xc = xb - xa
    xd = np.exp(-xc)
    xe = xd + xd.sum(1, keepdims=True)
    close("donation chain c", read64(c), xc, rtol=4 * EPS32, atol=4 * EPS32 * 16)
    close("donation chain e", read64(e), xe, rtol=64 * 4 * EPS32)
    # an op whose input is also used later (must not be overwritten)
    y = lx.exp(X)
    z = lx.add(y, y)
    w = lx.sub(z, y)
    close("x + x - x", read64(w), np.exp(x), rtol=4 * EPS32)
    lxpy.lib.lx_free(X)
    # a kept array must survive being an input of an in-place-able op
    K = array(x, "float32")
    lxpy.keep(K)
    out = lx.neg(lx.add_scalar(K, 0.0))
    lxpy.eval_(out)
    equal("kept input unchanged", read64(K), x)
    equal("neg", read64(out), -x)
    lxpy.lib.lx_free(K)
    # repeated slice_update into a kept cache (the KV-cache pattern)
    cache = array(np.zeros((4, 6), np.float32))
    lxpy.keep(cache)
    ref = np.zeros((4, 6))
    for step in range(6):
        col = vals("float32", (4, 1))
        new = lx.slice_update(cache, array(col, "float32"), [0, step], [4, step + 1], None, 2)
        lxpy.keep(new)
        lxpy.eval_(new)
        lxpy.lib.lx_free(cache)
        cache = new
        ref[:, step:step + 1] = col
        equal("cache after step %d" % step, read64(cache), ref)
    lxpy.lib.lx_free(cache)


@test
def test_more_edges():
    # var/std with ddof >= n: MLX divides by max(n - ddof, 0) -> inf, or NaN for 0 / 0
    with np.errstate(all="ignore"):
        equal("var ddof = n", read64(lx.var(array(np.array([1.0, 2.0, 4.0]), "float32"), 0,
                                            False, 3)), np.float64(np.inf))
        equal("var ddof = n, zero spread", read64(lx.var(array(np.array([2.0, 2.0]), "float32"),
                                                         0, False, 2)), np.float64(np.nan))
    # put_along_axis drops out-of-range writes (documented in lx.h)
    x = np.zeros((2, 4), np.float32)
    idx = np.array([[1, 9], [-1, -9]], np.int32)
    out = read64(lx.put_along_axis(array(x), array(idx), array(np.ones((2, 2), np.float32)), 1))
    check(out[0, 1] == 1 and out[1, 3] == 1 and out.sum() == 2,
          "put_along_axis: negative indices count from the end, out-of-range writes dropped: %s"
          % out)
    # take_along_axis with negative indices
    y = vals("float32", (3, 5))
    ii = np.array([[-1], [-5], [2]], np.int32)
    equal("take_along_axis negative indices", read64(lx.take_along_axis(array(y, "float32"),
                                                                        array(ii), 1)),
          np.take_along_axis(y, ii % 5, 1))
    # reductions and ops on a broadcast (stride-0) input
    b = lx.broadcast_to(array(np.array([1.0, 2.0, 3.0]), "float32"), [4, 3], 2)
    equal("sum of a broadcast view", read64(lx.sum(b, 0, False)), np.array([4.0, 8.0, 12.0]))
    close("exp of a broadcast view", read64(lx.exp(b)),
          np.broadcast_to(np.exp([1.0, 2.0, 3.0]), (4, 3)), rtol=4 * EPS32)
    equal("cumsum of a broadcast view", read64(lx.cumsum(b, 0)),
          np.cumsum(np.broadcast_to([1.0, 2.0, 3.0], (4, 3)), 0))
    equal("sort of a broadcast view", read64(lx.sort(b, 0)), np.broadcast_to([1.0, 2.0, 3.0],
                                                                           (4, 3)))
    # bool scans (MLX: cumprod of bool stays bool), truthiness of NaN, clip with lo > hi
    bs = np.array([[True, True, False, True], [True, True, True, True]])
    equal("cumprod bool", read(lx.cumprod(array(bs), 1)), np.logical_and.accumulate(bs, 1))
    equal("cummax bool", read(lx.cummax(array(~bs), 1)), np.logical_or.accumulate(~bs, 1))
    equal("all/any of NaN (NaN is true)", read(lx.all(array(np.array([np.nan, 1.0]), "float32"),
                                                      0, False)), np.True_)
    equal("clip with lo > hi gives hi (minimum(maximum(a, lo), hi))",
          read64(lx.clip(array(np.array([0.0, 5.0, 10.0]), "float32"), array(np.float32(6)),
                         array(np.float32(4)))), np.array([4.0, 4.0, 4.0]))
    equal("where with a NaN condition (true)",
          read64(lx.where(array(np.array([np.nan, 0.0]), "float32"),
                          array(np.ones(2, np.float32)), array(np.zeros(2, np.float32)))),
          np.array([1.0, 0.0]))
    # max/min of bool, argmax of bool
    bb = np.array([[False, True, False], [False, False, False]])
    equal("max bool", read(lx.max(array(bb), 1, False)), np.array([True, False]))
    equal("argmax bool", read(lx.argmax(array(bb), 1, False)), np.array([1, 0], np.uint32))
    # concatenate / stack of one array
    equal("concatenate one", read64(lx.concatenate([array(y, "float32")], 1, 0)), y)
    equal("stack one", read64(lx.stack([array(y, "float32")], 1, 0)), y[None])
    # int32 sums wrap in int32 (MLX accumulates int32)
    big = np.full((3,), 2 ** 30, np.int32)
    equal("sum int32 wraps", read(lx.sum(array(big), 0, False)), np.int32(-(2 ** 30)))
    # 0-d arrays through unary, binary and reductions
    s = array(np.float32(-2.5))
    equal("abs 0-d", read64(lx.abs(s)), np.float64(2.5))
    equal("add 0-d + [3]", read64(lx.add(s, array(np.ones(3, np.float32)))), np.full(3, -1.5))
    equal("argmax 0-d", read(lx.argmax(array(np.ones((1,), np.float32)), 0, False)), np.uint32(0))
    # slices with an empty result and expand/squeeze on empty arrays
    e = lx.slice(array(y, "float32"), [2, 0], [2, 5], None, 2)
    check(lxpy.shape(e) == (0, 5), "empty slice shape %s" % (lxpy.shape(e),))
    equal("sum of an empty slice", read64(lx.sum(e, 0, False)), np.zeros(5))
    equal("expand_dims of empty", read64(lx.expand_dims(e, [0], 1)), np.zeros((1, 0, 5)))



if __name__ == "__main__":
    sys.exit(lxpy.run_tests())
