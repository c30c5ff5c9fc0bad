"""lxpy -- a small ctypes binding to liblx for tests.

The function table is read from the public header (include/lx.h, or env LX_HEADER): every
`LX_API ret name(params);` becomes a ctypes function with its argument and result types, so
the binding follows the header without a hand-kept list. On top of that:

  - `lx.<op>(...)` (the module attribute `lx`, an `Lx`) calls `lx_<op>` converting arguments:
    numpy arrays and Python scalars given for an `lx_array` parameter become new lx arrays
    (numpy's dtype kept; see `array`), `None` is the null array, lists/tuples given for a
    `const int *` / `const int64_t *` parameter become C arrays (`None` is NULL). A null
    array returned by an op raises `LxError` carrying the sticky status and message (the
    error is then cleared).
  - `array(np_array, dtype=None)`: an lx array holding a copy of the data. `dtype` is an lx
    dtype name ('float32', 'bfloat16', ...) or code; bfloat16 data is made from float values
    by round-to-nearest-even of their float32 bits (`f32_to_bf16_bits`).
  - `read(a)`: a numpy copy of `a` (row-major). bfloat16 arrays come back as float32 holding
    the exact bfloat16 values; `dtype_name(a)` tells the lx dtype.

Env: LX_LIB (path to liblx.so), LX_HEADER (optional; path to lx.h).
"""
import ctypes
import os
import re

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.environ.get("LX_HEADER", os.path.join(_HERE, "..", "..", "include", "lx.h"))
lib = ctypes.CDLL(os.environ.get("LX_LIB", "liblx.so"))


class Arr(ctypes.Structure):
    """lx_array: struct { uint64_t id; } passed by value."""
    _fields_ = [("id", ctypes.c_uint64)]

    def __repr__(self):
        return "Arr(%d)" % self.id


# ---- dtypes ------------------------------------------------------------------------------
DTYPES = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
          "float16", "bfloat16", "float32", "float64"]
CODE = {name: i for i, name in enumerate(DTYPES)}
BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FLOAT16, BFLOAT16, FLOAT32, \
    FLOAT64 = range(13)
NP_OF = {"bool": np.bool_, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
         "uint64": np.uint64, "int8": np.int8, "int16": np.int16, "int32": np.int32,
         "int64": np.int64, "float16": np.float16, "bfloat16": np.uint16,
         "float32": np.float32, "float64": np.float64}
LX_OF_NP = {np.dtype(v): k for k, v in NP_OF.items() if k != "bfloat16"}
FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64")
# machine epsilon (spacing at 1) of each float dtype
EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23, "float64": 2.0 ** -52}

STATUS = ["LX_OK", "LX_E_ARG", "LX_E_SHAPE", "LX_E_DTYPE", "LX_E_FREED", "LX_E_OOM", "LX_E_IO",
          "LX_E_FORMAT", "LX_E_DEVICE", "LX_E_UNSUPPORTED", "LX_E_INTERNAL"]
(OK, E_ARG, E_SHAPE, E_DTYPE, E_FREED, E_OOM, E_IO, E_FORMAT, E_DEVICE, E_UNSUPPORTED,
 E_INTERNAL) = range(11)


def dtype_code(d):
    if isinstance(d, int):
        return d
    if isinstance(d, str):
        return CODE[d]
    return CODE[LX_OF_NP[np.dtype(d)]]


