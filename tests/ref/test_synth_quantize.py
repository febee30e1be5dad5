"""`rocmforge synth` and `rocmforge quantize` produce files that the gguf
package reads with the expected tensors and that llama.cpp (the pinned
llama-cpp-python build) loads and runs.

Requantizing a real model to Q8_0 must keep llama.cpp's logits close to the
original's (Q8_0 of Q4_1 values is nearly lossless), which checks that our
quantizer writes what llama.cpp's kernels read."""
import json
import subprocess

import gguf
import numpy as np
import pytest

from conftest import BIN_DIR, rocmforge

import llama_cpp  # tests/requirements.txt pins it: a missing install is a failure, not a skip

SHAPES = {  # name: (arch, layers written, expected vocab)
    "smollm2-135m": ("llama", 2, 49152),
    "llama-3.2-1b": ("llama", 1, 128256),
    "llama-3.1-8b": ("llama", 1, 128256),
    "qwen2.5-7b": ("qwen2", 1, 152064),
    "qwen3-0.6b": ("qwen3", 2, 151936),
    "mixtral-8x7b-mini": ("llama", 2, 32000),
    "gemma3-270m": ("gemma3", 2, 262144),
}


def llama_logits(path, tokens):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=2, n_batch=64, verbose=False,
                          logits_all=True)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    n_vocab = llm.n_vocab()
    del llm
    return logits, n_vocab


@pytest.mark.parametrize("shape", list(SHAPES))
def test_synth_shapes_load_in_gguf_and_llamacpp(shape, tmp_path):
    arch, layers, vocab = SHAPES[shape]
    # K mixes on the small-vocabulary shapes; Q4_0 (fast to quantize) where the
    # embedding alone holds 100M+ weights
    qtype = "Q4_K_M" if shape in ("smollm2-135m", "mixtral-8x7b-mini") else "Q4_0"
    out = tmp_path / f"{shape}.gguf"
    rocmforge("synth", "--shape", shape, "--type", qtype, "--layers", layers, "-o", out)
    r = gguf.GGUFReader(out)
    assert r.fields["general.architecture"].contents() == arch
    assert r.fields[f"{arch}.block_count"].contents() == layers
    assert len(r.fields["tokenizer.ggml.tokens"].data) == vocab
    names = {t.name for t in r.tensors}
    assert "token_embd.weight" in names and "blk.0.attn_q.weight" in names
    # every weight dequantizes to finite values of the intended scale
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        assert np.all(np.isfinite(w)), t.name
    rng = np.random.default_rng()
    tokens = [1] + rng.integers(3, vocab, size=7).tolist()
    logits, n_vocab = llama_logits(out, tokens)
    assert n_vocab == vocab
    assert logits.shape == (len(tokens), vocab)
    assert np.all(np.isfinite(logits)) and logits.std() > 0


def test_synth_row_pool(tmp_path):
    """--row-pool N (benchmark models): each matrix repeats at most N distinct
    rows, in a seeded order, of the same scale as fully drawn rows; the file
    has the same tensors and sizes, and llama.cpp runs it."""
    rng = np.random.default_rng()
    seed, pool = int(rng.integers(1, 2**31)), 8
    full, pooled = tmp_path / "full.gguf", tmp_path / "pooled.gguf"
    common = ["synth", "--shape", "smollm2-135m", "--type", "Q4_K_M", "--layers", 2, "--seed", seed]
    rocmforge(*common, "-o", full)
    rocmforge(*common, "--row-pool", pool, "-o", pooled)
    rf, rp = gguf.GGUFReader(full), gguf.GGUFReader(pooled)
    tf = {t.name: t for t in rf.tensors}
    assert sorted(tf) == sorted(t.name for t in rp.tensors)
    n_matrices = 0
    for t in rp.tensors:
        f = tf[t.name]
        assert (t.tensor_type, list(t.shape), t.n_bytes) == (f.tensor_type, list(f.shape), f.n_bytes), t.name
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        assert np.all(np.isfinite(w)), t.name
        if w.ndim != 2 or w.shape[0] <= pool or "norm" in t.name:
            continue
        n_matrices += 1
        distinct = np.unique(w, axis=0).shape[0]
        assert 1 < distinct <= pool, (t.name, distinct)
        # the pool's rows are drawn like any row: the same spread as the full file's
        wf = gguf.quants.dequantize(f.data, f.tensor_type)
        assert abs(w.std() / wf.std() - 1) < 0.25, (t.name, w.std(), wf.std())
    assert n_matrices >= 7
    rocmforge(*common, "--row-pool", pool, "-o", tmp_path / "again.gguf")
    assert (tmp_path / "again.gguf").read_bytes() == pooled.read_bytes()  # the order is seeded
    logits, _ = llama_logits(pooled, [1] + rng.integers(3, 49152, size=7).tolist())
    assert np.all(np.isfinite(logits)) and logits.std() > 0
    cp = rocmforge("synth", "--shape", "smollm2-135m", "--row-pool", "0", "-o", tmp_path / "x.gguf", check=False)
    assert cp.returncode != 0 and "--row-pool" in cp.stderr


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
                                   "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "F16", "BF16",
                                   "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M"])
