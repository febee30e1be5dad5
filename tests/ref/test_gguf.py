"""test_gguf.py - our GGUF reader and writer against the `gguf` Python package.

Reader: files written by gguf.GGUFWriter with fresh random metadata (every
value type, string and nested arrays, random unicode and raw non-UTF-8 bytes,
random float bit patterns) and random tensors (F32, F16, BF16, integer types
and quantized blobs of valid sizes), single and split, are dumped with
rf_gguf_dump and compared with what gguf.GGUFReader reads and with what was
written. The real models in models/ are compared the same way when present.

Writer: `rf_gguf_dump --roundtrip [--stream] IN OUT` rewrites a file with our
writer; gguf.GGUFReader must read OUT exactly as it reads IN (and for files
laid out by gguf.GGUFWriter, OUT is byte-identical to IN).

The seed is printed; RF_TEST_SEED=N repeats a run.
"""
import filecmp
import json
import math
import os
import random
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
KNOWN_MODELS = ["SmolLM2-135M-Instruct-Q4_1.gguf", "gemma-3-270m-Q4_K_M.gguf"]


def _bin_dir() -> Path:
    d = Path(os.environ.get("RF_BIN_DIR", "build"))
    if not d.is_absolute() and not d.exists():
        d = ROOT / d
    return d


DUMP = _bin_dir() / "rf_gguf_dump"
SEED = int(os.environ.get("RF_TEST_SEED", "0")) or (time.time_ns() & 0xFFFFFFFF)

# Our names for the value types (rf_gguf_vtype_name).
VT_NAME = {VT.UINT8: "U8", VT.INT8: "I8", VT.UINT16: "U16", VT.INT16: "I16", VT.UINT32: "U32",
           VT.INT32: "I32", VT.FLOAT32: "F32", VT.BOOL: "BOOL", VT.STRING: "STRING",
           VT.ARRAY: "ARRAY", VT.UINT64: "U64", VT.INT64: "I64", VT.FLOAT64: "F64"}
INT_RANGE = {VT.UINT8: (0, 2**8 - 1), VT.INT8: (-2**7, 2**7 - 1), VT.UINT16: (0, 2**16 - 1),
             VT.INT16: (-2**15, 2**15 - 1), VT.UINT32: (0, 2**32 - 1), VT.INT32: (-2**31, 2**31 - 1),
             VT.UINT64: (0, 2**64 - 1), VT.INT64: (-2**63, 2**63 - 1)}
SCALARS = list(INT_RANGE) + [VT.FLOAT32, VT.FLOAT64, VT.BOOL, VT.STRING]


@pytest.fixture(scope="module", autouse=True)
def _need_tool():
    assert DUMP.exists(), f"{DUMP} missing: build the rf_gguf_dump target (RF_BIN_DIR={_bin_dir()})"


@pytest.fixture(autouse=True)
def _show_seed():
    print(f"seed: RF_TEST_SEED={SEED}")  # shown with the output of a failing test


def run_dump(*args) -> dict:
    p = subprocess.run([str(DUMP), *map(str, args)], capture_output=True)
    assert p.returncode == 0, f"rf_gguf_dump {args}: {p.stderr.decode(errors='replace')}"
    return json.loads(p.stdout) if p.stdout else {}


# ---- random content ---------------------------------------------------------

