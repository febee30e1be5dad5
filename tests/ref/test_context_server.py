"""The context engine over HTTP, black-box: `rocmforge serve --context-db DB`
on a free port with SmolLM2, driven with raw HTTP and the official openai
client. The database file is read back with Python's sqlite3; the
documents a search returns are checked against numpy cosine ranks of the
stored vectors and the query embedding the server's own /v1/embeddings
gives (the same model id, never mixed with another model's vectors).
"""
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import string
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np
import openai
import pytest

from conftest import BIN_DIR, SMOLLM2, rocmforge

THREADS = os.environ.get("RF_TEST_THREADS", "2")
MODEL_KEY = "SmolLM2-135M-Instruct-Q4_1.gguf#576"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="rf-ctx-serve-", suffix=".log", delete=False)
        cmd = [str(BIN_DIR / "rocmforge"), "serve", "-m", str(SMOLLM2), "--port", str(self.port), "-t", THREADS, *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.text()}")
            try:
                if self.req("GET", "/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, self.text()
            time.sleep(0.05)

    def text(self):
        return Path(self.log.name).read_text(errors="replace")

    def req(self, method, path, body=None, timeout=300):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, (json.loads(raw) if raw else None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        t = self.text()
        assert "Sanitizer" not in t and "runtime error" not in t, t[-4000:]
        return rc


@pytest.fixture(scope="module")
def dbpath():
    d = tempfile.mkdtemp(prefix="rf-ctx-")
    return Path(d) / "srv.db"


@pytest.fixture(scope="module")
def srv(dbpath):
    s = Server("--context-db", str(dbpath))
    yield s
    assert s.stop() == 0


def word(rng, n=9):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def test_documents_search_delete(srv, dbpath):
    rng = random.Random()
    texts = ["The Eiffel Tower is a wrought-iron tower in Paris, built for the 1889 World's Fair.",
             "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
             "The violin is a string instrument played with a bow.",
             "Honey bees live in hives and make honey from flower nectar.",
             "Mount Everest is the highest mountain above sea level."]
    ids = []
    for t in texts:
        st, b = srv.req("POST", "/v1/context/documents", {"text": t, "meta": {"src": "test", "r": rng.random()}})
        assert st == 200 and b["object"] == "context.document" and b["chunks"] == 1 and b["model"] == MODEL_KEY, b
        ids.append(b["id"])
    marker = word(rng)
    st, note = srv.req("POST", "/v1/context/documents", {"text": f"note {marker}", "kind": "note",
                                                         "links": [{"id": ids[0], "relation": "about"}]})
    assert st == 200 and note["kind"] == "note"
    # the file, read independently
    c = sqlite3.connect(dbpath)
    rows = dict(c.execute("SELECT id, text FROM nodes"))
    assert [rows[i] for i in ids] == texts
    assert c.execute("SELECT src, dst, relation FROM edges WHERE src = ?", (note["id"],)).fetchall() == [(note["id"], ids[0], "about")]
    vec = {n: np.frombuffer(v, dtype="<f4") for n, v in c.execute("SELECT node, vec FROM embeddings WHERE model = ?", (MODEL_KEY,))}
    c.close()
    # vector search ranks = numpy cosine of the stored vectors against the server's own query embedding
    q = "Which insect produces a sweet food?"
    st, e = srv.req("POST", "/v1/embeddings", {"input": q, "encoding_format": "float"})
    qv = np.array(e["data"][0]["embedding"])
    order = sorted(vec, key=lambda n: -float(qv @ vec[n]))
    st, r = srv.req("GET", "/v1/context/search?" + urllib.parse.urlencode({"q": q, "k": 3, "mode": "vector"}))
    assert st == 200 and [h["id"] for h in r["data"]] == order[:3]
    for h in r["data"]:
        assert h["vector_score"] == pytest.approx(float(qv @ vec[h["id"]]), abs=1e-4)
    # hybrid: the keyword-only marker finds its note; one hop brings the linked document
    st, r = srv.req("GET", f"/v1/context/search?q={marker}&k=1&hops=1")
    assert st == 200 and r["mode"] == "hybrid"
    assert [h["id"] for h in r["data"]][:1] == [note["id"]] and r["data"][0]["keyword_score"] > 0
    linked = [h for h in r["data"] if h["hop"] == 1]
    assert [h["id"] for h in linked] == [ids[0]] and linked[0]["via"] == note["id"]
    # GET one, DELETE it, then it is gone everywhere
    st, g = srv.req("GET", f"/v1/context/documents/{note['id']}")
    assert st == 200 and g["text"] == f"note {marker}" and g["edges"][0]["relation"] == "about"
    st, d = srv.req("DELETE", f"/v1/context/documents/{note['id']}")
    assert st == 200 and d == {"id": note["id"], "object": "context.document", "deleted": True}
    st, d = srv.req("DELETE", f"/v1/context/documents/{note['id']}")
    assert st == 404 and d["error"]["code"] == "not_found"
    st, r = srv.req("GET", f"/v1/context/search?q={marker}&mode=keyword")
    assert st == 200 and r["data"] == []
    c = sqlite3.connect(dbpath)
    assert c.execute("SELECT count(*) FROM edges WHERE src = ? OR dst = ?", (note["id"], note["id"])).fetchone()[0] == 0
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    c.close()


def test_long_document_is_chunked(srv, dbpath):
    rng = random.Random()
    text = " ".join(f"Sentence {i} talks about {word(rng, 6)} and {word(rng, 7)}." for i in range(30))
    st, b = srv.req("POST", "/v1/context/documents", {"text": text})
    assert st == 200 and b["chunks"] > 1
    c = sqlite3.connect(dbpath)
    chunks = [r[0] for r in c.execute("SELECT dst FROM edges WHERE src = ? AND relation = 'chunk'", (b["id"],))]
    assert len(chunks) == b["chunks"] == c.execute("SELECT parts FROM nodes WHERE id = ?", (b["id"],)).fetchone()[0]
    assert all(c.execute("SELECT count(*) FROM embeddings WHERE node = ?", (ch,)).fetchone()[0] == 1 for ch in chunks)
    c.close()
    st, d = srv.req("DELETE", f"/v1/context/documents/{b['id']}")
    assert st == 200


def test_chat_with_context_and_store(srv, dbpath):
    rng = random.Random()
    code = word(rng, 8)
    st, b = srv.req("POST", "/v1/context/documents", {"text": f"The secret password of the blue castle is {code}."})
    assert st == 200
    doc = b["id"]
    oc = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="none", max_retries=0, timeout=300)
    session = "s-" + word(rng, 6)
    r = oc.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", max_tokens=12, temperature=0,
                                   messages=[{"role": "system", "content": "Answer briefly."},
                                             {"role": "user", "content": "What is the secret password of the blue castle?"}],
                                   extra_body={"context": {"k": 2, "store": True, "session": session}})
    cx = r.model_extra["context"]
    assert doc in cx["ids"] and len(cx["ids"]) <= 2
    assert cx["session"] == session and len(cx["stored"]) == 2
    # the passage reached the prompt: more prompt tokens than without context
    r0 = oc.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", max_tokens=1, temperature=0,
                                    messages=[{"role": "system", "content": "Answer briefly."},
                                              {"role": "user", "content": "What is the secret password of the blue castle?"}])
    assert r.usage.prompt_tokens > r0.usage.prompt_tokens + 10
    # the conversation is stored: user -> assistant, linked "next"
    c = sqlite3.connect(dbpath)
    u, a = cx["stored"]
    rows = {i: (k, t, json.loads(m)) for i, k, t, m in c.execute("SELECT id, kind, text, meta FROM nodes WHERE id IN (?, ?)", (u, a))}
    assert rows[u][0] == "message" and rows[u][1] == "What is the secret password of the blue castle?"
    assert rows[u][2] == {"role": "user", "session": session}
    assert rows[a][1] == r.choices[0].message.content and rows[a][2]["role"] == "assistant"
    assert c.execute("SELECT count(*) FROM edges WHERE src = ? AND dst = ? AND relation = 'next'", (u, a)).fetchone()[0] == 1
    c.close()
    # a second turn continues the chain
    r2 = oc.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", max_tokens=4, temperature=0,
                                    messages=[{"role": "user", "content": "Thanks!"}],
                                    extra_body={"context": {"k": 0, "store": True, "session": session}})
    u2 = r2.model_extra["context"]["stored"][0]
    c = sqlite3.connect(dbpath)
    assert c.execute("SELECT count(*) FROM edges WHERE src = ? AND dst = ? AND relation = 'next'", (a, u2)).fetchone()[0] == 1
    c.close()
    # streams carry the ids in their first chunk
    s = oc.chat.completions.create(model="SmolLM2-135M-Instruct-Q4_1", max_tokens=3, temperature=0, stream=True,
                                   messages=[{"role": "user", "content": "blue castle password?"}],
                                   extra_body={"context": {"k": 1}})
    first = next(iter(s))
    # the stored turns of this session mention the castle too: any of them may rank first
    assert len(first.model_extra["context"]["ids"]) == 1 and first.model_extra["context"]["ids"][0] in {doc, u, a, u2}
    for _ in s:
        pass


