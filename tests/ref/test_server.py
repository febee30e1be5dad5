"""Black-box tests of `rocmforge serve`: the real binary on a free port with
SmolLM2, driven over the wire by the official `openai` client and by raw
HTTP (http.client and sockets).

References independent of our code: the prompt token counts come from the
model's chat template rendered by jinja2 and tokenized by llama.cpp (the
llama-cpp-python package); embeddings are compared with llama.cpp's mean
pooled embeddings; JSON output is validated with `jsonschema`; /metrics
with Prometheus' `promtool`; the web page runs in headless Chromium.

The CPU backend is slow (a few tokens/s on 2 cores), so generations are
short and most tests share one server (module fixture). Tests that need
other flags (auth, a tiny KV pool, a small queue, SIGTERM) start their own.
Set RF_BIN_DIR to test another build (default build/).
"""
import base64
import concurrent.futures as cf
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import jsonschema
import openai
import pytest

from conftest import BIN_DIR, SMOLLM2

MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"
THREADS = os.environ.get("RF_TEST_THREADS", "2")


# ---- helpers ------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `rocmforge serve` process on a free port, its log in a temp file."""

    def __init__(self, *args, env=None):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="rf-serve-", suffix=".log", delete=False)
        cmd = [str(BIN_DIR / "rocmforge"), "serve", "-m", str(SMOLLM2), "--port", str(self.port), "-t", THREADS, *args]
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.text()}")
            try:
                st, _, _ = request(self, "GET", "/health", timeout=2)
                if st == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.proc.kill()
                raise AssertionError("server not healthy after 120 s:\n" + self.text())
            time.sleep(0.05)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def text(self):
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        return rc

    def check_clean(self):
        t = self.text()
        assert "Sanitizer" not in t and "runtime error" not in t, t[-4000:]


def request(srv, method, path, body=None, headers=None, timeout=300):
    """One HTTP request; returns (status, headers, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if body is not None and not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body).encode()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def post(srv, path, body, **kw):
    st, h, data = request(srv, "POST", path, body, **kw)
    return st, h, (json.loads(data) if data else None)


def sse(srv, path, body, headers=None):
    """A streaming request; returns (status, headers, [data payloads])."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=300)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request("POST", path, body=json.dumps(body).encode(), headers=h)
    r = c.getresponse()
    events = []
    if r.status == 200:
        raw = r.read().decode()
        assert raw.endswith("\n\n"), raw[-200:]
        for ev in raw.split("\n\n")[:-1]:
            assert ev.startswith("data: "), ev
            events.append(ev[6:])
    else:
        r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, events


def metrics(srv, headers=None):
    st, _, data = request(srv, "GET", "/metrics", headers=headers)
    assert st == 200
    out = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            name, val = line.rsplit(" ", 1)
            out[name] = float(val)
    return out


def client(srv, key="none"):
    return openai.OpenAI(base_url=srv.base + "/v1", api_key=key, max_retries=0, timeout=300)


_llama = None


def ref_tokenize(text, special):
    """llama.cpp's tokenizer for the same GGUF (independent reference)."""
    global _llama
    if _llama is None:
        from llama_cpp import Llama
        _llama = Llama(str(SMOLLM2), vocab_only=True, verbose=False)
    return _llama.tokenize(text.encode(), add_bos=False, special=special)


@pytest.fixture(scope="module", autouse=True)
def _close_reference():
    yield
    global _llama
    if _llama is not None:
        _llama.close()
        _llama = None


def ref_chat_prompt(messages):
    """The prompt as Hugging Face renders it: jinja2 with the GGUF's template."""
    import gguf
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    r = gguf.GGUFReader(str(SMOLLM2))
    f = r.fields["tokenizer.chat_template"]
    tmpl = bytes(f.parts[f.data[0]]).decode()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(tmpl).render(messages=messages, add_generation_prompt=True,
                                        bos_token="<|im_start|>", eos_token="<|im_end|>")


@pytest.fixture(scope="module")
def srv():
    s = Server("--parallel", "4", "--ctx-size", "1024", "--max-queue", "32", "--prefill-chunk", "64")
    yield s
    rc = s.stop()
    s.check_clean()
    assert rc == 0, s.text()[-3000:]


@pytest.fixture(scope="module")
def oc(srv):
    return client(srv)


CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


# ---- basics -------------------------------------------------------------------

