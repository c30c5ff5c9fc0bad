"""safetensors through liblx, checked against an independent reading with numpy:
the fixtures written by Hugging Face's library load with identical values (the file parsed by
hand here: 8-byte header length, JSON header, raw little-endian bytes), lx_save_safetensors
output parses by hand to the saved values for every dtype, malformed files are refused with
LX_E_FORMAT / LX_E_UNSUPPORTED naming the file, and random mutations never crash.

Env: LX_LIB (liblx.so), LX_FIXTURES (default ../shared/fixtures beside the repo),
LX_TEST_TMP (scratch folder).
"""
import ctypes
import glob
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np


class Arr(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64)]


lib = ctypes.CDLL(os.environ.get("LX_LIB", "liblx.so"))
for name, res, args in [
    ("lx_load", ctypes.c_void_p, [ctypes.c_char_p]),
    ("lx_weights_get", Arr, [ctypes.c_void_p, ctypes.c_char_p]),
    ("lx_weights_count", ctypes.c_int, [ctypes.c_void_p]),
    ("lx_weights_name", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
    ("lx_weights_metadata", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_char_p]),
    ("lx_weights_free", None, [ctypes.c_void_p]),
    ("lx_save_safetensors", ctypes.c_int,
     [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(Arr), ctypes.c_int]),
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

LX_E_FORMAT, LX_E_UNSUPPORTED = 7, 9
# lx dtype -> (safetensors name, numpy dtype holding its bytes)
DTYPES = {0: ("BOOL", np.bool_), 1: ("U8", np.uint8), 2: ("U16", np.uint16), 3: ("U32", np.uint32),
          4: ("U64", np.uint64), 5: ("I8", np.int8), 6: ("I16", np.int16), 7: ("I32", np.int32),
          8: ("I64", np.int64), 9: ("F16", np.float16), 10: ("BF16", np.uint16),
          11: ("F32", np.float32), 12: ("F64", np.float64)}
ST_TO_NP = {v[0]: v[1] for v in DTYPES.values()}

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
    out = np.empty(tuple(shape[:n]), dtype=DTYPES[lib.lx_dtype_of(a)][1])
    assert lib.lx_read(a, out.ctypes.data, out.nbytes) == 0, err()
    return out


def parse_by_hand(path):
    """An independent safetensors reader: {name: (dtype name, array)}, metadata."""
    raw = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        arr = np.frombuffer(raw[base + b:base + e], dtype=np.dtype(ST_TO_NP[info["dtype"]]).newbyteorder("<"))
        out[name] = (info["dtype"], arr.reshape(info["shape"]))
    return out, meta


def same(a, b):
    if a.dtype.kind == "f":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


def test_fixtures():
    root = os.environ.get("LX_FIXTURES") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures")
    files = sorted(glob.glob(os.path.join(root, "*", "*.safetensors")))
    check(len(files) >= 2, "fixtures found in %s" % root)
    for path in files:
        want, meta = parse_by_hand(path)
        w = lib.lx_load(path.encode())
        check(w, "load %s: %s" % (path, err()))
        if not w:
            lib.lx_clear_error()
            continue
        check(lib.lx_weights_count(w) == len(want), path + " count")
        for k, v in meta.items():
            got = lib.lx_weights_metadata(w, k.encode())
            check(got is not None and got.decode() == v, "%s metadata %s" % (path, k))
        for name, (dt, arr) in want.items():
            a = lib.lx_weights_get(w, name.encode())
            if a.id == 0:
                check(False, "%s: %s missing" % (path, name))
                lib.lx_clear_error()
                continue
            check(DTYPES[lib.lx_dtype_of(a)][0] == dt, "%s: %s dtype" % (path, name))
            check(same(read(a), arr), "%s: %s values" % (path, name))
        lib.lx_weights_free(w)
        lib.lx_sweep()
    # the model directories load too (their model.safetensors)
    for d in sorted(glob.glob(os.path.join(root, "*"))):
        if os.path.exists(os.path.join(d, "model.safetensors")):
            w = lib.lx_load(d.encode())
            want, _ = parse_by_hand(os.path.join(d, "model.safetensors"))
            check(w and lib.lx_weights_count(w) == len(want), "directory " + d)
            if w:
                lib.lx_weights_free(w)
            lib.lx_clear_error()


def test_roundtrip(tmp):
    rng = np.random.default_rng(3)
    arrays, names, keep = [], [], []
    expect = {}
    for t, (stname, npdt) in DTYPES.items():
        shape = (2, t + 1, 3)
        if npdt == np.bool_:
            data = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            data = rng.integers(0, 256, (int(np.prod(shape)) * np.dtype(npdt).itemsize,), dtype=np.uint8).view(npdt).reshape(shape)
        data = np.ascontiguousarray(data)
        keep.append(data)
        cshape = (ctypes.c_int * 3)(*shape)
        a = lib.lx_array_new(data.ctypes.data, cshape, 3, t)
        check(a.id != 0, "lx_array_new " + stname)
        arrays.append(a)
        names.append(("w." + stname).encode())
        expect["w." + stname] = (stname, data)
    path = os.path.join(tmp, "rt.safetensors")
    n = len(arrays)
    st = lib.lx_save_safetensors(path.encode(), (ctypes.c_char_p * n)(*names), (Arr * n)(*arrays), n)
    check(st == 0, "save: " + err())
    got, meta = parse_by_hand(path)
    check(meta.get("format") == "pt", "metadata format")
    check(set(got) == set(expect), "names")
    for k, (dt, data) in expect.items():
        if k in got:
            check(got[k][0] == dt, k + " dtype")
            check(same(got[k][1], data), k + " values (parsed by hand)")
    # the header is padded so data starts 8-aligned, and every tensor is aligned for its dtype
    raw = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    check((8 + hlen) % 8 == 0, "header padded to 8")
    header = json.loads(raw[8:8 + hlen])
    for k, info in header.items():
        if k != "__metadata__":
            check(info["data_offsets"][0] % np.dtype(ST_TO_NP[info["dtype"]]).itemsize == 0, k + " aligned")
    w = lib.lx_load(path.encode())
    check(w, "reload: " + err())
    if w:
        for k, (dt, data) in expect.items():
            check(same(read(lib.lx_weights_get(w, k.encode())), data), k + " reloaded")
        lib.lx_weights_free(w)
    check(not [f for f in os.listdir(tmp) if ".tmp-" in f], "no temporary files left")
    lib.lx_sweep()


def st_bytes(header, data=b""):
    h = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(h)) + h + data


