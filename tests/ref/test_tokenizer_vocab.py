"""Tokenizer ids against llama.cpp's reference vectors (../shared/testdata/vocab).

For every ggml-vocab-NAME.gguf.inp/.out pair the ids our tokenizer gives for
each string must equal the .out line exactly. The .out files were produced
by the original Hugging Face tokenizers with add_special_tokens=False, which
is what llama.cpp's tests/test-tokenizer-0.cpp checks too (add_special=false,
parse_special=false); so we tokenize with neither --add-special nor
--parse-special. All strings of a vocab go through one process (--batch).

Where the .gguf is too large to ship, the vocabulary comes from a
tokenizer.json of the same tokenizer (testdata/README.md): llama-bpe is
Llama 3, qwen2 the Qwen 2/3 vocabulary; deepseek-r1-qwen is the Qwen 2.5
vocabulary (same regex, same ids for ordinary text) with other special
tokens, which these vectors do not use. A vector set with no vocabulary at
all is listed in NO_VOCAB and checked to really have none: adding its vocab
file makes that check fail until it is tested here.
"""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import BIN_DIR, ROOT

TESTDATA = ROOT.parent / "shared" / "testdata"
VOCAB = TESTDATA / "vocab"
TOKJSON = TESTDATA / "tokenizers"
SEP = "\n__ggml_vocab_test__\n"

# vector sets whose vocabulary is a tokenizer.json
JSON_VOCAB = {
    "llama-bpe": TOKJSON / "llama3" / "tokenizer.json",
    "qwen2": TOKJSON / "qwen3" / "tokenizer.json",
    "deepseek-r1-qwen": TOKJSON / "qwen3" / "tokenizer.json",
}
# vector sets shipped without any vocabulary (the .gguf was too large)
NO_VOCAB = {"command-r", "chameleon", "roberta-bpe"}


def vector_sets():
    return sorted(p.name[len("ggml-vocab-"):-len(".gguf.inp")] for p in VOCAB.glob("ggml-vocab-*.gguf.inp"))


def vocab_names():
    return [n for n in vector_sets() if n not in NO_VOCAB]


def read_inp(name):
    # the same split as test-tokenizer-0.cpp: the file ends with a separator
    raw = (VOCAB / f"ggml-vocab-{name}.gguf.inp").read_bytes().decode("utf-8")
    parts, pos = [], 0
    while pos < len(raw):
        nxt = raw.find(SEP, pos)
        if nxt < 0:
            parts.append(raw[pos:])
            break
        parts.append(raw[pos:nxt])
        pos = nxt + len(SEP)
    return parts