@pytest.mark.parametrize("method,path,body,status,param", [
    ("POST", "/v1/context/documents", {"text": ""}, 400, "text"),
    ("POST", "/v1/context/documents", {"text": 5}, 400, "text"),
    ("POST", "/v1/context/documents", {"text": "x", "kind": "chunk"}, 400, "kind"),
    ("POST", "/v1/context/documents", {"text": "x", "meta": [1]}, 400, "meta"),
    ("POST", "/v1/context/documents", {"text": "x", "links": [{"id": 10**9, "relation": "r"}]}, 404, "links"),
    ("POST", "/v1/context/documents", {"text": "x", "links": "all"}, 400, "links"),
    ("POST", "/v1/context/documents", b"{not json", 400, None),
    ("GET", "/v1/context/search", None, 400, "q"),
    ("GET", "/v1/context/search?q=x&k=0", None, 400, "k"),
    ("GET", "/v1/context/search?q=x&hops=9", None, 400, "hops"),
    ("GET", "/v1/context/search?q=x&mode=psychic", None, 400, "mode"),
    ("DELETE", "/v1/context/documents/abc", None, 400, "id"),
    ("GET", "/v1/context/documents/999999999", None, 404, "id"),
    ("PUT", "/v1/context/search", None, 405, None),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "context": 3}, 400, "context"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "context": {"k": 99}}, 400, "context.k"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "context": {"store": "y"}}, 400, "context.store"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "system", "content": "hi"}], "context": {"k": 1}}, 400, "context"),
])
def test_errors(srv, method, path, body, status, param):
    st, b = srv.req(method, path, body)
    assert st == status, b
    assert b["error"]["message"]
    if param:
        assert b["error"]["param"] == param, b


def test_without_context_db():
    s = Server()
    try:
        st, b = s.req("GET", "/v1/context/search?q=x")
        assert st == 404 and b["error"]["code"] == "context_disabled" and "--context-db" in b["error"]["message"]
        st, b = s.req("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "context": {"k": 1}})
        assert st == 400 and b["error"]["param"] == "context"
    finally:
        assert s.stop() == 0


def test_cli_and_server_share_vectors(srv, dbpath, tmp_path):
    """What the CLI stored is searchable by the server (same model id), while
    the server runs (WAL: a second process writes)."""
    rng = random.Random()
    marker = word(rng)
    out = rocmforge("context", "add", dbpath, "--text", f"cli wrote {marker}", "-m", SMOLLM2, "-t", "1").stdout
    cid = int(out)
    st, r = srv.req("GET", f"/v1/context/search?q=cli%20wrote%20{marker}&k=1&mode=hybrid")
    assert st == 200 and r["data"][0]["id"] == cid and r["data"][0]["vector_score"] > 0.99