def f32_to_bf16_bits(x):
    """float values -> bfloat16 bit patterns (uint16), round to nearest even; NaN stays NaN."""
    f = np.array(x, dtype=np.float32)
    b = np.atleast_1d(f).reshape(-1).view(np.uint32).astype(np.uint64)
    rounded = (b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    out = rounded.astype(np.uint16)
    nan = np.isnan(np.atleast_1d(f).reshape(-1))
    out[nan] = ((b[nan] >> np.uint64(16)) | np.uint64(0x40)).astype(np.uint16)
    return out.reshape(f.shape)


def bf16_bits_to_f32(bits):
    u = np.array(bits, dtype=np.uint16)
    b = np.atleast_1d(u).reshape(-1).astype(np.uint32) << np.uint32(16)
    return b.view(np.float32).reshape(u.shape)


def round_to(x, dtype):
    """x (float64 values) rounded to the lx float dtype, returned as float64."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        return _round_to(x, dtype)


def _round_to(x, dtype):
    if dtype == "bfloat16":
        return bf16_bits_to_f32(f32_to_bf16_bits(x.astype(np.float32))).astype(np.float64)
    return x.astype(NP_OF[dtype]).astype(np.float64)


# ---- the header's function table ---------------------------------------------------------
_SCALARS = {
    "int": ctypes.c_int, "bool": ctypes.c_bool, "double": ctypes.c_double,
    "float": ctypes.c_float, "size_t": ctypes.c_size_t, "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32, "unsigned": ctypes.c_uint,
    "long": ctypes.c_long,
    "lx_dtype": ctypes.c_int, "lx_status": ctypes.c_int, "lx_device": ctypes.c_int,
    "lx_array": Arr, "void": None, "lx_fn": ctypes.c_void_p,
}
_POINTERS = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32,
             "float": ctypes.c_float, "lx_array": Arr, "uint32_t": ctypes.c_uint32}


def _ctype(decl):
    """C declaration text (without the parameter name) -> ctypes type."""
    t = decl.replace("const", " ").strip()
    nstar = t.count("*")
    base = t.replace("*", " ").split()
    base = base[-1] if base else "void"
    if nstar == 0:
        if base not in _SCALARS:
            raise KeyError(decl)
        return _SCALARS[base]
    if base == "char" and nstar == 1:
        return ctypes.c_char_p
    if base == "char" and nstar == 2:
        return ctypes.POINTER(ctypes.c_char_p)
    if nstar == 1 and base in _POINTERS:
        return ctypes.POINTER(_POINTERS[base])
    return ctypes.c_void_p  # void *, FILE *, lx_closure *, lx_weights *


def _parse_header(path):
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    sigs = {}
    for m in re.finditer(r"LX_API\s+([^;(]*?)\b(lx_\w+)\s*\(([^;]*?)\)\s*;", text, flags=re.S):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        params = " ".join(params.split())
        args = []
        try:
            if params and params != "void":
                for p in params.split(","):
                    p = p.strip()
                    pm = re.match(r"(.*?)(\w+)$", p)
                    decl = pm.group(1) if pm and pm.group(1).strip() else p
                    if decl.strip() in ("", "const"):
                        decl = p
                    args.append((_ctype(decl), decl.strip(), pm.group(2) if pm else ""))
            sigs[name] = (_ctype(ret.strip()), ret.strip(), args)
        except KeyError:
            continue  # a struct passed or returned by value (lx_gen_params): not for ctypes

    return sigs


SIGS = _parse_header(HEADER)
for _name, (_res, _rdecl, _args) in SIGS.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        continue  # declared but not exported (yet)
    _f.restype = _res
    _f.argtypes = [a[0] for a in _args]


def has(name):
    """True if liblx exports lx_<name> (or the full name)."""
    full = name if name.startswith("lx_") else "lx_" + name
    try:
        getattr(lib, full)
        return full in SIGS
    except AttributeError:
        return False


# ---- errors ------------------------------------------------------------------------------
class LxError(Exception):
    def __init__(self, status, message, op=""):
        self.status = status
        self.message = message
        super().__init__("%s: %s (%s)" % (op, STATUS[status] if 0 <= status < len(STATUS)
                                          else status, message))


def error():
    return lib.lx_error()


def error_message():
    m = lib.lx_error_message()
    return m.decode(errors="replace") if m else ""


def clear_error():
    lib.lx_clear_error()


def take_error():
    """(status, message) of the sticky error, which is then cleared."""
    st, msg = lib.lx_error(), error_message()
    lib.lx_clear_error()
    return st, msg


# ---- arrays ------------------------------------------------------------------------------
def array(x, dtype=None):
    """A new lx array holding x (copied). dtype: lx dtype name/code; default from numpy."""
    if isinstance(x, Arr):
        return x
    x = np.asarray(x)
    if dtype is None:
        name = LX_OF_NP[x.dtype]
    else:
        name = DTYPES[dtype] if isinstance(dtype, int) else dtype
    if name == "bfloat16":
        data = x if x.dtype == np.uint16 and dtype is None else f32_to_bf16_bits(x)
    else:
        data = x.astype(NP_OF[name])
    data = np.array(data, order="C", copy=True)  # (ascontiguousarray makes 0-d arrays 1-d)
    shape = (ctypes.c_int * max(1, data.ndim))(*data.shape)
    a = lib.lx_array_new(data.ctypes.data if data.size else None, shape, data.ndim, CODE[name])
    if a.id == 0:
        st, msg = take_error()
        raise LxError(st, msg, "lx_array_new")
    return a


def bf16(x):
    """An lx bfloat16 array from float values (rounded to nearest even)."""
    return array(np.asarray(x, dtype=np.float32), "bfloat16")


def shape(a):
    out = (ctypes.c_int * 8)()
    n = lib.lx_shape(a, out)
    if n < 0:
        st, msg = take_error()
        raise LxError(st, msg, "lx_shape")
    return tuple(out[:n])


def dtype_name(a):
    return DTYPES[lib.lx_dtype_of(a)]


def read(a):
    """numpy copy of a (bfloat16 -> float32 with the exact values)."""
    if not isinstance(a, Arr):
        raise TypeError("read: not an lx array: %r" % (a,))
    if a.id == 0:
        raise LxError(lib.lx_error(), error_message(), "read(null)")
    shp = shape(a)
    name = dtype_name(a)
    out = np.empty(shp, dtype=NP_OF[name])
    st = lib.lx_read(a, out.ctypes.data if out.size else None, out.nbytes)
    if st != 0:
        st2, msg = take_error()
        raise LxError(st, msg, "lx_read")
    if name == "bfloat16":
        return bf16_bits_to_f32(out)
    return out


def read64(a):
    """read(a) as float64 (for comparisons)."""
    return read(a).astype(np.float64)


def eval_(*arrs):
    st = lib.lx_eval_n((Arr * len(arrs))(*arrs), len(arrs))
    if st != 0:
        st2, msg = take_error()
        raise LxError(st, msg, "lx_eval")
    return st


def sweep():
    lib.lx_sweep()


def keep(*arrs):
    lib.lx_keep_n((Arr * len(arrs))(*arrs), len(arrs))


# ---- calling ops -------------------------------------------------------------------------
def _convert(value, ctype, decl):
    if ctype is Arr:
        if value is None:
            return Arr(0)
        return array(value)
    if ctype in (ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int64),
                 ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_float),
                 ctypes.POINTER(ctypes.c_uint32)):
        if value is None:
            return None
        if isinstance(value, (list, tuple, np.ndarray)):
            vals = [v.item() if hasattr(v, "item") else v for v in np.asarray(value).ravel()] \
                if isinstance(value, np.ndarray) else list(value)
            return (ctype._type_ * max(1, len(vals)))(*vals)
        return value
    if ctype is ctypes.POINTER(Arr):
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return (Arr * max(1, len(value)))(*[array(v) if not isinstance(v, Arr) else v
                                                for v in value])
        return value
    if ctype is ctypes.c_int and isinstance(value, str) and value in CODE:
        return CODE[value]  # a dtype name
    return value


class Lx:
    """lx.<name>(...) calls lx_<name> with argument conversion; raises LxError on a null
    array result (and clears the sticky error)."""

    def __getattr__(self, name):
        full = "lx_" + name
        if full not in SIGS:
            raise AttributeError(full + " is not declared in lx.h")
        f = getattr(lib, full)  # AttributeError if not exported
        res, rdecl, args = SIGS[full]

        def call(*values):
            if len(values) != len(args):
                raise TypeError("%s takes %d arguments, got %d" % (full, len(args), len(values)))
            conv = [_convert(v, a[0], a[1]) for v, a in zip(values, args)]
            out = f(*conv)
            if res is Arr and out.id == 0:
                st, msg = take_error()
                raise LxError(st, msg, full)
            if res is ctypes.c_int and rdecl == "lx_status" and out != 0:
                st, msg = take_error()
                raise LxError(out, msg, full)
            return out

        call.__name__ = full
        return call


lx = Lx()


def split(a, indices, axis):
    """lx_split -> list of arrays."""
    out = (Arr * (len(indices) + 1))()
    lx.split(a, list(indices), len(indices), axis, out)
    return list(out)


def split_equal(a, parts, axis):
    out = (Arr * parts)()
    lx.split_equal(a, parts, axis, out)
    return list(out)


def quantize(w, group_size, bits):
    """lx_quantize -> (wq, scales, biases)."""
    wq, s, b = Arr(), Arr(), Arr()
    lx.quantize(w, group_size, bits, ctypes.byref(wq), ctypes.byref(s), ctypes.byref(b))
    return wq, s, b


def random_split(key):
    k1, k2 = Arr(), Arr()
    lx.random_split(key, ctypes.byref(k1), ctypes.byref(k2))
    return k1, k2


def transposed_view(x, dtype=None):
    """An lx array equal to x whose layout is not row-contiguous: made from x's axes
    reversed (contiguous) and viewed back through lx_transpose."""
    x = np.asarray(x)
    base = array(x.transpose().copy(), dtype)
    return lx.transpose(base, None, 0)


def strided_view(x, dtype=None):
    """An lx array equal to x read through a strided lx_slice (every other element of a
    buffer twice as long on the last axis)."""
    x = np.asarray(x)
    if x.ndim == 0:
        return array(x, dtype)
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1] + 1,), dtype=x.dtype)
    big[..., 1::2] = x
    base = array(big, dtype)
    start = [0] * (x.ndim - 1) + [1]
    stop = list(big.shape)
    strides = [1] * (x.ndim - 1) + [2]
    return lx.slice(base, start, stop, strides, x.ndim)


# ---- MLX references shared by the tests -------------------------------------------------
import math  # noqa: E402

# MLX's promotion table (mlx/dtype.cpp, JAX's rules), complex64 dropped, in MLX's order.
_MLX_ORDER = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
              "float16", "float32", "float64", "bfloat16"]
_MLX_TABLE = """
bool     uint8    uint16   uint32   uint64   int8     int16    int32    int64    float16  float32  float64  bfloat16
uint8    uint8    uint16   uint32   uint64   int16    int16    int32    int64    float16  float32  float64  bfloat16
uint16   uint16   uint16   uint32   uint64   int32    int32    int32    int64    float16  float32  float64  bfloat16
uint32   uint32   uint32   uint32   uint64   int64    int64    int64    int64    float16  float32  float64  bfloat16
uint64   uint64   uint64   uint64   uint64   float32  float32  float32  float32  float16  float32  float64  bfloat16
int8     int16    int32    int64    float32  int8     int16    int32    int64    float16  float32  float64  bfloat16
int16    int16    int32    int64    float32  int16    int16    int32    int64    float16  float32  float64  bfloat16
int32    int32    int32    int64    float32  int32    int32    int32    int64    float16  float32  float64  bfloat16
int64    int64    int64    int64    float32  int64    int64    int64    int64    float16  float32  float64  bfloat16
float16  float16  float16  float16  float16  float16  float16  float16  float16  float16  float32  float64  float32
float32  float32  float32  float32  float32  float32  float32  float32  float32  float32  float32  float64  float32
float64  float64  float64  float64  float64  float64  float64  float64  float64  float64  float64  float64  float64
bfloat16 bfloat16 bfloat16 bfloat16 bfloat16 bfloat16 bfloat16 bfloat16 bfloat16 float32  float32  float64  bfloat16
"""
MLX_PROMOTE = {}
for _i, _row in enumerate(l.split() for l in _MLX_TABLE.strip().splitlines()):
    for _j, _t in enumerate(_row):
        MLX_PROMOTE[(_MLX_ORDER[_i], _MLX_ORDER[_j])] = _t


def mlx_promote(a, b):
    return MLX_PROMOTE[(a, b)]


def erfinv64(y):
    y = np.asarray(y, dtype=np.float64)
    x = np.zeros_like(y)
    # initial guess (Giles) then Newton on erf in float64
    w = -np.log((1.0 - y) * (1.0 + y))
    x = np.where(w < 5, np.sqrt(np.pi) / 2 * (y + np.pi / 12 * y ** 3), np.sign(y) * np.sqrt(w))
    erf = erf64
    for _ in range(60):
        f = erf(x) - y
        x = x - f / (2 / np.sqrt(np.pi) * np.exp(-x * x))
    return x


def erf64(x):
    return np.vectorize(math.erf)(np.asarray(x, dtype=np.float64)) if np.size(x) else \
        np.zeros(np.shape(x))


# ---- a small test harness (shared by tests/py/test_ops_*.py) -------------------------------
import sys
import traceback

_TESTS = []
_counts = {"passed": 0, "failed": 0}
_failures = []
_current = [""]


def test(fn):
    """Decorator: registers a test function (run in definition order by run_tests)."""
    _TESTS.append(fn)
    return fn


def check(cond, what):
    """Counts one check; prints FAIL with the test name and `what` when cond is false."""
    if cond:
        _counts["passed"] += 1
    else:
        _counts["failed"] += 1
        msg = "%s: %s" % (_current[0], what)
        _failures.append(msg)
        print("FAIL:", msg, flush=True)
    return bool(cond)


def _fmt(v):
    return np.array2string(np.asarray(v), threshold=8, precision=9)


def close(what, got, ref, rtol=0.0, atol=0.0, tol=None):
    """|got - ref| <= tol (default atol + rtol*|ref|) elementwise, in float64; NaN must be
    where the reference has NaN and infinities must match exactly. Shapes must match."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return check(False, "%s: shape %s, expected %s" % (what, got.shape, ref.shape))
    if tol is None:
        tol = atol + rtol * np.abs(ref)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), ref.shape)
    gn, rn = np.isnan(got), np.isnan(ref)
    ri = np.isinf(ref)
    with np.errstate(invalid="ignore"):
        err = np.abs(got - ref)
        bad = (gn != rn) | (ri & (got != ref)) | (~rn & ~ri & ~(err <= tol))
    if bad.any():
        idx = np.argwhere(bad)
        i = tuple(idx[0])
        worst = ""
        fin = ~rn & ~ri & ~gn
        if fin.any():
            ratio = np.where(fin, err / np.maximum(tol, 1e-300), 0)
            j = np.unravel_index(np.argmax(ratio), ratio.shape)
            worst = "; worst at %s: got %r, expected %r (err %.3g, tol %.3g)" % (
                tuple(int(t) for t in j), got[j], ref[j], err[j], tol[j])
        return check(False, "%s: %d of %d elements differ; first at %s: got %r, expected %r%s" % (
            what, int(bad.sum()), bad.size, tuple(int(t) for t in i), got[i], ref[i], worst))
    return check(True, what)


