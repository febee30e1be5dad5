"""The reference (de)quantizers in src/quant against the gguf package.

Driven through tests/tools/rf_quant_tool. For every GGUF type we build fresh
random blocks (random bytes with the scale fields forced to finite values),
dequantize them with gguf.quants and with our tool, and require identical
float32 bits. gguf-py cannot decode Q8_1, Q8_K, F64 and Q1_0; those are
checked against small numpy decoders written here from the ggml layouts.
For every quantizer we check the error budget from our type table, that
gguf decodes our bytes exactly as we do, and, where gguf has a quantizer,
that ours writes the same bytes.

The random seed is printed (run with -s to see it) and can be fixed with
RF_TEST_SEED."""
import os
import subprocess
import sys
import zlib
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as QT

ROOT = Path(__file__).resolve().parents[2]
TOOL = Path(os.environ.get("RF_BIN_DIR", ROOT / "build")) / "rf_quant_tool"

# ggml's block_q8_1 is {f16 d, f16 s, int8 qs[32]} = 36 bytes; gguf-py's size
# table still lists 40 (f32 d and s). We follow ggml.
Q8_1_BYTES = 36

# Types whose data is plain integers: no dequantizer by design.
INT_TYPES = {QT.I8, QT.I16, QT.I32, QT.I64}

# Types gguf-py has a quantizer for, and which of ours must match it byte
# for byte.
GGUF_QUANTIZERS = {QT.F32, QT.F16, QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0,
                   QT.TQ1_0, QT.TQ2_0, QT.MXFP4}


def _seed() -> int:
    s = os.environ.get("RF_TEST_SEED")
    return int(s) if s else int(np.random.SeedSequence().entropy % (1 << 63))


SEED = _seed()
print(f"test_quant seed: RF_TEST_SEED={SEED}")


@pytest.fixture
def rng(request):
    # one independent stream per test, derived from the printed seed
    return np.random.default_rng([SEED, zlib.crc32(request.node.name.encode())])


def tool(*args, check=True):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built (cmake --build BUILD --target rf_quant_tool)")
    cp = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120)
    if check and cp.returncode != 0:
        raise AssertionError(f"rf_quant_tool {' '.join(map(str, args))} exited {cp.returncode}: {cp.stderr}")
    return cp


def table():
    """Our type table, from `rf_quant_tool info`: id -> dict."""
    out = {}
    for line in tool("info").stdout.splitlines():
        tid, name, blck, size, has_q, budget = line.split()
        out[int(tid)] = dict(name=name, blck=int(blck), size=int(size), has_q=has_q == "1",
                             budget=float(budget))
    return out


TABLE = None


def our_table():
    global TABLE
    if TABLE is None:
        TABLE = table()
    return TABLE


def our_dequant(qtype, blocks: np.ndarray, tmp_path) -> np.ndarray:
    src, dst = tmp_path / "in.bin", tmp_path / "out.f32"
    np.ascontiguousarray(blocks, dtype=np.uint8).tofile(src)
    tool("dequant", qtype.name, src, dst)
    return np.fromfile(dst, dtype=np.float32)


def our_quant(qtype, x: np.ndarray, tmp_path) -> np.ndarray:
    src, dst = tmp_path / "in.f32", tmp_path / "out.bin"
    np.ascontiguousarray(x, dtype=np.float32).tofile(src)
    tool("quant", qtype.name, src, dst)
    return np.fromfile(dst, dtype=np.uint8)


def block_size(qtype):
    t = our_table()[int(qtype)]
    return t["blck"], t["size"]


# ---- random valid blocks ----------------------------------------------------

def finite_f16(rng, n):
    """Random half bit patterns, every exponent but the inf/NaN one."""
    h = rng.integers(0, 1 << 16, n, dtype=np.uint32)
    bad = (h & 0x7C00) == 0x7C00
    h[bad] &= ~np.uint32(0x4000)  # exponent 31 -> 15
    return h.astype(np.uint16)


def finite_f32(rng, n, emin=-60, emax=60):
    v = rng.standard_normal(n) * np.exp2(rng.integers(emin, emax, n).astype(np.float64))
    return v.astype(np.float32)