def test_health_ready_models(srv, oc):
    st, h, body = request(srv, "GET", "/health")
    assert st == 200 and json.loads(body)["status"] == "ok"
    assert re.fullmatch(r"[A-Za-z0-9_.-]{8,64}", h["x-request-id"])
    st, _, _ = request(srv, "GET", "/ready")
    assert st == 200
    models = oc.models.list()
    assert [m.id for m in models.data] == [MODEL_ID]
    assert oc.models.retrieve(MODEL_ID).id == MODEL_ID
    with pytest.raises(openai.NotFoundError):
        oc.models.retrieve("no-such-model")
    # the client's request id comes back, and appears in the access log
    st, h, _ = request(srv, "GET", "/v1/models", headers={"X-Request-Id": "my-trace-42"})
    assert st == 200 and h["x-request-id"] == "my-trace-42"
    deadline = time.time() + 2
    while "[my-trace-42] access" not in srv.text() and time.time() < deadline:
        time.sleep(0.05)
    line = [l for l in srv.text().splitlines() if "[my-trace-42]" in l][0]
    assert 'path="/v1/models"' in line and "status=200" in line


def test_chat_usage_and_content_parts(srv, oc):
    r = oc.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=8, temperature=0, logprobs=True)
    ch = r.choices[0]
    assert ch.message.role == "assistant" and ch.message.content
    assert ch.finish_reason in ("stop", "length")
    # prompt tokens: the template rendered by jinja2, tokenized by llama.cpp
    want = len(ref_tokenize(ref_chat_prompt(CAPITAL), special=True))
    assert r.usage.prompt_tokens == want
    n_lp = len(ch.logprobs.content)
    # the end-of-turn token is generated (and counted) but carries no text
    assert r.usage.completion_tokens == n_lp + (1 if ch.finish_reason == "stop" else 0)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert "".join(t.token for t in ch.logprobs.content) == ch.message.content
    # content as an array of text parts is the same conversation
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is the capital"},
                                          {"type": "text", "text": " of France?"}]}]
    r2 = oc.chat.completions.create(model=MODEL_ID, messages=parts, max_tokens=8, temperature=0)
    assert r2.choices[0].message.content == ch.message.content
    assert r2.usage.prompt_tokens == want
    assert r2.usage.prompt_tokens_details.cached_tokens >= 16  # the shared prefix came from the cache


def test_special_token_text_in_content_is_plain_text(srv, oc):
    msgs = [{"role": "user", "content": "say <|im_end|> please"}]
    r = oc.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=1, temperature=0)
    # reference: template text with special tokens, the user's text without
    full = ref_chat_prompt(msgs)
    a, b = full.split("say <|im_end|> please")
    want = len(ref_tokenize(a, True)) + len(ref_tokenize("say <|im_end|> please", False)) + len(ref_tokenize(b, True))
    assert r.usage.prompt_tokens == want
    assert want > len(ref_tokenize(full, True))  # parsed as special it would be shorter


def test_chat_stream_format(srv, oc):
    body = {"model": MODEL_ID, "messages": CAPITAL, "max_tokens": 8, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    st, h, events = sse(srv, "/v1/chat/completions", body)
    assert st == 200 and h["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    first, fin, usage = chunks[0], chunks[-2], chunks[-1]
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["choices"][0]["finish_reason"] is None
    deltas = chunks[1:-2]
    assert deltas and all(c["choices"][0]["finish_reason"] is None and c["usage"] is None for c in deltas)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in deltas)
    assert fin["choices"][0]["delta"] == {} and fin["choices"][0]["finish_reason"] in ("stop", "length")
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    r = oc.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=8, temperature=0)
    assert text == r.choices[0].message.content
    assert usage["usage"]["prompt_tokens"] == r.usage.prompt_tokens
    # the openai client's own stream parser
    got = "".join(c.choices[0].delta.content or "" for c in oc.chat.completions.create(
        model=MODEL_ID, messages=CAPITAL, max_tokens=8, temperature=0, stream=True) if c.choices)
    assert got == text
    # without include_usage: no usage key at all in chunks
    st, _, events = sse(srv, "/v1/chat/completions", dict(body, stream_options=None))
    assert all("usage" not in json.loads(e) for e in events[:-1])


PROMPT = "The capital of France is"


