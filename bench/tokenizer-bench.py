#!/usr/bin/env python3
"""Tokenizer encode throughput: ours vs Hugging Face `tokenizers`, same run.

Builds a ~1 MB multilingual text (the llama.cpp vector strings plus generated
sentences in Latin, Cyrillic, Greek, CJK, Arabic, Hindi scripts, code, numbers
and emoji), one line per encode call, and measures:
  ours      rf_tok_tool ... bench FILE REPS (times only the encode loop, after load)
  hf-1      tokenizers.Tokenizer.encode per line, one thread
  hf-batch  tokenizers.Tokenizer.encode_batch over all lines (all cores)
for llama3 and qwen3 tokenizer.json, and for a GGUF SentencePiece vocabulary
(ours: ggml-vocab-llama-spm.gguf, LLaMA's 32k SPM). HF has no reader for GGUF,
so that line's HF figures are for testdata's llama2 tokenizer.json: a 32k SPM
vocabulary of the same kind but not the same ids (its token count differs),
i.e. a comparison of like work, not of identical output. Prints one result
line per tokenizer for docs/PERF.md.

usage: bench/tokenizer-bench.py [--bin-dir build] [--reps 3]
Use a Release build (cmake -DCMAKE_BUILD_TYPE=Release) for numbers worth keeping.
"""
import argparse
import datetime
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = ROOT.parent / "shared" / "testdata"

WORDS = {
    "latin": "the quick brown fox jumps over lazy dog while über café naïve résumé don't we'll".split(),
    "cyrillic": "съешь же ещё этих мягких французских булок да выпей чаю".split(),
    "greek": "ξεσκεπάζω την ψυχοφθόρα βδελυγμία γλώσσα".split(),
    "cjk": ["我想在", "工作", "日本語の", "テキスト", "한국어", "텍스트", "中文", "测试"],
    "arabic": "مرحبا بالعالم هذه جملة للاختبار".split(),
    "hindi": "यह एक परीक्षण वाक्य है नमस्ते दुनिया".split(),
    "code": ["def", "f(x):", "return", "x**2", "{", "}", "for", "(int", "i", "=", "0;", "i++)", "//"],
    "misc": ["1234567", "3.14159", "🦙", "🚀", "👍🏽", "👨‍👩‍👧", "\t", "...", "—", "«»"],
}


def build_text(target=1_000_000, seed=1234):
    rng = random.Random(seed)
    inp = (TESTDATA / "vocab" / "ggml-vocab-llama-spm.gguf.inp").read_text(encoding="utf-8")
    lines = [s.replace("\n", " ") for s in inp.split("\n__ggml_vocab_test__\n") if s.strip()]
    size = sum(len(l.encode()) + 1 for l in lines)
    keys = list(WORDS)
    while size < target:
        k = rng.choice(keys)
        n = rng.randint(5, 40)
        line = " ".join(rng.choice(WORDS[k if rng.random() < 0.8 else rng.choice(keys)]) for _ in range(n))
        lines.append(line)
        size += len(line.encode()) + 1
    return "\n".join(lines) + "\n"


def cpu_name():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor()


def ours(bin_dir, kind, path, text_file, reps):
    cp = subprocess.run([str(bin_dir / "rf_tok_tool"), kind, str(path), "bench", str(text_file), str(reps)],
                        capture_output=True, text=True, check=True)
    f = cp.stdout.split()
    return float(f[f.index("MB/s") + 1]), int(f[f.index("tokens") + 1])


def hf(path, lines, nbytes, reps):
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(str(path))
    tok.encode_special_tokens = True
    t0 = time.perf_counter()
    for _ in range(reps):
        n = sum(len(tok.encode(l, add_special_tokens=False).ids) for l in lines)
    one = nbytes * reps / (time.perf_counter() - t0) / 1e6
    t0 = time.perf_counter()
    for _ in range(reps):
        tok.encode_batch(lines, add_special_tokens=False)
    batch = nbytes * reps / (time.perf_counter() - t0) / 1e6
    return one, batch, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.environ.get("RF_BIN_DIR", str(ROOT / "build")))
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    bin_dir = Path(a.bin_dir)
    text = build_text()
    tmp = Path(tempfile.mkdtemp())
    text_file = tmp / "bench.txt"
    text_file.write_text(text, encoding="utf-8")
    lines = text.splitlines(keepends=True)
    nbytes = len(text.encode())
    cases = [
        ("llama3 tokenizer.json", "--json", TESTDATA / "tokenizers/llama3/tokenizer.json",
         TESTDATA / "tokenizers/llama3/tokenizer.json"),
        ("qwen3 tokenizer.json", "--json", TESTDATA / "tokenizers/qwen3/tokenizer.json",
         TESTDATA / "tokenizers/qwen3/tokenizer.json"),
        ("llama-spm GGUF (HF: llama2 tokenizer.json, another 32k SPM vocab)", "--gguf", TESTDATA / "vocab/ggml-vocab-llama-spm.gguf",
         TESTDATA / "tokenizers/llama2/tokenizer.json"),
    ]
    date = datetime.date.today().isoformat()
    print(f"# {date}, {cpu_name()}, text {nbytes / 1e6:.2f} MB in {len(lines)} lines, reps {a.reps}")
    print(f"# command: {' '.join([sys.argv[0]] + sys.argv[1:])} (bin dir {bin_dir})")
    for name, kind, path, hf_path in cases:
        o, ntok = ours(bin_dir, kind, path, text_file, a.reps)
        h1, hb, hn = hf(hf_path, lines, nbytes, a.reps)
        print(f"{date} | {name} | ours {o:.2f} MB/s ({ntok} tokens) | HF encode 1-thread {h1:.2f} MB/s "
              f"({hn} tokens) | HF encode_batch {hb:.2f} MB/s | ours/HF-1 {o / h1:.2f}x | ours/HF-batch {o / hb:.2f}x")


if __name__ == "__main__":
    main()
