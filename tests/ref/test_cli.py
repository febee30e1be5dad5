"""The CLI contract: --help everywhere, exit codes (0 ok, 1 usage, 2 bad
input), clear messages, and no crash on hostile files."""
import os
import random

import pytest

from conftest import rocmforge

COMMANDS = ["info", "quantize", "synth", "generate", "chat", "bench", "tokenize", "detokenize", "template"]


def assert_clean_exit(cp, code):
    # a negative return code is a signal (crash); sanitizers exit 1 with a report
    assert cp.returncode == code, f"exit {cp.returncode}, stderr:\n{cp.stderr}"
    assert "Sanitizer" not in cp.stderr and "runtime error" not in cp.stderr, cp.stderr


def test_top_level_help_and_version():
    cp = rocmforge("--help")
    for c in COMMANDS:
        assert c in cp.stdout
    assert "rocmforge" in rocmforge("--version").stdout
    assert_clean_exit(rocmforge(check=False), 1)
    cp = rocmforge("no-such-command", check=False)
    assert_clean_exit(cp, 1)
    assert "unknown command" in cp.stderr


@pytest.mark.parametrize("cmd", COMMANDS)
def test_command_help(cmd):
    cp = rocmforge(cmd, "--help")
    assert "usage: rocmforge " + cmd in cp.stdout


@pytest.mark.parametrize("args", [
    ["info"], ["info", "a", "b"], ["info", "--bogus", "x.gguf"],
    ["quantize", "a.gguf"], ["quantize", "a.gguf", "b.gguf", "Q9_9"], ["quantize", "a", "b", "IQ2_XXS"],
    ["synth", "--shape", "nope", "-o", "x.gguf"], ["synth", "--shape", "smollm2-135m"],
    ["synth", "--shape", "smollm2-135m", "-o", "x.gguf", "--threads", "zero"],
])
def test_usage_errors_exit_1(args, tmp_path):
    cp = rocmforge(*args, check=False, cwd=tmp_path)
    assert_clean_exit(cp, 1)
    assert "error:" in cp.stderr


def test_missing_file_exit_2(tmp_path):
    cp = rocmforge("info", tmp_path / "absent.gguf", check=False)
    assert_clean_exit(cp, 2)
    assert "absent.gguf" in cp.stderr


def test_hostile_files_never_crash(real_models, tmp_path):
    """Truncations and byte flips of a real model header, and random bytes:
    each is rejected with exit 2 (or, for a harmless flip, read fine)."""
    head = real_models["smollm2"].read_bytes()[: 1 << 20]
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    cases = [b"", b"GGUF", os.urandom(4096), b"GGUF" + os.urandom(4096)]
    cases += [head[: rng.randrange(len(head))] for _ in range(10)]
    for _ in range(20):
        b = bytearray(head[: 300_000])
        for _ in range(rng.randrange(1, 8)):
            b[rng.randrange(64, len(b))] = rng.randrange(256)
        cases.append(bytes(b))
    for i, data in enumerate(cases):
        p = tmp_path / f"bad{i}.gguf"
        p.write_bytes(data)
        cp = rocmforge("info", p, "--metadata", "--tensors", check=False)
        assert cp.returncode in (0, 2), f"seed {seed} case {i}: exit {cp.returncode}\n{cp.stderr[-2000:]}"
        assert "Sanitizer" not in cp.stderr and "runtime error" not in cp.stderr, cp.stderr
        if cp.returncode == 2:
            assert "error:" in cp.stderr


def test_dump_tensor_errors(real_models, tmp_path):
    cp = rocmforge("info", real_models["smollm2"], "--dump-tensor", "no.such", "--out", tmp_path / "x", check=False)
    assert_clean_exit(cp, 2)
    assert "no.such" in cp.stderr
    cp = rocmforge("info", real_models["smollm2"], "--dump-tensor", "token_embd.weight", check=False)
    assert_clean_exit(cp, 1)


def test_bench_batched(real_models, tmp_path):
    """bench -npl: for each N, N prompts of npp tokens packed into batches,
    then ntg steps decoding all N at once. Checked through the trace: the
    token count of each forward pass (the first matmul of every pass) must be
    exactly that schedule, for the warm-up and each repetition; and one
    aggregate pp and tg row per N is printed."""
    import json
    path = tmp_path / "trace.json"
    npp, ntg, npl = 9, 4, [1, 3]
    cp = rocmforge("bench", "-m", real_models["smollm2"], "-npl", ",".join(map(str, npl)), "-npp", str(npp),
                   "-ntg", str(ntg), "-r", "1", "--trace", path)
    rows = [l for l in cp.stdout.splitlines() if l.startswith("| ") and " x" in l]
    assert [r.split("|")[6].strip() for r in rows] == [f"{k}{n} x{s}" for s in npl for k, n in (("pp", npp), ("tg", ntg))]
    for r in rows:
        assert float(r.split("|")[7].split()[0]) > 0
    doc = json.loads(path.read_text())
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    first = {}
    for e in events:
        if e.get("ph") == "X" and e["name"] == "matmul":
            first.setdefault(e["args"]["pass"], e["args"]["n_tok"])
    got = [first[p] for p in sorted(first)]
    want = []
    for s in npl:
        for _rep in range(2):  # warm-up + 1 repetition
            want += [s * npp] + [s] * ntg  # s * npp <= 512: one prompt batch
    assert got == want
    for bad in ["0", "1,,2", "x", "1,2000"]:
        assert_clean_exit(rocmforge("bench", "-m", real_models["smollm2"], "-npl", bad, check=False), 1)


@pytest.mark.parametrize("cmd", ["bench", "generate"])
def test_trace_file(real_models, tmp_path, cmd):
    """--trace writes Chrome trace JSON: complete events with a duration, and
    per forward pass one matmul per 2-D weight whose bytes are that
    tensor's size as the gguf package reads it (the output projection is the
    tied token embedding)."""
    import json
    from gguf import GGUFReader

    path = tmp_path / "trace.json"
    if cmd == "bench":
        rocmforge("bench", "-m", real_models["smollm2"], "-p", "19", "-n", "3", "-r", "1", "--trace", path)
    else:
        rocmforge("generate", "-m", real_models["smollm2"], "-p", "Once upon a time", "-n", "4", "--temp", "0",
                  "--trace", path)
    doc = json.loads(path.read_text())
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    ops = [e for e in events if e.get("ph") == "X"]
    assert ops, "no op events"
    for e in ops:
        assert e["dur"] >= 0 and e["ts"] >= 0 and e["name"] and "args" in e
    r = GGUFReader(str(real_models["smollm2"]))
    mats = sorted(int(t.n_bytes) for t in r.tensors if len([d for d in t.shape if d > 1]) == 2)
    passes = {}
    for e in ops:
        if e["name"] == "matmul":
            passes.setdefault(e["args"]["pass"], []).append(int(e["args"]["bytes"]))
    assert len(passes) >= 4
    for p, got in passes.items():
        assert sorted(got) == mats, f"pass {p}: matmul bytes differ from the model's 2-D tensors"
