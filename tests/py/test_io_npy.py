"""npy through liblx against numpy itself: files written by numpy (np.save and
np.lib.format.write_array, versions 1.0, 2.0 and 3.0) load with identical values for every
dtype lx shares with npy; files written by lx_save_npy load in numpy (np.load) with identical
values; bfloat16, Fortran order, big-endian and non-numeric dtypes are refused clearly.

Env: LX_LIB (liblx.so), LX_TEST_TMP (scratch folder).
"""
import ctypes
import os
import shutil
import sys
import tempfile

import numpy as np


class Arr(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64)]


lib = ctypes.CDLL(os.environ.get("LX_LIB", "liblx.so"))
for name, res, args in [
    ("lx_load_npy", Arr, [ctypes.c_char_p]),
    ("lx_save_npy", ctypes.c_int, [ctypes.c_char_p, Arr]),
    ("lx_array_new", Arr, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int]),
    ("lx_ndim", ctypes.c_int, [Arr]),
    ("lx_shape", ctypes.c_int, [Arr, ctypes.POINTER(ctypes.c_int)]),
    ("lx_dtype_of", ctypes.c_int, [Arr]),
    ("lx_read", ctypes.c_int, [Arr, ctypes.c_void_p, ctypes.c_size_t]),
    ("lx_error", ctypes.c_int, []),
    ("lx_error_message", ctypes.c_char_p, []),
    ("lx_clear_error", None, []),
    ("lx_sweep", None, []),
]:
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = args

LX_E_FORMAT, LX_E_UNSUPPORTED, LX_BFLOAT16 = 7, 9, 10
LX_OF_NP = {np.dtype(np.bool_): 0, np.dtype(np.uint8): 1, np.dtype(np.uint16): 2,
            np.dtype(np.uint32): 3, np.dtype(np.uint64): 4, np.dtype(np.int8): 5,
            np.dtype(np.int16): 6, np.dtype(np.int32): 7, np.dtype(np.int64): 8,
            np.dtype(np.float16): 9, np.dtype(np.float32): 11, np.dtype(np.float64): 12}
NP_OF_LX = {v: k for k, v in LX_OF_NP.items()}
NP_OF_LX[LX_BFLOAT16] = np.dtype(np.uint16)

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def err():
    return lib.lx_error_message().decode(errors="replace")


def read(a):
    n = lib.lx_ndim(a)
    shape = (ctypes.c_int * 8)()
    lib.lx_shape(a, shape)
    out = np.empty(tuple(shape[:n]), dtype=NP_OF_LX[lib.lx_dtype_of(a)])
    assert lib.lx_read(a, out.ctypes.data, out.nbytes) == 0, err()
    return out


def same(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def random_array(rng, dt, shape):
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.dtype(dt).kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def main():
    tmp = tempfile.mkdtemp(dir=os.environ.get("LX_TEST_TMP"))
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    rng = np.random.default_rng(5)
    shapes = [(), (7,), (3, 4), (2, 3, 4), (0, 5), (1, 1, 1, 1, 1, 1, 1, 2)]
    # numpy -> lx
    for dt in LX_OF_NP:
        for shape in shapes:
            for version in [(1, 0), (2, 0), (3, 0)]:
                x = random_array(rng, dt, shape)
                p = os.path.join(tmp, "np.npy")
                with open(p, "wb") as f:
                    np.lib.format.write_array(f, x, version=version)
                a = lib.lx_load_npy(p.encode())
                ok = a.id != 0
                check(ok, "lx_load_npy %s %s v%s: %s" % (dt, shape, version, err()))
                if ok:
                    check(lib.lx_dtype_of(a) == LX_OF_NP[dt], "%s dtype" % dt)
                    check(same(read(a), x), "%s %s v%s values" % (dt, shape, version))
                lib.lx_clear_error()
        lib.lx_sweep()
    # np.save itself, and a non-contiguous source saved by numpy (it writes C order)
    x = random_array(rng, np.float32, (4, 6))[:, ::2]
    p = os.path.join(tmp, "save.npy")
    np.save(p, x)
    check(same(read(lib.lx_load_npy(p.encode())), np.ascontiguousarray(x)), "np.save of a strided view")
    # lx -> numpy
    for dt in LX_OF_NP:
        for shape in shapes:
            x = np.array(random_array(rng, dt, shape), order="C")  # (ascontiguousarray makes 0-d 1-d)
            cshape = (ctypes.c_int * max(1, len(shape)))(*shape)
            a = lib.lx_array_new(x.ctypes.data if x.size else None, cshape, len(shape), LX_OF_NP[dt])
            p = os.path.join(tmp, "lx.npy")
            st = lib.lx_save_npy(p.encode(), a)
            check(st == 0, "lx_save_npy %s %s: %s" % (dt, shape, err()))
            if st == 0:
                y = np.load(p)
                check(same(y, x), "np.load of lx_save_npy %s %s" % (dt, shape))
                check(os.path.getsize(p) - x.nbytes in (128, 192), "header padded to 64")
            lib.lx_clear_error()
        lib.lx_sweep()
    # bfloat16 has no npy code: refused
    raw = np.zeros(3, dtype=np.uint16)
    a = lib.lx_array_new(raw.ctypes.data, (ctypes.c_int * 1)(3), 1, LX_BFLOAT16)
    st = lib.lx_save_npy(os.path.join(tmp, "bf.npy").encode(), a)
    check(st == LX_E_UNSUPPORTED and "bfloat16" in err(), "bfloat16 refused: %s" % err())
    check(not os.path.exists(os.path.join(tmp, "bf.npy")), "nothing written for bfloat16")
    lib.lx_clear_error()
    # refused inputs
    cases = [
        ("fortran", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), LX_E_UNSUPPORTED),
        ("big-endian", np.arange(4, dtype=">i4"), LX_E_UNSUPPORTED),
        ("complex", np.ones(3, dtype=np.complex64), LX_E_UNSUPPORTED),
        ("strings", np.array(["ab", "c"]), LX_E_UNSUPPORTED),
        ("structured", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), LX_E_UNSUPPORTED),
        ("datetime", np.zeros(2, dtype="datetime64[s]"), LX_E_UNSUPPORTED),
    ]
    for what, x, status in cases:
        p = os.path.join(tmp, "bad.npy")
        np.save(p, x)
        a = lib.lx_load_npy(p.encode())
        check(a.id == 0 and lib.lx_error() == status and "bad.npy" in err(),
              "%s: %s (%s)" % (what, lib.lx_error(), err()))
        lib.lx_clear_error()
    # 1-byte big-endian marks and 1-d Fortran arrays are the same bytes: accepted
    p = os.path.join(tmp, "f1.npy")
    np.save(p, np.asfortranarray(np.arange(5, dtype=np.int16)))
    check(same(read(lib.lx_load_npy(p.encode())), np.arange(5, dtype=np.int16)), "1-d fortran")
    # truncations of a numpy file
    good = open(os.path.join(tmp, "np.npy"), "rb").read()
    for k in range(0, len(good), 3):
        p = os.path.join(tmp, "t.npy")
        open(p, "wb").write(good[:k])
        a = lib.lx_load_npy(p.encode())
        check((a.id == 0 and lib.lx_error() == LX_E_FORMAT) or k == len(good), "truncated at %d" % k)
        lib.lx_clear_error()
    lib.lx_sweep()


main()
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
