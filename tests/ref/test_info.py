"""`rocmforge info` against the gguf package's reader on the real models:
metadata (every key and value), tensor names, shapes, types, offsets, sizes,
and the summary figures (parameter count, bytes per type)."""
import json
import math
import os
import subprocess

import gguf
import numpy as np
import pytest

from conftest import BIN_DIR, rocmforge


def field_value(f):
    """A GGUFReader field as plain Python (lists for arrays)."""
    t = f.types[0]
    if t == gguf.GGUFValueType.ARRAY:
        sub = f.types[1] if len(f.types) > 1 else None
        if sub == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]
        if sub == gguf.GGUFValueType.ARRAY:
            return None  # nested: compared by our own round-trip tests
        return [f.parts[i].tolist()[0] for i in f.data]
    if t == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8", errors="replace")
    return f.parts[f.data[0]].tolist()[0]


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-30)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_info_json_matches_gguf_reader(real_models, name):
    path = real_models[name]
    ours = json.loads(rocmforge("info", path, "--json").stdout)
    ref = gguf.GGUFReader(path)
    # metadata: the same keys in the same order, the same values
    ref_kv = {k: f for k, f in ref.fields.items() if not k.startswith("GGUF.")}
    assert list(ours["metadata"].keys()) == list(ref_kv.keys())
    for k, f in ref_kv.items():
        want = field_value(f)
        if want is None:
            continue
        assert same(ours["metadata"][k], want), k
    # tensors
    assert len(ours["tensors"]) == len(ref.tensors)
    data_start = min(int(t.data_offset) for t in ref.tensors)
    params = 0
    by_type = {}
    for t_ours, t_ref in zip(ours["tensors"], ref.tensors):
        assert t_ours["name"] == t_ref.name
        assert t_ours["type"] == t_ref.tensor_type.name
        assert t_ours["shape"] == [int(x) for x in t_ref.shape]
        assert t_ours["nbytes"] == int(t_ref.n_bytes)
        assert t_ours["offset"] == int(t_ref.data_offset) - data_start
        params += int(t_ref.n_elements)
        by_type[t_ref.tensor_type.name] = by_type.get(t_ref.tensor_type.name, 0) + int(t_ref.n_bytes)
    assert ours["parameters"] == params
    assert ours["bytes_by_type"] == by_type
    assert ours["size"] == os.path.getsize(path)
    arch = field_value(ref.fields["general.architecture"])
    assert ours["architecture"] == arch
    assert ours["context_length"] == field_value(ref.fields[f"{arch}.context_length"])
    assert ours["vocab_size"] == len(ref.fields["tokenizer.ggml.tokens"].data)
    assert ours["chat_template"] == ("tokenizer.chat_template" in ref.fields)


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_info_summary_text(real_models, name):
    out = rocmforge("info", real_models[name]).stdout
    ref = gguf.GGUFReader(real_models[name])
    arch = field_value(ref.fields["general.architecture"])
    assert f"architecture:  {arch}" in out
    assert f"tensors:       {len(ref.tensors)}" in out
    params = sum(int(t.n_elements) for t in ref.tensors)
    assert f"({params})" in out
    meta = rocmforge("info", real_models[name], "--metadata", "--tensors").stdout
    for t in ref.tensors[:5]:
        assert t.name in meta


def test_dump_tensor_matches_gguf_dequantize(real_models, tmp_path):
    """--dump-tensor writes what gguf.quants.dequantize computes, bit for bit,
    for a tensor of each type in both models."""
    rng = np.random.default_rng()
    for name, path in real_models.items():
        ref = gguf.GGUFReader(path)
        by_type = {}
        for t in ref.tensors:
            by_type.setdefault(t.tensor_type, []).append(t)
        for ttype, ts in by_type.items():
            t = ts[rng.integers(len(ts))]
            out = tmp_path / f"{name}-{t.name}.f32"
            rocmforge("info", path, "--dump-tensor", t.name, "--out", out)
            got = np.fromfile(out, dtype="<f4")
            want = gguf.quants.dequantize(t.data, ttype).astype(np.float32).reshape(-1)
            assert got.shape == want.shape, t.name
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"{name} {t.name} {ttype.name}"


def test_types_table_lists_every_type():
    out = rocmforge("info", "--types").stdout
    for t in gguf.GGMLQuantizationType:
        assert f" {t.name} " in out, t.name