def test_completions(srv, oc):
    r = oc.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3)
    ch = r.choices[0]
    text = ch.text
    assert text and r.usage.prompt_tokens == len(ref_tokenize(PROMPT, True))
    lp = ch.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert "".join(lp.tokens) == text
    assert lp.text_offset == [sum(len(t.encode()) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert l <= 0 and len(top) == 3
        assert max(top.values()) == pytest.approx(l, abs=1e-5)  # greedy: the chosen one is the best
    # streaming gives the same text
    s = "".join(c.choices[0].text for c in oc.completions.create(
        model=MODEL_ID, prompt=PROMPT, max_tokens=8, temperature=0, stream=True) if c.choices)
    assert s == text
    # echo, and a prompt given as token ids
    r = oc.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=8, temperature=0, echo=True)
    assert r.choices[0].text == PROMPT + text
    r = oc.completions.create(model=MODEL_ID, prompt=ref_tokenize(PROMPT, True), max_tokens=8, temperature=0)
    assert r.choices[0].text == text
    # characters split over several tokens are never cut inside a chunk
    jp = "日本の首都は東京です。中国の首都は"
    whole = oc.completions.create(model=MODEL_ID, prompt=jp, max_tokens=12, temperature=0).choices[0].text
    pieces = [c.choices[0].text for c in oc.completions.create(
        model=MODEL_ID, prompt=jp, max_tokens=12, temperature=0, stream=True) if c.choices]
    assert "".join(pieces) == whole and any(ord(ch) > 0x7F for ch in whole)
    body = [p for p in pieces if p]
    # U+FFFD only where the output stopped inside a character (max_tokens), at the very end
    assert all("\ufffd" not in p for p in body[:-1]) and "\ufffd" not in body[-1][:-1]


def test_stop_strings(srv, oc):
    base = oc.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=12, temperature=0, logprobs=0)
    text, toks = base.choices[0].text, base.choices[0].logprobs.tokens
    # a stop string across a token boundary: the end of token 2 + the start of token 3
    assert len(toks) >= 5
    cut = len(toks[0]) + len(toks[1]) + len(toks[2])
    stop = text[cut - 2:cut + 1]
    want = text[:text.find(stop)]
    r = oc.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop, "zzzz"])
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop"
    pieces = [c.choices[0].text for c in oc.completions.create(
        model=MODEL_ID, prompt=PROMPT, max_tokens=12, temperature=0, stop=stop, stream=True) if c.choices]
    assert "".join(pieces) == want and stop not in "".join(pieces)
    # chat, streamed: never leaked either
    full = oc.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=8, temperature=0).choices[0].message.content
    stop = full[3:6]
    pieces = [c.choices[0].delta.content or "" for c in oc.chat.completions.create(
        model=MODEL_ID, messages=CAPITAL, max_tokens=8, temperature=0, stop=stop, stream=True) if c.choices]
    assert "".join(pieces) == full[:full.find(stop)]


def test_seed_reproducible_and_n(srv, oc):
    kw = dict(model=MODEL_ID, prompt="Once upon a time", max_tokens=5, temperature=1.0)
    a = oc.completions.create(seed=1234, **kw).choices[0].text
    b = oc.completions.create(seed=1234, **kw).choices[0].text
    assert a == b
    # n=2: choice i uses seed + i
    r = oc.completions.create(seed=1234, n=2, **kw)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text == a
    assert r.choices[1].text == oc.completions.create(seed=1235, **kw).choices[0].text
    others = {oc.completions.create(seed=s, **kw).choices[0].text for s in (1, 2, 3)}
    assert len(others | {a}) > 1


def test_logprobs_chat(srv, oc):
    r = oc.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=6, temperature=0,
                                   logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert content
    for t in content:
        assert len(t.top_logprobs) == 3
        lps = [x.logprob for x in t.top_logprobs]
        assert lps == sorted(lps, reverse=True) and all(l <= 0 for l in lps)
        assert t.token == t.top_logprobs[0].token and t.logprob == pytest.approx(lps[0], abs=1e-5)
        assert bytes(t.bytes).decode(errors="replace") == t.token
    assert math.exp(content[0].logprob) <= 1.0


def test_penalties_and_logit_bias(srv, oc):
    base = oc.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=3, temperature=0, logprobs=0)
    first = ref_tokenize(base.choices[0].logprobs.tokens[0], False)
    assert len(first) == 1
    banned = oc.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=3, temperature=0, logprobs=0,
                                   logit_bias={str(first[0]): -100})
    assert banned.choices[0].logprobs.tokens[0] != base.choices[0].logprobs.tokens[0]
    r = oc.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=3, temperature=0, presence_penalty=1.5,
                              frequency_penalty=1.0, extra_body={"repetition_penalty": 1.3, "top_k": 5, "min_p": 0.1})
    assert r.choices[0].text


# ---- structured output and tools ---------------------------------------------------

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 16},
    "age": {"type": "integer"},
    "member": {"type": "boolean"}},
    "required": ["name", "age", "member"], "additionalProperties": False}


