#!/usr/bin/env python3
"""make-gguf-seeds.py - writes the seed corpus of the GGUF fuzzer
(tests/fuzz/corpus/gguf/): small valid files covering every value type,
nested arrays, custom alignment, v2, several tensor types, split keys, and
hand-broken variants of them (one defect each). Deterministic; needs only the
standard library. Usage: scripts/make-gguf-seeds.py [OUT_DIR]
"""
import random
import struct
import sys
from pathlib import Path

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests/fuzz/corpus/gguf"

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
PACK = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
        U64: "<Q", I64: "<q", F64: "<d"}
# (block size, bytes per block) of the tensor types used here
TYPES = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q8_0": (8, 32, 34),
         "Q4_K": (12, 256, 144), "Q6_K": (14, 256, 210), "I8": (24, 1, 1), "BF16": (30, 1, 2)}


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def val(vt, v):
    """Value body of type vt. Arrays: v = (elem_type, [items])."""
    if vt == STRING:
        return s(v)
    if vt == ARRAY:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(val(et, x) for x in items)
    return struct.pack(PACK[vt], v)


def kv(key, vt, v):
    return s(key) + struct.pack("<I", vt) + val(vt, v)


def gguf(kvs, tensors, version=3, align=32, data=None):
    """tensors: (name, type name, ne list, offset or None for automatic)."""
    rng = random.Random(len(kvs) * 31 + len(tensors))
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    infos, blob, off = b"", b"", 0
    for name, tname, ne, fixed in tensors:
        tid, blck, tsize = TYPES[tname]
        rows = 1
        for d in ne[1:]:
            rows *= d
        nbytes = ne[0] // blck * tsize * rows
        o = off if fixed is None else fixed
        infos += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", tid, o)
        chunk = bytes(rng.getrandbits(8) for _ in range(nbytes))
        blob += chunk + b"\0" * (-(len(blob) + nbytes) % align)
        off = len(blob)
    out = head + infos
    out += b"\0" * (-len(out) % align)
    return out + (blob if data is None else data)


def all_types_kvs():
    return [
        kv("general.architecture", STRING, "llama"),
        kv("u8", U8, 200), kv("i8", I8, -5), kv("u16", U16, 65535), kv("i16", I16, -300),
        kv("u32", U32, 4000000000), kv("i32", I32, -7), kv("f32", F32, 1.5), kv("bool", BOOL, True),
        kv("u64", U64, 2**64 - 1), kv("i64", I64, -2**63), kv("f64", F64, 0.1),
        kv("str.empty", STRING, ""), kv("str.utf8", STRING, "ünï ✓ 名前"), kv("str.raw", STRING, b"\xff\xc0\x00"),
        kv("arr.u8", ARRAY, (U8, [1, 2, 3])), kv("arr.i16", ARRAY, (I16, [-1, 2])),
        kv("arr.f32", ARRAY, (F32, [0.5, -2.0])), kv("arr.bool", ARRAY, (BOOL, [True, False])),
        kv("arr.u64", ARRAY, (U64, [7])), kv("arr.f64", ARRAY, (F64, [1e300])),
        kv("arr.str", ARRAY, (STRING, ["a", "", "bc"])), kv("arr.empty", ARRAY, (I32, [])),
        kv("arr.nested", ARRAY, (ARRAY, [(I32, [1, 2]), (STRING, ["x"]), (ARRAY, [(BOOL, [True])]), (U8, [])])),
        kv("ключ", U32, 1),
    ]


def deep(depth):
    v = (U8, [42])
    for _ in range(depth - 1):
        v = (ARRAY, [v])
    return kv("deep", ARRAY, v)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    seeds = {}
    seeds["empty-v3"] = gguf([], [])
    seeds["kv-only-v2"] = gguf([kv("general.architecture", STRING, "gpt2"), kv("n", U32, 3)], [], version=2)
    seeds["all-types"] = gguf(all_types_kvs(), [("a", "F32", [8, 2], None), ("b", "Q4_0", [64], None)])
    seeds["align64"] = gguf([kv("general.alignment", U32, 64)],
                            [("x", "Q4_K", [256, 2], None), ("e", "F32", [0, 3], None), ("y", "F16", [32], None)],
                            align=64)
    seeds["align16-u8"] = gguf([kv("general.alignment", U8, 16)], [("x", "F32", [4], None), ("y", "I8", [16], None)],
                               align=16)
    tokens = [f"tok{i}" for i in range(100)]
    seeds["vocab"] = gguf([kv("tokenizer.ggml.model", STRING, "llama"),
                           kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
                           kv("tokenizer.ggml.scores", ARRAY, (F32, [float(-i) for i in range(100)])),
                           kv("tokenizer.ggml.token_type", ARRAY, (I32, [1] * 100))],
                          [("tok_embd.weight", "Q8_0", [32, 100], None)])
    seeds["types-4d"] = gguf([kv("general.architecture", STRING, "t")],
                             [("w4", "F16", [2, 2, 2, 2], None), ("q8", "Q8_0", [64, 2], None),
                              ("bf", "BF16", [8], None), ("i8", "I8", [5], None), ("q6", "Q6_K", [256], None)])
    seeds["deep8"] = gguf([deep(8), kv("bools", ARRAY, (BOOL, [True, False, True]))], [])
    seeds["split-keys"] = gguf([kv("split.no", U16, 0), kv("split.count", U16, 3), kv("split.tensors.count", I32, 6)],
                               [("t", "F32", [4], None)])

    good = seeds["all-types"]
    seeds["bad-truncated"] = good[: len(good) // 2]
    seeds["bad-magic"] = b"GGUX" + good[4:]
    seeds["bad-v1"] = good[:4] + struct.pack("<I", 1) + good[8:]
    seeds["bad-huge-nkv"] = good[:16] + struct.pack("<Q", 2**62) + good[24:]
    seeds["bad-overlap"] = gguf([], [("a", "F32", [16], 0), ("b", "F32", [16], 32)], data=bytes(128))
    seeds["bad-misaligned"] = gguf([], [("a", "F32", [8], 4)], data=bytes(64))
    seeds["bad-deep9"] = gguf([deep(9)], [])
    seeds["bad-dup-key"] = gguf([kv("k", U8, 1), kv("k", U8, 2)], [])
    seeds["bad-dup-tensor"] = gguf([], [("a", "F32", [8], None), ("a", "F32", [8], None)])
    seeds["bad-align3"] = gguf([kv("general.alignment", U32, 3)], [])
    seeds["bad-beyond-eof"] = gguf([], [("a", "F32", [64], None)], data=bytes(16))
    seeds["bad-type4"] = gguf([], [("a", "F32", [8], None)]).replace(
        s("a") + struct.pack("<IQI", 1, 8, 0), s("a") + struct.pack("<IQI", 1, 8, 4))
    for name, blob in seeds.items():
        assert len(blob) < 65536, name
        (OUT / f"{name}.gguf").write_bytes(blob)
    print(f"wrote {len(seeds)} seeds to {OUT} ({sum(map(len, seeds.values()))} bytes)")


if __name__ == "__main__":
    main()