def test_quantize_loads_in_llamacpp(qtype, tmp_path):
    """A small synth F32 model (row length 256-divisible) quantized by us runs in llama.cpp."""
    src = tmp_path / "src.gguf"
    cfg = tmp_path / "shape.json"
    cfg.write_text('{"arch": "llama", "n_vocab": 512, "n_embd": 256, "n_layer": 2, "n_head": 4,'
                   ' "n_head_kv": 2, "n_ff": 512}')
    rocmforge("synth", "--config", cfg, "--type", "F32", "-o", src)
    out = tmp_path / f"{qtype}.gguf"
    rocmforge("quantize", src, out, qtype)
    r = gguf.GGUFReader(out)
    types = {t.tensor_type.name for t in r.tensors if len(t.shape) > 1}
    base = {"Q3_K_M": "Q3_K", "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}.get(qtype, qtype)
    assert base in types, (qtype, types)
    tokens = [1, 300, 301, 302, 5, 6]
    ref, _ = llama_logits(src, tokens)
    got, _ = llama_logits(out, tokens)
    ours = our_logits(out, tokens, tmp_path)
    assert np.all(np.isfinite(got))
    # llama.cpp and our engine read the same quantized bytes the same way: their
    # logits agree up to llama.cpp's 8-bit activation quantization. A layout
    # mistake in our quantizer would make them unrelated (relative error ~1.4).
    same_file = np.linalg.norm(got - ours) / np.linalg.norm(ours)
    # and the quantized model still computes something close to the F32 one
    # (random weights amplify quantization error: a loose bound, below the ~1.4
    # of unrelated logits; Q2_K measured 0.69-0.80)
    vs_f32 = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    print(f"{qtype}: llama.cpp vs ours on the same file {same_file:.4f}, quantized vs F32 {vs_f32:.4f}")
    assert same_file < 0.1, (qtype, same_file)
    assert vs_f32 < (1.0 if qtype == "Q2_K" else 0.8), (qtype, vs_f32)


def our_logits(path, tokens, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"steps": [[{"seq": 0, "pos": i, "token": t, "logits": True}
                                            for i, t in enumerate(tokens)]]}))
    out = tmp_path / "ours.f32"
    cp = subprocess.run([str(BIN_DIR / "rf_forward_tool"), str(path), str(spec), str(out)],
                        capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr
    return np.fromfile(out, dtype=np.float32).reshape(len(tokens), -1)


def test_requantize_real_model_keeps_llamacpp_logits(real_models, tmp_path):
    out = tmp_path / "smollm2-q8_0.gguf"
    cp = rocmforge("quantize", real_models["smollm2"], out, "Q8_0")
    assert "already quantized" in cp.stderr
    tokens = [1, 504, 3458, 28, 6370, 30, 12, 314, 4561, 253]  # arbitrary ids below the vocab size
    ref, _ = llama_logits(real_models["smollm2"], tokens)
    got, _ = llama_logits(out, tokens)
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    top1 = np.mean(got.argmax(-1) == ref.argmax(-1))
    print(f"Q4_1 -> Q8_0: relative L2 {rel:.4f}, top-1 agreement {top1:.2f}")
    assert rel < 0.05
    # a changed top-1 must be a near-tie in the original model's logits
    for i in np.nonzero(got.argmax(-1) != ref.argmax(-1))[0]:
        a, b = ref[i].argmax(), got[i].argmax()
        assert ref[i][a] - ref[i][b] < 0.5, (i, ref[i][a] - ref[i][b])