def test_json_schema_output(srv, oc):
    r = oc.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Describe a person as JSON."}], max_tokens=48,
        temperature=0, response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
    assert r.choices[0].finish_reason == "stop"
    doc = json.loads(r.choices[0].message.content)
    jsonschema.validate(doc, PERSON)
    r = oc.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "JSON please"}], max_tokens=24,
                                   temperature=0, response_format={"type": "json_object"})
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:  # cut by max_tokens: still a valid prefix of an object
        assert r.choices[0].message.content.lstrip().startswith("{")
    st, _, body = post(srv, "/v1/chat/completions", {"messages": CAPITAL, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "^a"}}}})
    assert st == 400 and "pattern" in body["error"]["message"]


NESTED = {"type": "object", "properties": {
    "title": {"type": "string", "maxLength": 8},
    "kind": {"enum": ["book", "film", 7, None]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "minItems": 1, "maxItems": 1},
    "meta": {"$ref": "#/$defs/meta"}},
    "required": ["title", "kind", "tags", "meta"], "additionalProperties": False,
    "$defs": {"meta": {"type": "object", "properties": {"year": {"type": "integer"},
                                                       "note": {"anyOf": [{"type": "string", "maxLength": 5},
                                                                          {"type": "null"}]}},
                       "required": ["year", "note"]}}}


def test_json_schema_nested_sampled(srv, oc):
    """Sampling (temperature 1) walks other branches than greedy: every
    document must still validate; n=2 shares one grammar."""
    r = oc.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "A favourite story, as JSON."}], max_tokens=72, n=2,
        temperature=1.0, seed=7, response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": NESTED}})
    for ch in r.choices:
        if ch.finish_reason == "stop":
            jsonschema.validate(json.loads(ch.message.content), NESTED)
        else:  # cut by max_tokens: a prefix of a valid document
            assert ch.finish_reason == "length" and ch.message.content.lstrip().startswith("{")
    assert any(ch.finish_reason == "stop" for ch in r.choices)


WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}}}]


def test_tool_call_round_trip(srv, oc):
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = oc.chat.completions.create(model=MODEL_ID, messages=msgs, tools=WEATHER, tool_choice="required",
                                   max_tokens=32, temperature=0)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    call = ch.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, WEATHER[0]["function"]["parameters"])
    msgs += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
             {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'}]
    # the answer after the tool result (tool_choice none: tools stay out of the prompt, which keeps it short)
    r2 = oc.chat.completions.create(model=MODEL_ID, messages=msgs, tools=WEATHER, tool_choice="none", max_tokens=8,
                                    temperature=0)
    ch2 = r2.choices[0]
    assert ch2.finish_reason in ("stop", "length") and ch2.message.content
    # the call and its result are in the prompt: the template has no tool_calls support, so the server writes
    # the call as a <tool_call> block into the assistant turn
    text_msgs = [msgs[0], {"role": "assistant", "content": "<tool_call>\n" + json.dumps(
        {"name": "get_weather", "arguments": args}, separators=(",", ":")) + "\n</tool_call>"},
                 {"role": "tool", "content": '{"temperature_c": 21}'}]
    assert r2.usage.prompt_tokens == len(ref_tokenize(ref_chat_prompt(text_msgs), special=True))


# ---- embeddings ------------------------------------------------------------------

def test_embeddings(srv, oc):
    texts = ["hello world", "hello world", "the cat"]
    r = oc.embeddings.create(model=MODEL_ID, input=texts)  # the client asks for base64
    vecs = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2] and all(len(v) == 576 for v in vecs)
    for v in vecs:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4)
    assert vecs[0] == vecs[1] and vecs[0] != vecs[2]
    assert r.usage.prompt_tokens == sum(len(ref_tokenize(t, False)) for t in texts)
    st, _, body = post(srv, "/v1/embeddings", {"input": "hello world", "encoding_format": "float"})
    assert st == 200
    assert body["data"][0]["embedding"] == pytest.approx(vecs[0], abs=1e-6)
    # llama.cpp's mean-pooled, normalised embedding of the same text
    from llama_cpp import Llama
    ref = Llama(str(SMOLLM2), embedding=True, pooling_type=1, n_ctx=64, verbose=False).embed("hello world", normalize=True)
    cos = sum(a * b for a, b in zip(ref, vecs[0]))
    assert cos > 0.99, cos


# ---- errors ------------------------------------------------------------------------