# Offsets of the f16 scale fields in each block type; the rest of a block is
# left random (every bit pattern of codes, signs and sub-scales is valid).
F16_FIELDS = {
    QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0], QT.Q8_1: [0, 2],
    QT.Q2_K: [80, 82], QT.Q3_K: [108], QT.Q4_K: [0, 2], QT.Q5_K: [0, 2], QT.Q6_K: [208],
    QT.IQ2_XXS: [0], QT.IQ2_XS: [0], QT.IQ2_S: [0], QT.IQ3_XXS: [0], QT.IQ3_S: [0],
    QT.IQ1_S: [0], QT.IQ4_NL: [0], QT.IQ4_XS: [0], QT.TQ1_0: [52], QT.TQ2_0: [64], QT.Q1_0: [0],
}


def random_blocks(qtype, n_blocks, rng) -> np.ndarray:
    """(n_blocks, type_size) uint8 of valid blocks: random bytes, scales finite."""
    _, size = block_size(qtype)
    b = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    if qtype == QT.F16:
        b[:] = finite_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    elif qtype == QT.BF16:
        h = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint32)
        h[(h & 0x7F80) == 0x7F80] &= ~np.uint32(0x4000)  # exponent 255 -> 127
        b[:] = h.astype(np.uint16).view(np.uint8).reshape(n_blocks, 2)
    elif qtype == QT.F32:
        b[:] = finite_f32(rng, n_blocks, -140, 120).view(np.uint8).reshape(n_blocks, 4)
    elif qtype == QT.F64:
        # includes values that round to float subnormals, zero and +-inf
        v = rng.standard_normal(n_blocks) * np.exp2(rng.integers(-160, 135, n_blocks).astype(np.float64))
        b[:] = v.view(np.uint8).reshape(n_blocks, 8)
    elif qtype == QT.Q8_K:
        b[:, 0:4] = finite_f32(rng, n_blocks).view(np.uint8).reshape(n_blocks, 4)
    elif qtype == QT.IQ1_M:
        # the f16 d is the top nibbles of the four u16 scale words @48
        d = finite_f16(rng, n_blocks).astype(np.uint16)
        sc = b[:, 48:56].copy().view(np.uint16)
        for k in range(4):
            sc[:, k] = (sc[:, k] & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12)
        b[:, 48:56] = sc.view(np.uint8)
    for off in F16_FIELDS.get(qtype, []):
        b[:, off:off + 2] = finite_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    # MXFP4's e8m0 and NVFP4's ue4m3 scales: every byte decodes to a finite value
    return b


# ---- numpy decoders for the types gguf-py lacks ------------------------------

def ref_dequant_q8_1(b):
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    return (b[:, 4:].view(np.int8).astype(np.float32) * d).ravel()


def ref_dequant_q8_k(b):
    d = b[:, 0:4].copy().view(np.float32)
    return (d * b[:, 4:260].view(np.int8).astype(np.float32)).ravel()


def ref_dequant_q1_0(b):
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    bits = np.unpackbits(b[:, 2:18], axis=1, bitorder="little").astype(bool)
    return np.where(bits, d, -d).astype(np.float32).ravel()


def ref_dequant_f64(b):
    with np.errstate(over="ignore"):
        return b.copy().view(np.float64).astype(np.float32).ravel()


NUMPY_DEQUANT = {QT.Q8_1: ref_dequant_q8_1, QT.Q8_K: ref_dequant_q8_k, QT.Q1_0: ref_dequant_q1_0,
                 QT.F64: ref_dequant_f64}


def reference_dequant(qtype, blocks: np.ndarray) -> np.ndarray:
    if qtype in NUMPY_DEQUANT:
        return NUMPY_DEQUANT[qtype](blocks)
    with np.errstate(over="ignore"):
        return np.asarray(gguf.quants.dequantize(blocks.ravel(), qtype), dtype=np.float32).ravel()


