"""Our tokenizer.json loader against the Hugging Face `tokenizers` package.

For the llama2, llama3, qwen3 and gemma3 tokenizer.json files in
../shared/testdata/tokenizers, on a corpus built here (multilingual text,
emoji and ZWJ sequences, whitespace runs, code, long numbers, contractions in
both cases, special-token look-alikes, random printable strings, and the
llama.cpp vector strings), our ids must equal HF's:
  * parse_special off  == HF encode(add_special_tokens=False) with
    encode_special_tokens=True (special-token text is plain text);
  * parse_special on   == HF encode(add_special_tokens=False) with
    encode_special_tokens=False;
  * add_special on     == HF encode(add_special_tokens=True) (post-processor).
Decoding (streaming, one id at a time) must reproduce HF's decode of the same
ids, and give back the input wherever HF round-trips it.

Invalid UTF-8 is documented to be replaced by U+FFFD (maximal subparts, as
Python's errors="replace") before tokenizing: the ids of a byte string with
invalid sequences must equal HF's ids of bytes.decode("utf-8", "replace").
"""
import lzma
import random
import subprocess

import pytest
import tokenizers

from conftest import BIN_DIR, ROOT

TOKJSON = ROOT.parent / "shared" / "testdata" / "tokenizers"
VOCAB = ROOT.parent / "shared" / "testdata" / "vocab"
SEED = 20240611


def corpus():
    texts = [
        "", " ", "  ", "\t", "\n", "\n\n\n", "\r\n", "a\r\nb\r\n\r\nc", " \n ", "   leading", "trailing   ",
        "tabs\t\tand\tspaces  mixed \t \n end", "\u00a0non-breaking\u2009thin\u3000ideographic",
        # multilingual
        "Hello, world! How are you today?", "Führer Straße Ærøskøbing naïve café résumé",
        "e\u0301 o\u0308 n\u0303 (decomposed accents)", "Ǆ ǅ ǆ ﬁ ﬂ Ⅻ ① ㎞ ｶﾀｶﾅ (compatibility forms)",
        "日本語のテキストです。漢字とひらがな、カタカナ。", "中文测试：我想在apple工作1314151天～",
        "한국어 텍스트 입니다", "Русский текст: съешь же ещё этих мягких французских булок",
        "Ελληνικά γράμματα", "العربية: مرحبا بالعالم", "עברית שלום עולם", "हिन्दी में एक वाक्य",
        "ภาษาไทย สวัสดีครับ", "Tiếng Việt có dấu", "ქართული ენა", "Հայերեն", "বাংলা ভাষা",
        "កាន់តែពិសេសអាចខលចេញ", "Ɛʋɛ ŋɔŋlɔ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒜𝒷𝒸",
        # emoji
        "🦙 llama 🚀 rocket 😶‍🌫️ face in clouds", "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs",
        "🇫🇷🇩🇪🇯🇵 flags ✅ ❤️ ☺︎", "emoji at end 🤖", "🤖🤖🤖🤖",
        # code
        "def f(x):\n    return x**2  # square\n\nprint(f(3))\n",
        "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
        "for (let i = 0; i < n; ++i) { a[i] += b[i] >> 1; }",
        "<div class=\"x\">&amp; &lt;tag&gt;</div>", "SELECT * FROM t WHERE a <> 'b' AND c >= 10;",
        "    indented\n        more\n\t\ttabs", "path/to/file.txt C:\\Windows\\System32 ~/.bashrc",
        # numbers
        "3", "33", "333", "3333", "12345678901234567890", "3.14159265358979 2.718281828",
        "1,000,000.00 and 1 000 000 and 1'000'000", "+49 (0)30 1234567", "0x1F 0b1010 1e-9 -42",
        # contractions
        "I'm you're he's she'd we'll they've it's don't can't won't",
        "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE IT'S DON'T CAN'T", "'s 't 're 've 'm 'll 'd",
        "'S 'T 'RE 'VE 'M 'LL 'D", "y'all ma'am o'clock rock'n'roll", "' era", "''''''",
        # special-token look-alikes
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        "<s>[INST] hi [/INST]</s>", "<s> </s> <unk>", "<start_of_turn>user\nhi<end_of_turn>\n",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "<|endoftext|>", "text<|endoftext|>text", "<bos><eos><pad>", "<mask> [multimodal] <unused0>",
        "<|im_start|", "<|im_start|>>", "<<s>>", "< s >", "<tool_call>{\"a\": 1}</tool_call>",
        "<think>\nreasoning\n</think>\n\nanswer",
    ]
    texts += (VOCAB / "ggml-vocab-llama-spm.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    rng = random.Random(SEED)
    pool = (
        [chr(c) for c in range(0x20, 0x7F)] * 3
        + list(" \t\n\r") * 10
        + list("éüñßøåçΩЖжψ中文日本한국語العربيةहिन्दी🦙🚀👍🏽‍️'’“”…—€£¥")
    )
    for _ in range(160):
        texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 60))))
    return texts