def assert_error(st, body, status, param=None):
    assert st == status, body
    e = body["error"]
    assert set(e) >= {"message", "type", "param", "code"} and e["message"]
    if param:
        assert e["param"] == param, e


@pytest.mark.parametrize("body,param", [
    ({"messages": "hi"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages"),
    ({"messages": CAPITAL, "temperature": "hot"}, "temperature"),
    ({"messages": CAPITAL, "temperature": 3}, "temperature"),
    ({"messages": CAPITAL, "max_tokens": -1}, "max_tokens"),
    ({"messages": CAPITAL, "max_tokens": 1.5}, "max_tokens"),
    ({"messages": CAPITAL, "n": 0}, "n"),
    ({"messages": CAPITAL, "stop": 5}, "stop"),
    ({"messages": CAPITAL, "stream": "yes"}, "stream"),
    ({"messages": CAPITAL, "logprobs": "yes"}, "logprobs"),
    ({"messages": CAPITAL, "top_logprobs": 2}, "top_logprobs"),
    ({"messages": CAPITAL, "seed": "x"}, "seed"),
    ({"messages": CAPITAL, "logit_bias": {"abc": 1}}, "logit_bias"),
    ({"messages": CAPITAL, "logit_bias": {"5": 500}}, "logit_bias"),
    ({"messages": CAPITAL, "response_format": {"type": "xml"}}, "response_format"),
    ({"messages": CAPITAL, "tools": "all"}, "tools"),
    ({"messages": CAPITAL, "tool_choice": "required"}, "tool_choice"),
])
def test_bad_parameters_400(srv, body, param):
    st, _, b = post(srv, "/v1/chat/completions", body)
    assert_error(st, b, 400, param)


def test_errors(srv):
    st, h, b = post(srv, "/v1/chat/completions", b'{"messages": [')
    assert_error(st, b, 400)
    assert "JSON" in b["error"]["message"] and h["x-request-id"]
    for raw in (b"", b"[1, 2]", b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}'):
        st, _, b = post(srv, "/v1/chat/completions", raw)
        assert_error(st, b, 400)
    st, _, b = post(srv, "/v1/completions", {"prompt": "x", "suffix": "y"})
    assert_error(st, b, 400, "suffix")
    st, _, b = request(srv, "GET", "/v2/nothing")
    assert_error(st, json.loads(b), 404)
    st, _, b = request(srv, "POST", "/v1/models", b"{}")
    assert_error(st, json.loads(b), 405)
    st, _, b = post(srv, "/v1/chat/completions", {"model": "gpt-9", "messages": CAPITAL})
    assert_error(st, b, 404, "model")
    assert b["error"]["code"] == "model_not_found"
    # a prompt longer than the context (1024 here)
    st, _, b = post(srv, "/v1/completions", {"prompt": "word " * 1500, "max_tokens": 1})
    assert_error(st, b, 400)
    assert b["error"]["code"] == "context_length_exceeded"
    # unknown fields are ignored
    st, _, b = post(srv, "/v1/completions", {"prompt": "Hi", "max_tokens": 1, "temperature": 0,
                                              "frobnicate": {"a": [1, 2]}, "best_of": 1})
    assert st == 200 and b["choices"][0]["finish_reason"] in ("stop", "length")


def test_body_limit_413(srv):
    """10 MB: the server reads and drops it, then answers 413 on a live connection."""
    body = b'{"prompt": "' + b"a" * (10 << 20) + b'"}'
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    # a client that asks for "100 Continue" first is refused before it sends anything
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (10 << 20))
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    # and a chunked upload without a length hits the same limit
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", "/v1/completions", body=iter([b"x" * (1 << 20)] * 10), headers={"Content-Type": "application/json"},
              encode_chunked=True)
    r = c.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["code"] == "request_too_large"
    c.close()
    assert request(srv, "GET", "/health")[0] == 200


def test_header_limit(srv):
    st = None
    try:
        st, _, _ = request(srv, "GET", "/health", headers={"X-Big": "a" * (200 << 10)})
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        pass  # closing the connection is an acceptable answer too
    assert st in (None, 413, 431)
    assert request(srv, "GET", "/health")[0] == 200


# ---- cancellation, concurrency, metrics ------------------------------------------------

def wait_idle(srv, timeout):
    t0 = time.time()
    while True:
        m = metrics(srv)
        if m["rocmforge_running_sequences"] == 0 and m["rocmforge_kv_blocks_used"] == 0:
            return time.time() - t0
        if time.time() - t0 > timeout:
            raise AssertionError(f"not idle after {timeout} s: {m}")
        time.sleep(0.02)