# Code point ranges for random text: ASCII incl. controls, Latin, BMP, astral.
CP_RANGES = [(0x00, 0x1F), (0x20, 0x7E), (0x7F, 0x7F), (0xA0, 0x7FF), (0x800, 0xD7FF),
             (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]


def rand_text(rng: random.Random, max_len=12) -> str:
    out = []
    for _ in range(rng.randint(0, max_len)):
        lo, hi = rng.choice(CP_RANGES)
        out.append(chr(rng.randint(lo, hi)))
    if rng.random() < 0.2:
        out.append(rng.choice(['"', "\\", "\n", "\t", "\x00", "/"]))
    return "".join(out)


def rand_bytes_str(rng: random.Random) -> bytes:
    """Mostly invalid UTF-8: random bytes, plus classic traps."""
    traps = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80",
             b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf", b"\xe2\x82\xac", b"\x80", b"\xc2"]
    parts = [rng.choice(traps) if rng.random() < 0.5 else bytes([rng.randint(0, 255)])
             for _ in range(rng.randint(1, 8))]
    return b"".join(parts)


def rand_scalar(rng: random.Random, vt):
    """Returns (value to hand GGUFWriter, expected tree)."""
    if vt in INT_RANGE:
        lo, hi = INT_RANGE[vt]
        v = rng.choice([lo, hi, 0, rng.randint(lo, hi), rng.randint(lo, hi)])
        return v, (vt, v)
    if vt == VT.FLOAT32:
        v = float(np.uint32(rng.getrandbits(32)).view(np.float32)) if rng.random() < 0.7 else \
            rng.choice([0.0, -0.0, math.inf, -math.inf, 1e-45, 3.4028234663852886e38, 0.1])
        return v, (vt, v)
    if vt == VT.FLOAT64:
        v = float(np.uint64(rng.getrandbits(64)).view(np.float64)) if rng.random() < 0.7 else \
            rng.choice([0.0, -0.0, math.inf, 5e-324, 1.7976931348623157e308, 0.1])
        return v, (vt, v)
    if vt == VT.BOOL:
        v = rng.random() < 0.5
        return v, (vt, v)
    if rng.random() < 0.15:
        v = rand_bytes_str(rng)
        return v, (vt, v)
    v = rand_text(rng)
    return v, (vt, v.encode())


def rand_nested(rng: random.Random, depth: int):
    """A list GGUFWriter types by itself: ints -> INT32, floats -> FLOAT32,
    bools -> BOOL, str -> STRING, lists -> ARRAY (inner lists non-empty)."""
    n = rng.randint(1, 4)
    kind = rng.choice(["int", "float", "bool", "str"] + (["list"] if depth < 4 else []))
    if kind == "list":
        kids = [rand_nested(rng, depth + 1) for _ in range(n)]
        return [k[0] for k in kids], (VT.ARRAY, VT.ARRAY, [k[1] for k in kids])
    if kind == "int":
        vals = [rng.randint(-2**31, 2**31 - 1) for _ in range(n)]
        return vals, (VT.ARRAY, VT.INT32, [(VT.INT32, v) for v in vals])
    if kind == "float":
        vals = [float(np.float32(rng.uniform(-1e6, 1e6))) for _ in range(n)]
        return vals, (VT.ARRAY, VT.FLOAT32, [(VT.FLOAT32, v) for v in vals])
    if kind == "bool":
        vals = [rng.random() < 0.5 for _ in range(n)]
        return vals, (VT.ARRAY, VT.BOOL, [(VT.BOOL, v) for v in vals])
    vals = [rand_text(rng) for _ in range(n)]
    return vals, (VT.ARRAY, VT.STRING, [(VT.STRING, v.encode()) for v in vals])


def add_random_kvs(rng: random.Random, w: gguf.GGUFWriter, n_keys: int) -> dict:
    """Adds random kvs; returns {key: expected tree}."""
    expect = {}
    for i in range(n_keys):
        key = f"rand.{i}.{rand_text(rng, 6).replace(chr(0), '')}"
        r = rng.random()
        if r < 0.45:
            vt = rng.choice(SCALARS)
            v, tree = rand_scalar(rng, vt)
            w.add_key_value(key, v, vt)
        elif r < 0.85:
            et = rng.choice(SCALARS)
            items = [rand_scalar(rng, et) for _ in range(rng.randint(1, 12))]
            w.add_key_value(key, [x[0] for x in items], VT.ARRAY, sub_type=et)
            tree = (VT.ARRAY, et, [x[1] for x in items])
        else:
            kids = [rand_nested(rng, 2) for _ in range(rng.randint(1, 3))]
            w.add_key_value(key, [x[0] for x in kids], VT.ARRAY, sub_type=VT.ARRAY)
            tree = (VT.ARRAY, VT.ARRAY, [x[1] for x in kids])
        expect[key] = tree
    return expect


QUANT_TYPES = [QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0, QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K,
               QT.Q6_K, QT.Q8_K, QT.IQ2_XXS, QT.IQ4_NL, QT.IQ4_XS, QT.TQ2_0, QT.MXFP4, QT.BF16]
NP_TYPES = {QT.F32: np.float32, QT.F16: np.float16, QT.F64: np.float64, QT.I8: np.int8,
            QT.I16: np.int16, QT.I32: np.int32, QT.I64: np.int64}


def add_random_tensors(rng: random.Random, w: gguf.GGUFWriter, n: int) -> dict:
    """Adds random tensors; returns {name: (type, shape ne0-first, bytes)}."""
    nrng = np.random.default_rng(rng.getrandbits(32))
    expect = {}
    for i in range(n):
        name = f"blk.{i}.{rng.choice(['attn_q', 'ffn_up', 'norm'])}.weight"
        n_dims = rng.randint(1, 4)
        if rng.random() < 0.5:
            qt = rng.choice(list(NP_TYPES))
            dims = [rng.randint(1, 5) for _ in range(n_dims)]  # numpy order: last is ne0
            if NP_TYPES[qt] in (np.float32, np.float16, np.float64):
                arr = nrng.standard_normal(dims).astype(NP_TYPES[qt])
            else:
                arr = nrng.integers(-100, 100, size=dims).astype(NP_TYPES[qt])
            w.add_tensor(name, arr)
            raw = arr.tobytes()
        else:
            qt = rng.choice(QUANT_TYPES)
            block, tsize = gguf.GGML_QUANT_SIZES[qt]
            dims = [rng.randint(1, 3) for _ in range(n_dims - 1)] + [block * rng.randint(1, 2)]
            byte_shape = gguf.quant_shape_to_byte_shape(dims, qt)
            arr = nrng.integers(0, 256, size=byte_shape, dtype=np.uint8)
            w.add_tensor(name, arr, raw_dtype=qt)
            raw = arr.tobytes()
        expect[name] = (qt, list(reversed(dims)), raw)
    return expect


def write_random(path: Path, seed: int, n_keys=40, n_tensors=8, alignment=None, split_max_tensors=0):
    rng = random.Random(seed)
    w = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_string("general.name", rand_text(rng) or "x")
    kvs = add_random_kvs(rng, w, n_keys)
    tensors = add_random_tensors(rng, w, n_tensors)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return kvs, tensors


# ---- what gguf.GGUFReader read -----------------------------------------------

def decode_parts(parts, i, vt):
    """Structure-keeping walk over a ReaderField's parts (GGUFReader flattens
    nested arrays in contents()). Returns (tree, next part index)."""
    if vt == VT.STRING:
        return (vt, parts[i + 1].tobytes()), i + 2
    if vt == VT.ARRAY:
        et, n = VT(int(parts[i][0])), int(parts[i + 1][0])
        i += 2
        kids = []
        for _ in range(n):
            kid, i = decode_parts(parts, i, et)
            kids.append(kid)
        return (vt, et, kids), i
    x = parts[i][0]
    v = bool(x) if vt == VT.BOOL else float(x) if vt in (VT.FLOAT32, VT.FLOAT64) else int(x)
    return (vt, v), i + 1


def reader_kvs(r: gguf.GGUFReader) -> dict:
    out = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        tree, end = decode_parts(f.parts, 3, VT(int(f.parts[2][0])))
        assert end == len(f.parts)
        out[name] = tree
    return out


# ---- comparisons ----------------------------------------------------------------

def same_float(a: float, b: float, np_t) -> bool:
    x, y = np_t(a), np_t(b)
    return (np.isnan(x) and np.isnan(y)) or x.tobytes() == y.tobytes()


def check_value(tree, dv, where: str):
    vt = tree[0]
    if vt == VT.ARRAY:
        assert isinstance(dv, list) and len(dv) == len(tree[2]), f"{where}: {dv!r:.200} vs {tree!r:.200}"
        for k, (kid, d) in enumerate(zip(tree[2], dv)):
            check_value(kid, d, f"{where}[{k}]")
    elif vt == VT.STRING:
        assert isinstance(dv, str), where
        assert dv.encode("utf-8", "surrogateescape") == tree[1], f"{where}: {dv!r} vs {tree[1]!r}"
    elif vt == VT.FLOAT32:
        assert same_float(dv, tree[1], np.float32), f"{where}: {dv!r} vs {tree[1]!r}"
    elif vt == VT.FLOAT64:
        assert same_float(dv, tree[1], np.float64), f"{where}: {dv!r} vs {tree[1]!r}"
    elif vt == VT.BOOL:
        assert dv is tree[1], f"{where}: {dv!r} vs {tree[1]!r}"
    else:
        assert type(dv) is int and dv == tree[1], f"{where}: {dv!r} vs {tree[1]!r}"


def type_name(tree) -> str:
    return f"ARRAY[{VT_NAME[tree[1]]}]" if tree[0] == VT.ARRAY else VT_NAME[tree[0]]


def check_dump_vs_reader(d: dict, readers: list, skip_split_keys=False):
    """d: our dump of a file (or split set); readers: GGUFReader per part."""
    r0 = readers[0]
    kvs = reader_kvs(r0)
    assert d["version"] == int(r0.fields["GGUF.version"].parts[0][0])
    assert d["alignment"] == r0.alignment
    assert d["n_splits"] == len(readers)
    assert list(d["kv"]) == [k.encode().decode("utf-8", "surrogateescape") for k in kvs]
    for key, tree in kvs.items():
        check_value(tree, d["kv"][key], key)
        assert d["kv_types"][key] == type_name(tree), key
    rts = [(split, t) for split, r in enumerate(readers) for t in r.tensors]
    assert len(d["tensors"]) == len(rts)
    for dt, (split, rt) in zip(d["tensors"], rts):
        assert dt["name"] == rt.name
        assert dt["type"] == QT(rt.tensor_type).name
        assert dt["type_id"] == int(rt.tensor_type)
        assert dt["shape"] == [int(x) for x in rt.shape]
        assert dt["nbytes"] == rt.n_bytes
        assert dt["split"] == split
        assert readers[split].data_offset + dt["offset"] == rt.data_offset
        if "crc32" in dt:
            assert dt["crc32"] == zlib.crc32(np.ascontiguousarray(rt.data).view(np.uint8).data), rt.name


def check_dump_vs_truth(d: dict, kvs: dict, tensors: dict):
    for key, tree in kvs.items():
        check_value(tree, d["kv"][key], key)
        assert d["kv_types"][key] == type_name(tree), key
    by_name = {t["name"]: t for t in d["tensors"]}
    assert set(by_name) == set(tensors)
    for name, (qt, shape, raw) in tensors.items():
        t = by_name[name]
        assert (t["type"], t["shape"], t["nbytes"]) == (qt.name, shape, len(raw)), name
        assert t["crc32"] == zlib.crc32(raw), name


def field_bytes(r: gguf.GGUFReader) -> dict:
    """Each kv's serialized type + value, for exact comparisons."""
    return {k: b"".join(p.tobytes() for p in f.parts[2:]) for k, f in r.fields.items()
            if not k.startswith("GGUF.")}


def check_same_for_reader(a_readers: list, b: gguf.GGUFReader):
    """File b (one part) must read like the (maybe split) set a, split.* aside."""
    fa = {k: v for k, v in field_bytes(a_readers[0]).items() if not k.startswith("split.")}
    fb = field_bytes(b)
    assert list(fa) == list(fb)
    for k in fa:
        assert fa[k] == fb[k], k
    assert b.alignment == a_readers[0].alignment
    ta = [t for r in a_readers for t in r.tensors]
    assert [t.name for t in ta] == [t.name for t in b.tensors]
    for x, y in zip(ta, b.tensors):
        assert (x.tensor_type, list(x.shape), x.n_bytes) == (y.tensor_type, list(y.shape), y.n_bytes), x.name
        assert np.ascontiguousarray(x.data).tobytes() == np.ascontiguousarray(y.data).tobytes(), x.name


# ---- tests --------------------------------------------------------------------

@pytest.mark.parametrize("k", range(10))
def test_random_files(tmp_path, k):
    seed = SEED * 100 + k
    path = tmp_path / f"rand{k}.gguf"
    alignment = [None, 64, None, 16, None, 256, None, 1, None, 32][k]
    kvs, tensors = write_random(path, seed, alignment=alignment)
    r = gguf.GGUFReader(str(path))
    d = run_dump(path)
    assert d["file_size"] == path.stat().st_size
    check_dump_vs_reader(d, [r])
    check_dump_vs_truth(d, kvs, tensors)

    # Our writer: same reading by GGUFReader, and the very same bytes as
    # GGUFWriter lays them out; streamed or from pointers alike.
    for mode in ([], ["--stream"]):
        out = tmp_path / f"rt{k}{''.join(mode)}.gguf"
        run_dump("--roundtrip", *mode, path, out)
        check_same_for_reader([r], gguf.GGUFReader(str(out)))
        assert out.read_bytes() == path.read_bytes(), f"seed {seed}: our writer's bytes differ"


def test_split_files(tmp_path):
    path = tmp_path / "split.gguf"
    kvs, tensors = write_random(path, SEED * 100 + 50, n_keys=12, n_tensors=7, split_max_tensors=3)
    parts = [tmp_path / f"split-{i:05d}-of-00003.gguf" for i in range(1, 4)]
    assert all(p.exists() for p in parts)
    readers = [gguf.GGUFReader(str(p)) for p in parts]
    d = run_dump(parts[0])
    assert d["n_splits"] == 3 and len(d["tensors"]) == 7
    assert d["file_size"] == sum(p.stat().st_size for p in parts)
    check_dump_vs_reader(d, readers)
    check_dump_vs_truth(d, kvs, tensors)
    out = tmp_path / "merged.gguf"
    run_dump("--roundtrip", parts[0], out)
    merged = gguf.GGUFReader(str(out))
    check_same_for_reader(readers, merged)
    assert not any(k.startswith("split.") for k in merged.fields)


def test_string_escapes(tmp_path):
    """Every kind of byte string survives the JSON dump exactly, and the
    escape choice is Python's surrogateescape."""
    samples = [b"", b"plain", b'q"uote\\back', bytes(range(0x20)) + b"\x7f", "é€😀\u2028".encode(),
               b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xe2\x82\xac\xe2",
               b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"a\x00b", bytes(range(256))]
    w = gguf.GGUFWriter(str(tmp_path / "s.gguf"), "llama")
    for i, s in enumerate(samples):
        w.add_key_value(f"s.{i}", s, VT.STRING)
    w.add_key_value("s.arr", samples[1:], VT.ARRAY, sub_type=VT.STRING)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    d = run_dump(tmp_path / "s.gguf")
    for i, s in enumerate(samples):
        assert d["kv"][f"s.{i}"] == s.decode("utf-8", "surrogateescape"), s
    assert [x.encode("utf-8", "surrogateescape") for x in d["kv"]["s.arr"]] == samples[1:]


def test_dump_errors(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    p = subprocess.run([str(DUMP), str(bad)], capture_output=True)
    assert p.returncode == 2 and p.stdout == b""
    assert b"broken.gguf: offset 16" in p.stderr and b"key-value count" in p.stderr
    bad.write_bytes(b"GGUF\x01\x00\x00\x00" + b"\x00" * 16)
    p = subprocess.run([str(DUMP), str(bad)], capture_output=True)
    assert p.returncode == 2 and b"version 1 is not supported" in p.stderr
    p = subprocess.run([str(DUMP)], capture_output=True)
    assert p.returncode == 2 and b"usage" in p.stderr
    p = subprocess.run([str(DUMP), str(tmp_path / "missing.gguf")], capture_output=True)
    assert p.returncode == 2 and b"cannot open" in p.stderr


def _model_paths():
    found = sorted(p.name for p in MODELS.glob("*.gguf")) if MODELS.is_dir() else []
    return sorted(set(KNOWN_MODELS) | set(found))


@pytest.mark.parametrize("name", _model_paths())
def test_real_model(tmp_path, name):
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (scripts/fetch-models puts it there); random-file checks still ran")
    r = gguf.GGUFReader(str(path))
    d = run_dump(path)
    assert d["file_size"] == path.stat().st_size
    check_dump_vs_reader(d, [r])
    # Rewritten by our writer, the model dumps the same; the known models
    # (laid out by gguf-py / ggml) come back byte for byte.
    out = tmp_path / "rt.gguf"
    run_dump("--roundtrip", path, out)
    d2 = run_dump(out)
    assert json.dumps(d2["kv"]) == json.dumps(d["kv"])
    assert d2["kv_types"] == d["kv_types"]
    strip = lambda ts: [{k: v for k, v in t.items() if k != "offset"} for t in ts]  # noqa: E731
    assert strip(d2["tensors"]) == strip(d["tensors"])
    if name in KNOWN_MODELS:
        assert filecmp.cmp(path, out, shallow=False), f"{name}: our writer's bytes differ"