def same_bits(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def describe_mismatch(a, b, blck) -> str:
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    bad = np.nonzero(a.view(np.uint32) != b.view(np.uint32))[0]
    i = bad[0]
    return f"{len(bad)} of {a.size} differ; first at {i} (block {i // blck}): ours {a[i]!r} ref {b[i]!r}"


# ---- the type table ----------------------------------------------------------

def test_type_table_matches_gguf():
    ours = our_table()
    assert set(ours) == {int(t) for t in QT}, "our valid ids differ from gguf's GGMLQuantizationType"
    for t in QT:
        o = ours[int(t)]
        assert o["name"] == t.name
        blck, size = GGML_QUANT_SIZES[t]
        assert o["blck"] == blck, t.name
        if t == QT.Q8_1:
            assert (size, o["size"]) == (40, Q8_1_BYTES)  # see Q8_1_BYTES
        else:
            assert o["size"] == size, t.name


def test_tool_rejects_bad_input(tmp_path):
    assert tool("dequant", "nosuchtype", "a", "b", check=False).returncode != 0
    assert tool("quant", "IQ2_XXS", "a", "b", check=False).returncode != 0  # no quantizer
    assert tool("dequant", "I8", "a", "b", check=False).returncode != 0  # no dequantizer
    assert tool("frobnicate", check=False).returncode != 0
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 19)  # not a whole Q4_0 block
    assert tool("dequant", "Q4_0", bad, tmp_path / "o", check=False).returncode != 0
    bad.write_bytes(b"\0" * (4 * 33))  # 33 floats: not a whole Q8_0 block
    assert tool("quant", "Q8_0", bad, tmp_path / "o", check=False).returncode != 0
    assert tool("dequant", "Q4_0", tmp_path / "missing", tmp_path / "o", check=False).returncode != 0


def test_generated_tables_are_current(tmp_path):
    """src/quant/iq-tables.c is what scripts/gen-iq-tables.py writes from
    the installed gguf package."""
    out = tmp_path / "iq-tables.c"
    subprocess.run([sys.executable, str(ROOT / "scripts/gen-iq-tables.py"), str(out)], check=True,
                   capture_output=True, timeout=60)
    assert out.read_text() == (ROOT / "src/quant/iq-tables.c").read_text()


# ---- dequantization, bit for bit ----------------------------------------------

DEQUANT_TYPES = [t for t in QT if t not in INT_TYPES]