def freed_within(srv):
    """The bound for freeing a cancelled sequence: one second, or about two
    forward steps where a step is slower than that (sanitizer builds)."""
    m = metrics(srv)
    step = m["rocmforge_forward_step_seconds_sum"] / max(1.0, m["rocmforge_forward_step_seconds_count"])
    return max(1.0, 2 * step + 0.3)


def test_disconnect_frees_slot(srv):
    wait_idle(srv, 30)
    body = json.dumps({"prompt": PROMPT, "max_tokens": 200, "temperature": 0, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    data = b""
    while data.count(b"data: ") < 2:  # two chunks: generation is under way
        data += s.recv(4096)
    m = metrics(srv)
    assert m["rocmforge_running_sequences"] == 1 and m["rocmforge_kv_blocks_used"] > 0
    bound = freed_within(srv)
    s.close()
    took = wait_idle(srv, 10)
    assert took < bound, f"slot freed after {took:.2f} s"
    # the non-stream kind: the connection is suspended while it waits
    body = json.dumps({"prompt": PROMPT, "max_tokens": 200, "temperature": 0}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    deadline = time.time() + 30
    while metrics(srv)["rocmforge_running_sequences"] < 1 and time.time() < deadline:
        time.sleep(0.02)
    bound = freed_within(srv)
    s.close()
    took = wait_idle(srv, 10)
    assert took < bound, f"slot freed after {took:.2f} s"


def test_16_concurrent_streams_match_sequential(srv, oc):
    prompts = ["The capital of France is", "Once upon a time", "The best way to learn is", "Water boils at"]
    solo = {p: oc.completions.create(model=MODEL_ID, prompt=p, max_tokens=5, temperature=0).choices[0].text
            for p in prompts}

    def stream(p):
        return "".join(c.choices[0].text for c in client(srv).completions.create(
            model=MODEL_ID, prompt=p, max_tokens=5, temperature=0, stream=True) if c.choices)

    jobs = [prompts[i % 4] for i in range(16)]
    with cf.ThreadPoolExecutor(16) as ex:
        got = list(ex.map(stream, jobs))
    for p, g in zip(jobs, got):
        assert g == solo[p], (p, g, solo[p])
    m = metrics(srv)
    assert m["rocmforge_prefix_cache_lookups_total"] > 0


def test_metrics_promtool(srv):
    st, h, data = request(srv, "GET", "/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain")
    promtool = shutil.which("promtool")
    if not promtool:  # Debian's prometheus package ships it
        subprocess.run(["apt-get", "install", "-y", "prometheus"], check=False, capture_output=True, timeout=900)
        promtool = shutil.which("promtool")
    assert promtool, "promtool is missing and `apt-get install prometheus` did not provide it"
    cp = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True)
    assert cp.returncode == 0, cp.stdout.decode() + cp.stderr.decode()
    text = data.decode()
    for name in ["rocmforge_http_requests_total", "rocmforge_prompt_tokens_total", "rocmforge_generation_tokens_total",
                 "rocmforge_time_to_first_token_seconds_bucket", "rocmforge_inter_token_latency_seconds_bucket",
                 "rocmforge_queue_depth", "rocmforge_running_sequences", "rocmforge_kv_blocks_used",
                 "rocmforge_kv_blocks_free", "rocmforge_prefix_cache_hit_tokens_total"]:
        assert name in text, name
    m = metrics(srv)
    assert m['rocmforge_http_requests_total{endpoint="chat_completions",status="200"}'] >= 1
    assert m['rocmforge_http_requests_total{endpoint="chat_completions",status="400"}'] >= 1
    assert m["rocmforge_prefix_cache_hit_tokens_total"] > 0
    assert m["rocmforge_generation_tokens_total"] >= m["rocmforge_time_to_first_token_seconds_count"] > 0


# ---- servers of their own ------------------------------------------------------------

def test_port_in_use_is_an_error(srv):
    cp = subprocess.run([str(BIN_DIR / "rocmforge"), "serve", "-m", str(SMOLLM2), "--port", str(srv.port)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 2 and "in use" in cp.stderr, cp.stderr
    cp = subprocess.run([str(BIN_DIR / "rocmforge"), "serve", "--port", "1"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1 and "ROCMFORGE_MODEL" in cp.stderr  # usage error: no model


def test_health_503_while_loading(tmp_path):
    """The server listens before the model loads: /health says 503 until
    then. A FIFO as the model file holds the load (open blocks until a
    writer comes); closing the writer makes the load fail: exit 2."""
    fifo = tmp_path / "slow.gguf"
    os.mkfifo(fifo)
    port = free_port()
    p = subprocess.Popen([str(BIN_DIR / "rocmforge"), "serve", "-m", str(fifo), "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        class Addr:
            pass
        a = Addr()
        a.port = port
        deadline, st = time.time() + 30, None
        while st is None and time.time() < deadline:
            try:
                st, _, body = request(a, "GET", "/health", timeout=2)
            except OSError:
                time.sleep(0.05)
        assert st == 503 and json.loads(body)["status"] == "loading"
        assert request(a, "GET", "/ready")[0] == 503
        st, h, body = post(a, "/v1/completions", {"prompt": "x"})
        assert st == 503 and h["retry-after"] and body["error"]["code"] == "loading"
    finally:
        with open(fifo, "wb"):
            pass  # the loader's open returns; it reads nothing
        out = p.communicate(timeout=60)[0].decode()
    assert p.returncode == 2, out
    assert "error:" in out and "Sanitizer" not in out


def test_auth():
    key = "s3cret-key"
    s = Server("--parallel", "1", "--conn-timeout", "1", env={"ROCMFORGE_API_KEY": key})
    try:
        # slowloris: a client that never finishes its headers is dropped after --conn-timeout
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sl:
            sl.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            t0 = time.time()
            assert sl.recv(4096) == b"" and time.time() - t0 < 5
        with pytest.raises(openai.AuthenticationError):
            client(s, "wrong").models.list()
        st, h, b = request(s, "GET", "/v1/models")
        assert st == 401 and h["www-authenticate"].startswith("Bearer")
        assert json.loads(b)["error"]["code"] == "invalid_api_key"
        for bad in ("Bearer " + key[:-1], "Bearer " + key + "x", "Basic " + key, key):
            assert request(s, "GET", "/v1/models", headers={"Authorization": bad})[0] == 401
        assert [m.id for m in client(s, key).models.list().data] == [MODEL_ID]
        assert request(s, "GET", "/metrics")[0] == 401
        assert request(s, "GET", "/metrics", headers={"Authorization": "Bearer " + key})[0] == 200
        assert request(s, "GET", "/health")[0] == 200  # liveness stays public
        st, _, b = post(s, "/v1/completions", {"prompt": "Hi", "max_tokens": 1})
        assert st == 401
    finally:
        assert s.stop() == 0
        s.check_clean()


def test_200_connections_small_queue_and_timeout():
    s = Server("--parallel", "2", "--max-queue", "3", "--timeout", "3", "--log-format", "json", "--http-threads", "4")
    try:
        barrier = threading.Barrier(200)

        def one(i):
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=300)
            body = json.dumps({"prompt": "Hello", "max_tokens": 2, "temperature": 0})
            barrier.wait()
            c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
            return r.status, r.getheader("Retry-After"), data

        with cf.ThreadPoolExecutor(200) as ex:
            res = list(ex.map(one, range(200)))
        codes = [r[0] for r in res]
        assert set(codes) <= {200, 429, 503}, set(codes)
        assert codes.count(200) >= 2 and codes.count(429) + codes.count(503) > 0
        for st, ra, data in res:
            if st != 200:
                assert ra and int(ra) >= 1
                assert json.loads(data)["error"]["message"]
            else:
                assert json.loads(data)["choices"][0]["text"] is not None
        assert request(s, "GET", "/health")[0] == 200
        st, _, b = post(s, "/v1/completions", {"prompt": "Hello", "max_tokens": 2, "temperature": 0})
        assert st == 200
        # --timeout 3: a long generation is cut with finish_reason length
        t0 = time.time()
        st, _, b = post(s, "/v1/completions", {"prompt": "Hello", "max_tokens": 4000, "temperature": 0,
                                                "logit_bias": {"0": -100, "2": -100}})  # no natural end
        assert st == 200 and b["choices"][0]["finish_reason"] == "length"
        assert b["usage"]["completion_tokens"] < 4000 and time.time() - t0 < 15
    finally:
        assert s.stop() == 0
        s.check_clean()
    lines = [l for l in s.text().splitlines() if l.strip()]
    recs = [json.loads(l) for l in lines]  # --log-format json: every line is JSON
    access = [r for r in recs if r.get("msg") == "access"]
    assert len(access) >= 203 and all(r["request_id"] and r["status"] for r in access)


def test_preemption_tiny_kv_pool():
    """3 blocks of 16 positions for 2 sequences that each grow past 16:
    the youngest is pre-empted and recomputed; output stays exact."""
    s = Server("--parallel", "2", "--ctx-size", "48", "--kv-blocks", "3")
    try:
        c = client(s)
        prompts = ["The capital of France is", "Once upon a time"]
        solo = [c.completions.create(model=MODEL_ID, prompt=p, max_tokens=20, temperature=0).choices[0].text
                for p in prompts]
        with cf.ThreadPoolExecutor(2) as ex:
            got = list(ex.map(lambda p: client(s).completions.create(
                model=MODEL_ID, prompt=p, max_tokens=20, temperature=0).choices[0].text, prompts))
        assert got == solo
        assert metrics(s)["rocmforge_preemptions_total"] >= 1
    finally:
        assert s.stop() == 0
        s.check_clean()


def test_sigterm_ends_streams_and_exits_0():
    s = Server("--parallel", "2", "--shutdown-grace", "0.5")
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    # end-of-text and end-of-turn banned: it would run to max_tokens
    c.request("POST", "/v1/chat/completions", body=json.dumps(
        {"messages": CAPITAL, "max_tokens": 2000, "temperature": 0, "stream": True, "logit_bias": {"0": -100, "2": -100},
         "stream_options": {"include_usage": True}}),
        headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200
    buf = b""
    while buf.count(b"data: ") < 3:
        buf += r.read1(4096)
    s.proc.send_signal(signal.SIGTERM)
    rest = r.read()  # the stream must end, not hang
    text = (buf + rest).decode()
    events = [e[6:] for e in text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    fin, usage = json.loads(events[-3]), json.loads(events[-2])
    assert fin["choices"][0]["finish_reason"] == "length"  # cut short by the shutdown
    assert 0 < usage["usage"]["completion_tokens"] < 2000
    assert s.proc.wait(timeout=30) == 0
    s.check_clean()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()


# ---- the web page ----------------------------------------------------------------------

class CDP:
    """A minimal Chrome DevTools Protocol client over a WebSocket (RFC 6455)."""

    def __init__(self, ws_url):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", ws_url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            resp += self.sock.recv(4096)
        assert resp.startswith(b"HTTP/1.1 101"), resp
        self.buf = resp.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _recv_exact(self, n):
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _recv_msg(self):
        data = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            data += self._recv_exact(n)
            if b0 & 0x80:
                return data

    def call(self, method, **params):
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        hdr = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126 else
                               bytes([0x80 | 126]) + struct.pack(">H", len(payload)))
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while True:
            msg = json.loads(self._recv_msg())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]

    def eval(self, expr):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")


def test_web_page_in_headless_chromium(srv):
    st, h, page = request(srv, "GET", "/")
    assert st == 200 and h["content-type"].startswith("text/html")
    assert b"<script" in page and b"http://" not in page and b"https://" not in page  # no external assets
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chrome, "chromium is not installed (Debian package `chromium`)"
    port = free_port()
    prof = tempfile.mkdtemp(prefix="rf-chromium-")
    p = subprocess.Popen([chrome, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--remote-debugging-port={port}", f"--user-data-dir={prof}", "about:blank"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        targets = None
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/json/list")
                targets = json.loads(c.getresponse().read())
                if any(t["type"] == "page" for t in targets):
                    break
            except OSError:
                time.sleep(0.2)
        page_t = [t for t in targets if t["type"] == "page"][0]
        cdp = CDP(page_t["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=srv.base + "/")
        while cdp.eval("document.readyState") != "complete" or not cdp.eval("!!document.querySelector('#prompt')"):
            time.sleep(0.1)
        # type a question and press the button, as a user would
        cdp.eval("document.querySelector('#maxtok').value = '8'; document.querySelector('#temp').value = '0';"
                 "document.querySelector('#prompt').focus()")
        cdp.call("Input.insertText", text="What is the capital of France?")
        cdp.eval("document.querySelector('#send').click()")
        seen, deadline = [], time.time() + 120
        while time.time() < deadline:
            state = cdp.eval("(document.querySelector('.msg.assistant')||{dataset:{}}).dataset.state")
            text = cdp.eval("(document.querySelector('.msg.assistant')||{}).textContent")
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            if state in ("done", "error"):
                break
            time.sleep(0.02)
        assert state == "done", (state, seen)
        final = seen[-1]
        assert len(seen) >= 2 and all(final.startswith(x) for x in seen)  # it grew while streaming
        want = client(srv).chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=8,
                                                   temperature=0).choices[0].message.content
        assert final == want
    finally:
        p.terminate()
        p.wait(timeout=30)
        shutil.rmtree(prof, ignore_errors=True)