def expect_refused(tmp, what, content, status):
    p = os.path.join(tmp, "bad.safetensors")
    open(p, "wb").write(content)
    w = lib.lx_load(p.encode())
    check(not w and lib.lx_error() == status and "bad.safetensors" in err(),
          "%s: got %s (%s)" % (what, "a load" if w else lib.lx_error(), err()))
    if w:
        lib.lx_weights_free(w)
    lib.lx_clear_error()


def test_malformed(tmp):
    t = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    good = st_bytes({"a": t}, bytes(8))
    for k in range(len(good)):
        expect_refused(tmp, "truncated at %d" % k, good[:k], LX_E_FORMAT)
    expect_refused(tmp, "header length past the end", struct.pack("<Q", 10 ** 6) + good[8:], LX_E_FORMAT)
    expect_refused(tmp, "header length huge", struct.pack("<Q", 2 ** 63) + good[8:], LX_E_FORMAT)
    expect_refused(tmp, "overlap", st_bytes({"a": t, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)), LX_E_FORMAT)
    expect_refused(tmp, "out of range", st_bytes({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), LX_E_FORMAT)
    expect_refused(tmp, "size mismatch", st_bytes({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)), LX_E_FORMAT)
    expect_refused(tmp, "unknown dtype", st_bytes({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), LX_E_FORMAT)
    expect_refused(tmp, "F8_E5M2", st_bytes({"a": {"dtype": "F8_E5M2", "shape": [8], "data_offsets": [0, 8]}}, bytes(8)), LX_E_UNSUPPORTED)
    expect_refused(tmp, "duplicate", st_bytes(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', bytes(2)), LX_E_FORMAT)
    expect_refused(tmp, "invalid UTF-8", st_bytes(b'{"\xfe":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', bytes(1)), LX_E_FORMAT)
    expect_refused(tmp, "9 dims", st_bytes({"a": {"dtype": "U8", "shape": [1] * 9, "data_offsets": [0, 1]}}, bytes(1)), LX_E_FORMAT)
    expect_refused(tmp, "overflowing shape", st_bytes({"a": {"dtype": "F64", "shape": [2 ** 31 - 1] * 4, "data_offsets": [0, 8]}}, bytes(8)), LX_E_FORMAT)
    expect_refused(tmp, "not JSON", st_bytes(b"{nope", b""), LX_E_FORMAT)


def test_mutations(tmp):
    rng = np.random.default_rng(11)
    root = os.environ.get("LX_FIXTURES") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures")
    files = sorted(glob.glob(os.path.join(root, "*", "reference.safetensors")))
    if not files:
        return
    data = bytearray(open(files[0], "rb").read())
    (hlen,) = struct.unpack("<Q", data[:8])
    p = os.path.join(tmp, "mut.safetensors")
    for it in range(300):
        m = bytearray(data)
        for _ in range(rng.integers(1, 6)):
            # mostly in the header, where the structure is
            m[rng.integers(0, 8 + hlen)] = rng.integers(0, 256)
        if it % 7 == 0:
            m = m[: rng.integers(0, len(m))]
        open(p, "wb").write(m)
        w = lib.lx_load(p.encode())
        check(bool(w) or lib.lx_error() != 0, "mutation %d: failure without an error" % it)
        if w:
            lib.lx_weights_free(w)
        lib.lx_clear_error()
        lib.lx_sweep()


def main():
    tmp = tempfile.mkdtemp(dir=os.environ.get("LX_TEST_TMP"))
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    test_fixtures()
    test_roundtrip(tmp)
    test_malformed(tmp)
    test_mutations(tmp)


main()
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