@pytest.mark.parametrize("qtype", DEQUANT_TYPES, ids=lambda t: t.name)
def test_dequant_bit_exact(qtype, rng, tmp_path):
    blck, _ = block_size(qtype)
    n_blocks = max(64, 16384 // blck)
    blocks = random_blocks(qtype, n_blocks, rng)
    ours = our_dequant(qtype, blocks, tmp_path)
    ref = reference_dequant(qtype, blocks)
    assert same_bits(ours, ref), f"{describe_mismatch(ours, ref, blck)} (RF_TEST_SEED={SEED})"


def test_numpy_references_agree_with_gguf_where_both_exist(rng):
    """The hand-written numpy decoders use the same conventions as gguf's:
    checked on Q8_0 (whose layout Q8_1 extends) so a wrong convention there
    cannot hide."""
    b = random_blocks(QT.Q8_0, 64, rng)
    q81 = np.concatenate([b[:, :2], np.zeros((64, 2), np.uint8), b[:, 2:]], axis=1)
    assert same_bits(ref_dequant_q8_1(q81), reference_dequant(QT.Q8_0, b))


# ---- quantization ---------------------------------------------------------------

def make_rows(rng):
    """Rows of 2048 values: 8 of N(0,1) (what budgets are defined on), one
    scaled up, one scaled down, one heavy-tailed (Student t, 3 dof), one
    N(0,1) row whose first 256 values are zero, and one of ternary values
    with a little noise (what TQ1_0/TQ2_0 are for; it also makes every
    base-3 byte pattern of TQ1_0 occur)."""
    n = 2048
    x = rng.standard_normal((13, n)).astype(np.float32)
    x[8] *= 50.0
    x[9] *= 0.1
    x[10] = rng.standard_t(3, n).astype(np.float32)
    x[11, :256] = 0.0
    x[12] = (rng.integers(-1, 2, n) + 0.02 * rng.standard_normal(n)).astype(np.float32)
    return x


def rel_rmse(y, x):
    return float(np.sqrt(np.mean((y.astype(np.float64) - x) ** 2)) / np.sqrt(np.mean(x.astype(np.float64) ** 2)))


# The types with a reference quantizer; the rest are dequantize-only.
QUANT_TYPES = [QT.F32, QT.F16, QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0, QT.Q8_1, QT.Q2_K,
               QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K, QT.Q8_K, QT.IQ4_NL, QT.IQ4_XS, QT.TQ1_0, QT.TQ2_0,
               QT.MXFP4]


def test_quantizer_list():
    """Our table offers exactly QUANT_TYPES, so the parametrized test below
    covers every quantizer."""
    assert {t for t in QT if our_table()[int(t)]["has_q"]} == set(QUANT_TYPES)


@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=lambda t: t.name)
def test_quantize(qtype, rng, tmp_path):
    info = our_table()[int(qtype)]
    x = make_rows(rng)
    blck, size = info["blck"], info["size"]
    q = our_quant(qtype, x, tmp_path)
    assert q.size == x.size // blck * size
    y = our_dequant(qtype, q, tmp_path).reshape(x.shape)
    assert np.all(np.isfinite(y))

    # error budget: on the N(0,1) rows, and (relative) on the rescaled ones
    budget = info["budget"]
    err = rel_rmse(y[:8], x[:8])
    print(f"{qtype.name}: rmse/rms {err:.5f} (budget {budget}), x50 {rel_rmse(y[8], x[8]):.5f}, "
          f"x0.1 {rel_rmse(y[9], x[9]):.5f}, t3 {rel_rmse(y[10], x[10]):.5f} (RF_TEST_SEED={SEED})")
    if qtype == QT.F32:
        assert same_bits(y, x)
    else:
        assert 0 < err <= budget
        assert rel_rmse(y[8], x[8]) <= 1.25 * budget
        assert rel_rmse(y[9], x[9]) <= 1.25 * budget
        # heavy tails cost block-scaled formats accuracy (one outlier sets a
        # block's scale): a sanity bound, not a budget. Measured worst case
        # over 30 rows: 2.7x the budget (Q8_K, absmax over 256 values).
        assert rel_rmse(y[10], x[10]) <= 4.0 * budget
    # an all-zero block decodes to zeros
    assert np.all(y[11, :256] == 0.0)
    if qtype in (QT.TQ1_0, QT.TQ2_0):  # on ternary data the ternary types are accurate
        assert rel_rmse(y[12], x[12]) < 0.15

    # gguf decodes our bytes exactly as we do
    blocks = q.reshape(-1, size)
    assert same_bits(y.ravel(), reference_dequant(qtype, blocks)), qtype.name

    if qtype in GGUF_QUANTIZERS:
        theirs = np.asarray(gguf.quants.quantize(x, qtype)).view(np.uint8).ravel()
        if not np.array_equal(theirs, q):
            bad = np.nonzero(theirs != q)[0]
            pytest.fail(f"{qtype.name}: {len(bad)} bytes differ from gguf's quantizer, first in block "
                        f"{bad[0] // size}")


def test_q8_1_sum_field(rng, tmp_path):
    """s = d * sum(q), stored as a half (d the unrounded fp32 scale)."""
    x = rng.standard_normal(4096).astype(np.float32)
    b = our_quant(QT.Q8_1, x, tmp_path).reshape(-1, Q8_1_BYTES)
    q = b[:, 4:].view(np.int8).astype(np.float32)
    amax = np.abs(x.reshape(-1, 32)).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    s_expect = (d * q.sum(axis=1)).astype(np.float16)
    assert np.array_equal(b[:, 2:4].copy().view(np.float16).ravel(), s_expect)
    # and the codes are gguf's Q8_0 codes
    assert np.array_equal(b[:, 4:], gguf.quants.quantize(x, QT.Q8_0).reshape(-1, 34)[:, 2:])


def test_q8_k_fields(rng, tmp_path):
    """Q8_K: f32 d = absmax/127 and bsums = sums of 16 codes."""
    x = rng.standard_normal(4096).astype(np.float32)
    b = our_quant(QT.Q8_K, x, tmp_path).reshape(-1, 292)
    d = b[:, 0:4].copy().view(np.float32).ravel()
    amax = np.abs(x.reshape(-1, 256)).max(axis=1)
    assert np.array_equal(d, (amax / np.float32(127)).astype(np.float32))
    q = b[:, 4:260].view(np.int8).astype(np.int32)
    assert q.min() >= -127 and q.max() <= 127
    bsums = b[:, 260:292].copy().view(np.int16).astype(np.int32)
    assert np.array_equal(bsums, q.reshape(-1, 16, 16).sum(axis=2))