def equal(what, got, ref):
    """Exact equality of values and shape (NaN equals NaN)."""
    got = np.asarray(got)
    ref = np.asarray(ref)
    if got.shape != ref.shape:
        return check(False, "%s: shape %s, expected %s" % (what, got.shape, ref.shape))
    eq = (got == ref)
    if got.dtype.kind == "f" or ref.dtype.kind == "f":
        eq = eq | (np.isnan(got.astype(np.float64)) & np.isnan(ref.astype(np.float64)))
    if not np.all(eq):
        bad = np.argwhere(~eq)
        i = tuple(int(t) for t in bad[0]) if bad.ndim == 2 and len(bad) else ()
        return check(False, "%s: %d of %d differ; first at %s: got %r, expected %r" % (
            what, int((~eq).sum()), eq.size, i, got[i] if got.ndim else got,
            ref[i] if ref.ndim else ref))
    return check(True, what)


def dtype_is(what, a, expected):
    got = dtype_name(a)
    return check(got == expected, "%s: dtype %s, expected %s" % (what, got, expected))


def expect_error(what, fn, status=None):
    """fn() must raise LxError (with `status` if given) and leave no sticky error."""
    try:
        fn()
    except LxError as e:
        ok = status is None or e.status == status
        clear_error()
        return check(ok, "%s: status %s, expected %s (%s)" % (
            what, STATUS[e.status], STATUS[status] if status is not None else "an error",
            e.message))
    clear_error()
    return check(False, "%s: no error raised" % what)


def run_tests(argv=None):
    """Runs the registered tests (those named on the command line, if any); prints
    'N passed, M failed' and returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    for fn in _TESTS:
        if argv and not any(a in fn.__name__ for a in argv):
            continue
        _current[0] = fn.__name__
        before = _counts["failed"]
        try:
            fn()
        except Exception:
            _counts["failed"] += 1
            tb = traceback.format_exc()
            _failures.append("%s: exception" % fn.__name__)
            print("FAIL: %s raised:\n%s" % (fn.__name__, tb), flush=True)
        if lib.lx_error() != 0:
            st, msg = take_error()
            check(False, "left a sticky error %s: %s" % (STATUS[st], msg))
        lib.lx_sweep()
        print("%-40s %s" % (fn.__name__, "ok" if _counts["failed"] == before else "FAILED"),
              flush=True)
    print("%d passed, %d failed" % (_counts["passed"], _counts["failed"]))
    return 1 if _counts["failed"] else 0