CORPUS = corpus()


@pytest.fixture(scope="module", params=["llama2", "llama3", "qwen3", "gemma3"])
def tok(request, tmp_path_factory):
    name = request.param
    d = TOKJSON / name
    path = d / "tokenizer.json"
    if name == "gemma3":
        tmp = tmp_path_factory.mktemp("gemma3")
        (tmp / "tokenizer.json").write_bytes(lzma.decompress((d / "tokenizer.json.xz").read_bytes()))
        (tmp / "tokenizer_config.json").write_bytes((d / "tokenizer_config.json").read_bytes())
        path = tmp / "tokenizer.json"
    hf = tokenizers.Tokenizer.from_file(str(path))
    return name, path, hf


def run_ours(path, requests):
    """requests: list of (add_special, parse_special, bytes). Returns list of (ids, decoded bytes)."""
    lines = "".join(f"{int(a)}{int(p)} {b.hex()}\n" for a, p, b in requests)
    cp = subprocess.run([str(BIN_DIR / "rf_tok_tool"), "--json", str(path), "serve"], input=lines,
                        capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout.split("\n")
    assert out[-1] == "" and len(out) == len(requests) + 1, cp.stderr
    res = []
    for line in out[:-1]:
        ids, _, dec = line.partition("\t")
        assert ids != "ERR", dec
        res.append(([int(x) for x in ids.split()], bytes.fromhex(dec)))
    return res


def hf_ids(hf, text, add_special, parse_special):
    hf.encode_special_tokens = not parse_special
    return hf.encode(text, add_special_tokens=add_special).ids


def test_encode_decode_matches_hf(tok):
    name, path, hf = tok
    modes = [(False, False), (False, True), (True, False)]
    reqs = [(a, p, t.encode("utf-8")) for a, p in modes for t in CORPUS]
    ours = run_ours(path, reqs)
    mismatch, dec_mismatch, roundtrip_fail, roundtrips = [], [], [], 0
    for (a, p, raw), (ids, dec) in zip(reqs, ours):
        text = raw.decode("utf-8")
        ref = hf_ids(hf, text, a, p)
        if ids != ref:
            mismatch.append((a, p, text, ref, ids))
            continue
        hf_dec = hf.decode(ref, skip_special_tokens=False)
        if dec.decode("utf-8") != hf_dec:
            dec_mismatch.append((text, hf_dec, dec))
        if not a and not p and hf_dec == text:
            roundtrips += 1
            if dec != raw:
                roundtrip_fail.append((text, dec))
    print(f"{name}: {len(reqs) - len(mismatch)}/{len(reqs)} encodings equal, "
          f"{len(reqs) - len(mismatch) - len(dec_mismatch)} decodings equal, {roundtrips} round trips")
    msg = "\n".join(f"  add={a} parse={p} {t!r}\n    hf   {r}\n    ours {o}" for a, p, t, r, o in mismatch[:8])
    assert not mismatch, f"{name}: {len(mismatch)} encodings differ from HF:\n{msg}"
    msg = "\n".join(f"  {t!r}: hf {h!r} ours {o!r}" for t, h, o in dec_mismatch[:8])
    assert not dec_mismatch, f"{name}: {len(dec_mismatch)} decodings differ from HF:\n{msg}"
    assert not roundtrip_fail, f"{name}: decode(encode(x)) != x for {roundtrip_fail[:5]}"
    assert roundtrips >= len(CORPUS) // 2  # HF itself round-trips most of the corpus


INVALID = [
    b"abc\xffdef", b"\xc3", b"\xe2\x82", b"x\xe2\x82y", b"\xf0\x9f\xa6", b"\xed\xa0\x80 surrogate",
    b"\xc0\xaf overlong", b"\xf4\x90\x80\x80 too big", b"\x80\x80\x80 stray", b"ok \xe6\x97\xa5\xe6\x9c",
    b"\xfe\xff bom-ish", b"mixed \xe4\xb8\xad\xff\xe6\x96\x87",
]


def test_invalid_utf8_is_replaced(tok):
    name, path, hf = tok
    reqs = [(False, False, b) for b in INVALID]
    ours = run_ours(path, reqs)
    for (_, _, raw), (ids, dec) in zip(reqs, ours):
        text = raw.decode("utf-8", "replace")
        assert ids == hf_ids(hf, text, False, False), (name, raw)
        assert dec.decode("utf-8") == hf.decode(ids, skip_special_tokens=False), (name, raw)


# Pipeline components the four real tokenizers do not use, checked against HF
# on the same corpus: each variant swaps normalizer / pre_tokenizer / decoder
# of a real tokenizer.json.
def _split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern}, "behavior": behavior,
            "invert": invert}