def read_out(name):
    lines = (VOCAB / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [[int(x) for x in l.split()] for l in lines]


def source_args(name):
    gguf = VOCAB / f"ggml-vocab-{name}.gguf"
    if gguf.exists():
        return ["-m", str(gguf)]
    return ["--tokenizer", str(JSON_VOCAB[name])]


def test_every_vector_set_is_covered():
    """Each .inp has a vocabulary we test, or is a known vocab-less set."""
    sets = vector_sets()
    assert len(sets) >= 14
    for n in sets:
        has = (VOCAB / f"ggml-vocab-{n}.gguf").exists() or n in JSON_VOCAB
        if n in NO_VOCAB:
            assert not has, f"{n} now has a vocabulary: remove it from NO_VOCAB so it is tested"
        else:
            assert has, f"{n}: no .gguf and no tokenizer.json: cannot be tested"


@pytest.mark.parametrize("name", vocab_names())
def test_vocab_vectors(name):
    strings = read_inp(name)
    expected = read_out(name)
    assert len(strings) == len(expected), f"{name}: .inp has {len(strings)} strings, .out {len(expected)}"
    cp = subprocess.run([str(BIN_DIR / "rocmforge"), "tokenize", *source_args(name), "--batch",
                         str(VOCAB / f"ggml-vocab-{name}.gguf.inp")],
                        capture_output=True, timeout=300)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    got_lines = cp.stdout.decode().split("\n")
    assert got_lines[-1] == ""
    got = [[int(x) for x in l.split()] for l in got_lines[:-1]]
    assert len(got) == len(expected)
    failures = [(s, e, g) for s, e, g in zip(strings, expected, got) if e != g]
    report = "\n".join(f"  {s!r}\n    expected {e}\n    got      {g}" for s, e, g in failures[:10])
    assert not failures, f"{name}: {len(failures)}/{len(expected)} strings differ:\n{report}"


def test_vocabs_without_vectors_load():
    """baichuan and gpt-neox ship a .gguf but no vectors: they must still load and round-trip."""
    for name in ("baichuan", "gpt-neox"):
        gguf = VOCAB / f"ggml-vocab-{name}.gguf"
        assert gguf.exists()
        cp = subprocess.run([str(BIN_DIR / "rocmforge"), "tokenize", "-m", str(gguf), "Hello world 123"],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        ids = cp.stdout.split()
        assert ids
        cp = subprocess.run([str(BIN_DIR / "rocmforge"), "detokenize", "-m", str(gguf), *ids],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout == "Hello world 123"


def _cli(*args, input=None):
    return subprocess.run([str(BIN_DIR / "rocmforge"), *map(str, args)], capture_output=True, timeout=120,
                          input=input)


def test_cli_tokenize_detokenize():
    spm = VOCAB / "ggml-vocab-llama-spm.gguf"
    cp = _cli("tokenize", "-m", spm, "--ids", "Hello world")
    assert cp.returncode == 0 and cp.stdout == b"15043 3186\n"
    cp = _cli("tokenize", "-m", spm, "--add-special", "Hello world")
    assert cp.stdout == b"1 15043 3186\n"
    # '-' reads stdin; special-token text is plain text unless --parse-special
    cp = _cli("tokenize", "-m", spm, "-", input="<s>\n".encode())
    assert cp.returncode == 0 and cp.stdout == b"529 29879 29958 13\n"  # '<', 's', '>', '\n'

    cp = _cli("tokenize", "-m", spm, "--parse-special", "-", input=b"<s>x")
    assert cp.stdout.split()[0] == b"1"
    cp = _cli("tokenize", "-m", spm, "--pieces", "a\nb")
    lines = cp.stdout.decode().splitlines()
    assert lines == ["263\t a", "13\t\\n", "29890\tb"], lines
    # detokenize: ids as arguments or one string; exact text, no newline
    assert _cli("detokenize", "-m", spm, "15043", "3186").stdout == b"Hello world"
    assert _cli("detokenize", "-m", spm, "15043 3186 13").stdout == b"Hello world\n"
    # the llama emoji as four byte tokens; a cut-off character becomes U+FFFD
    assert _cli("detokenize", "-m", spm, "29871 243 162 169 156").stdout == "🦙".encode()
    assert _cli("detokenize", "-m", spm, "29871 243 162").stdout == "\ufffd".encode()
    assert _cli("detokenize", "-m", spm, "--skip-special", "1 15043").stdout == b"Hello"
    assert _cli("detokenize", "-m", spm, "1 15043").stdout == b"<s> Hello"


def test_cli_errors():
    spm = VOCAB / "ggml-vocab-llama-spm.gguf"
    assert _cli("tokenize", "hi").returncode == 1  # no tokenizer given
    assert _cli("tokenize", "-m", spm).returncode == 1  # no text
    assert _cli("tokenize", "-m", spm, "--ids", "--pieces", "x").returncode == 1
    cp = _cli("tokenize", "-m", "/nonexistent.gguf", "x")
    assert cp.returncode == 2
    cp = _cli("detokenize", "-m", spm, "99999999")
    assert cp.returncode == 2 and b"outside the vocabulary" in cp.stderr
    assert _cli("detokenize", "-m", spm, "12x").returncode == 1
    cp = _cli("tokenize", "--tokenizer", VOCAB / "ggml-vocab-llama-spm.gguf.inp", "x")
    assert cp.returncode == 2