_BL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
VARIANTS = {
    "split-removed-ws": ("llama3", None, {"type": "Sequence", "pretokenizers": [_split("\\s+", "Removed"), _BL]}, None),
    "split-merged-prev": ("llama3", None, {"type": "Sequence", "pretokenizers": [_split("\\p{P}", "MergedWithPrevious"), _BL]}, None),
    "split-merged-next": ("llama3", None, {"type": "Sequence", "pretokenizers": [_split("\\p{P}", "MergedWithNext"), _BL]}, None),
    "split-contiguous-invert": ("llama3", None, {"type": "Sequence", "pretokenizers": [_split("\\d", "Contiguous", True), _BL]}, None),
    "split-string": ("llama3", None, {"type": "Sequence", "pretokenizers": [_split(" ", "Isolated", regex=False), _BL]}, None),
    "digits-punct-ws-bytelevel": ("llama3", None, {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": True},
        {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}, None),
    "nfkc-strip-replace": ("qwen3", {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]}, "keep", None),
    "metaspace": ("llama2", {"type": "Sequence", "normalizers": []},
                  {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
                  {"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                   {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]}),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, tmp_path_factory):
    import json
    base, norm, pre, dec = VARIANTS[request.param]
    j = json.loads((TOKJSON / base / "tokenizer.json").read_text(encoding="utf-8"))
    if norm is not None:
        j["normalizer"] = norm
    if pre != "keep":
        j["pre_tokenizer"] = pre
    if dec is not None:
        j["decoder"] = dec
    tmp = tmp_path_factory.mktemp(request.param)
    path = tmp / "tokenizer.json"
    path.write_text(json.dumps(j), encoding="utf-8")
    return request.param, path, tokenizers.Tokenizer.from_file(str(path))


def test_pipeline_variants_match_hf(variant):
    name, path, hf = variant
    modes = [(False, False), (False, True)]
    reqs = [(a, p, t.encode("utf-8")) for a, p in modes for t in CORPUS]
    ours = run_ours(path, reqs)
    bad = []
    for (a, p, raw), (ids, dec) in zip(reqs, ours):
        text = raw.decode("utf-8")
        ref = hf_ids(hf, text, a, p)
        if ids != ref:
            bad.append((p, text, ref, ids))
        elif dec.decode("utf-8") != hf.decode(ref, skip_special_tokens=False):
            bad.append((p, text, "decode", hf.decode(ref, skip_special_tokens=False), dec))
    msg = "\n".join(f"  {b}" for b in bad[:6])
    assert not bad, f"{name}: {len(bad)}/{len(reqs)} differ from HF:\n{msg}"
