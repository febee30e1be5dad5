"""`rocmforge context` on real database files, checked from outside.

References independent of our code: Python's sqlite3 module reads the files
the C code wrote (schema, pragmas, rows, integrity_check); numpy ranks the
stored vectors by cosine; SQLite's own FTS5 bm25() on a fresh in-memory table
gives the expected keyword order; llama.cpp (llama-cpp-python) gives the
mean-pooled, normalised embedding each stored vector must match. Crash
safety is a real `kill -9` of an `add` in the middle of a large import; two
writer processes share one file.
"""
import json
import os
import random
import signal
import sqlite3
import string
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN_DIR, SMOLLM2, rocmforge

MODEL_ID = "SmolLM2-135M-Instruct-Q4_1.gguf#576"
THREADS = os.environ.get("RF_TEST_THREADS", "2")
# v1 of the schema as a build of that version wrote it: the migration test
# opens such a file with the current build
V1_SCHEMA = """
CREATE TABLE schema_version(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
CREATE TABLE nodes(id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK(kind IN ('document','chunk','message','note')),
  text TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL);
CREATE TABLE edges(src INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  dst INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE, relation TEXT NOT NULL,
  weight REAL NOT NULL DEFAULT 1.0, PRIMARY KEY(src, dst, relation));
CREATE TABLE embeddings(node INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE, model TEXT NOT NULL,
  dim INTEGER NOT NULL CHECK(dim > 0), vec BLOB NOT NULL CHECK(length(vec) = 4 * dim), PRIMARY KEY(node, model));
CREATE VIRTUAL TABLE fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER nodes_fts_del AFTER DELETE ON nodes BEGIN DELETE FROM fts WHERE rowid = old.id; END;
INSERT INTO schema_version VALUES(1, 0);
"""


def ctx(*args, check=True, **kw):
    return rocmforge("context", *args, check=check, **kw)


def ctxm(*args, check=True, **kw):
    return rocmforge("context", *args, "-m", SMOLLM2, "-t", THREADS, check=check, **kw)


# common words (mostly one token each): texts of a known, small token count
WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point "
         "home water room mother area money story fact month lot right study book eye job word business issue "
         "side kind head house service friend father power hour game line end member law car city community name "
         "president team minute idea kid body information back parent face others level office door health person "
         "art war history party result change morning reason research girl guy moment air teacher force education").split()


def rand_words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def rand_token(rng, n=10):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def db_conn(path):
    c = sqlite3.connect(path)
    c.execute("PRAGMA foreign_keys = ON")
    return c


def vectors(path):
    c = db_conn(path)
    rows = c.execute("SELECT node, model, dim, vec FROM embeddings ORDER BY node").fetchall()
    c.close()
    return {r[0]: np.frombuffer(r[3], dtype="<f4") for r in rows}, {r[1] for r in rows}, {r[2] for r in rows}


def consistency(path):
    """integrity_check, foreign keys, and no partial document: every container
    has exactly `parts` chunks, every searchable node one vector and one FTS row."""
    c = db_conn(path)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert c.execute("PRAGMA foreign_key_check").fetchall() == []
    bad = c.execute("""SELECT n.id, n.parts, (SELECT count(*) FROM edges e JOIN nodes k ON k.id = e.dst
                         WHERE e.src = n.id AND e.relation = 'chunk' AND k.kind = 'chunk')
                       FROM nodes n WHERE n.kind = 'document' AND n.parts > 1""").fetchall()
    assert all(p == k for _, p, k in bad), bad
    searchable = "SELECT id FROM nodes WHERE NOT (kind = 'document' AND parts > 1)"
    no_vec = c.execute(f"SELECT count(*) FROM ({searchable}) s WHERE s.id NOT IN (SELECT node FROM embeddings)").fetchone()[0]
    no_fts = c.execute(f"SELECT count(*) FROM ({searchable}) s WHERE s.id NOT IN (SELECT rowid FROM fts)").fetchone()[0]
    orphans = c.execute("SELECT count(*) FROM nodes WHERE kind = 'chunk' AND id NOT IN "
                        "(SELECT dst FROM edges WHERE relation = 'chunk')").fetchone()[0]
    n = c.execute("SELECT count(*) FROM nodes").fetchone()[0]
    c.close()
    assert no_vec == 0 and no_fts == 0 and orphans == 0, (no_vec, no_fts, orphans)
    return n


# ---- schema ------------------------------------------------------------------------

def test_init_schema(tmp_path):
    db = tmp_path / "c.db"
    cp = ctx("init", db)
    assert "schema version 2" in cp.stdout
    c = db_conn(db)
    names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger', 'index')")}
    assert {"nodes", "edges", "embeddings", "fts", "schema_version", "nodes_fts_del", "edges_dst"} <= names
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in c.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    cols = [r[1] for r in c.execute("PRAGMA table_info(nodes)")]
    assert cols == ["id", "kind", "text", "meta", "created_at", "parts"]
    fks = {(r[2], r[3]) for r in c.execute("PRAGMA foreign_key_list(edges)")}
    assert fks == {("nodes", "src"), ("nodes", "dst")}
    c.close()
    ctx("init", db)  # again: nothing to migrate, still version 2
    c = db_conn(db)
    assert c.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 2
    c.close()


def test_migration_from_v1(tmp_path):
    db = tmp_path / "old.db"
    c = sqlite3.connect(db)
    c.executescript(V1_SCHEMA)
    rng = random.Random()
    texts = [rand_words(rng, 6) + " " + rand_token(rng, 12) for _ in range(3)]  # the last word is unique
    for i, t in enumerate(texts, 1):
        c.execute("INSERT INTO nodes(id, kind, text, meta, created_at) VALUES(?, 'note', ?, ?, 100)", (i, t, json.dumps({"i": i})))
        c.execute("INSERT INTO fts(rowid, text) VALUES(?, ?)", (i, t))
    c.execute("INSERT INTO edges VALUES(1, 2, 'rel', 0.5)")
    c.commit()
    c.close()
    st = json.loads(ctx("stats", db, "--json").stdout)
    assert st["schema_version"] == 2 and st["nodes"] == 3 and st["edges"] == 1
    c = db_conn(db)
    assert [r[0] for r in c.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    assert c.execute("SELECT group_concat(parts) FROM nodes").fetchone()[0] == "1,1,1"
    c.close()
    show = json.loads(ctx("show", db, 2, "--json").stdout)
    assert show["text"] == texts[1] and show["meta"] == {"i": 2}
    assert show["edges"] == [{"src": 1, "dst": 2, "relation": "rel", "weight": 0.5}]
    word = texts[2].split()[-1]
    hits = json.loads(ctx("search", db, word, "--mode", "keyword", "--json").stdout)["results"]
    assert hits and hits[0]["id"] == 3


def test_refuses_foreign_and_newer_files(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    cp = ctx("stats", junk, check=False)
    assert cp.returncode == 2 and "error" in cp.stderr
    other = tmp_path / "other.db"
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE t(x)")
    c.commit()
    c.close()
    cp = ctx("stats", other, check=False)
    assert cp.returncode == 2 and "not a context database" in cp.stderr
    newer = tmp_path / "newer.db"
    ctx("init", newer)
    c = sqlite3.connect(newer)
    c.execute("INSERT INTO schema_version VALUES(99, 0)")
    c.commit()
    c.close()
    cp = ctx("stats", newer, check=False)
    assert cp.returncode == 2 and "newer" in cp.stderr
    cp = ctx("stats", tmp_path / "missing.db", check=False)
    assert cp.returncode == 2 and "context init" in cp.stderr
    assert not (tmp_path / "missing.db").exists()


# ---- the commands --------------------------------------------------------------------

def test_cli_commands(tmp_path):
    rng = random.Random()
    db = tmp_path / "c.db"
    ctx("init", db)
    a = int(ctxm("add", db, "--text", "The lighthouse keeper polished the brass lamp every evening.",
                 "--meta", '{"source": "notes", "n": 1}').stdout)
    f1, f2 = tmp_path / "a.txt", tmp_path / "b.txt"
    long_text = ". ".join(rand_words(rng, 8) for _ in range(8))  # several chunks of 16 tokens
    f1.write_text(long_text)
    f2.write_text("Volcanic soil is rich in minerals that help vineyards.")
    out = ctxm("add", db, "--file", f1, f2, "--kind", "document", "--chunk-tokens", "16", "--link", f"{a}:cites", "--json").stdout
    docs = [json.loads(l) for l in out.splitlines()]
    assert len(docs) == 2 and docs[0]["chunks"] > 3 and docs[1]["chunks"] == 1
    big = docs[0]["id"]
    jl = tmp_path / "in.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t, "kind": k, "meta": {"j": i}}) for i, (t, k) in
                            enumerate([("a short note about owls", "note"), ("user said hello", "message")])) + "\n")
    ids = [int(x) for x in ctxm("add", db, "--jsonl", jl).stdout.split()]
    assert len(ids) == 2
    # the file, read independently
    c = db_conn(db)
    kinds = dict(c.execute("SELECT id, kind FROM nodes"))
    assert kinds[a] == "document" and kinds[ids[0]] == "note" and kinds[ids[1]] == "message"
    assert json.loads(c.execute("SELECT meta FROM nodes WHERE id = ?", (a,)).fetchone()[0]) == {"n": 1, "source": "notes"}
    chunks = [r[0] for r in c.execute("SELECT dst FROM edges WHERE src = ? AND relation = 'chunk' ORDER BY dst", (big,))]
    assert len(chunks) == docs[0]["chunks"] == c.execute("SELECT parts FROM nodes WHERE id = ?", (big,)).fetchone()[0]
    nexts = c.execute("SELECT src, dst FROM edges WHERE relation = 'next' AND src IN (%s)" % ",".join(map(str, chunks))).fetchall()
    assert sorted(nexts) == list(zip(chunks, chunks[1:]))
    assert c.execute("SELECT count(*) FROM edges WHERE src = ? AND dst = ? AND relation = 'cites'", (big, a)).fetchone()[0] == 1
    # token windows of a lossless tokenizer: each chunk is a piece of the document, the first
    # its start, the last its end, and each overlaps the next
    ct = [c.execute("SELECT text FROM nodes WHERE id = ?", (i,)).fetchone()[0] for i in chunks]
    assert all(t in long_text for t in ct)
    assert long_text.startswith(ct[0]) and long_text.endswith(ct[-1])
    for x, y in zip(ct, ct[1:]):
        assert long_text.index(y) < long_text.index(x) + len(x)
    c.close()
    vec, models, dims = vectors(db)
    assert models == {MODEL_ID} and dims == {576}
    assert big not in vec and all(ch in vec for ch in chunks)
    for v in vec.values():
        assert abs(np.linalg.norm(v) - 1) < 1e-4

    # show / link / stats
    s = json.loads(ctx("show", db, chunks[1], "--json").stdout)
    assert s["kind"] == "chunk" and s["parent"] == big
    cp = ctx("link", db, ids[0], ids[1], "mentions", "--weight", "0.5")
    assert "mentions" in cp.stdout
    st = json.loads(ctx("stats", db, "--json").stdout)
    assert st["nodes"] == 5 + len(chunks) and st["models"] == {MODEL_ID: 4 + len(chunks)}
    assert st["chunks"] == len(chunks) and st["notes"] == 1 and st["messages"] == 1 and st["documents"] == 3

    # export -> import into a fresh file: same graph, same vectors
    exp = ctx("export", db).stdout
    lines = [json.loads(l) for l in exp.splitlines()]
    assert sum(l["type"] == "node" for l in lines) == st["nodes"] and sum(l["type"] == "edge" for l in lines) == st["edges"]
    ef = tmp_path / "e.jsonl"
    ef.write_text(exp)
    db2 = tmp_path / "d.db"
    ctx("init", db2)
    cp = ctx("import", db2, ef)
    assert f"imported {st['nodes']} nodes, {st['edges']} edges" in cp.stdout
    assert ctx("export", db2).stdout == exp  # fresh file: the same ids
    v2, _, _ = vectors(db2)
    assert v2.keys() == vec.keys() and all(np.array_equal(v2[k], vec[k]) for k in vec)
    consistency(db2)

    # rm: the document goes with its chunks, their vectors, FTS rows and edges
    cp = ctx("rm", db, big)
    c = db_conn(db)
    assert c.execute("SELECT count(*) FROM nodes WHERE id IN (%s)" % ",".join(map(str, chunks + [big]))).fetchone()[0] == 0
    assert c.execute("SELECT count(*) FROM embeddings WHERE node IN (%s)" % ",".join(map(str, chunks))).fetchone()[0] == 0
    assert c.execute("SELECT count(*) FROM fts WHERE rowid IN (%s)" % ",".join(map(str, chunks))).fetchone()[0] == 0
    assert c.execute("SELECT count(*) FROM edges WHERE src = ? OR dst = ?", (big, big)).fetchone()[0] == 0
    c.close()
    consistency(db)


def test_bad_input(tmp_path):
    db = tmp_path / "c.db"
    ctx("init", db)
    cases = [
        (["add", db, "--text", "x", "--meta", "{not json"], 2, "JSON"),
        (["add", db, "--text", "x", "--meta", "[1, 2]"], 2, "object"),
        (["add", db, "--text", "x", "--kind", "chunk"], 1, "--kind"),
        (["add", db, "--text", "x", "--link", "99:cites"], 2, "99"),
        (["add", db, "--text", "x", "--link", "nope"], 1, "--link"),
        (["add", db, "--text", "   "], 2, "empty"),
        (["add", db, "--file", tmp_path / "none.txt"], 2, "none.txt"),
        (["add", tmp_path / "missing.db", "--text", "x"], 2, "context init"),
        (["search", db, "x", "-k", "0"], 1, "-k"),
        (["search", db, "x", "--mode", "psychic"], 1, "--mode"),
    ]
    for args, rc, msg in cases:
        cp = ctxm(*args, check=False)
        assert cp.returncode == rc and msg in cp.stderr, (args, cp.returncode, cp.stderr)
        assert "Sanitizer" not in cp.stderr and "runtime error" not in cp.stderr
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "fine"}\n{"text": 5}\n')
    cp = ctxm("add", db, "--jsonl", bad_jsonl, check=False)
    assert cp.returncode == 2 and "line 2" in cp.stderr
    for args, rc, msg in [
        (["add", db, "--text", "x"], 1, "-m MODEL"),
        (["search", db, "x", "--mode", "hybrid"], 1, "-m MODEL"),
        (["show", db, "12345"], 2, "does not exist"),
        (["show", db, "abc"], 1, "node id"),
        (["rm", db, "12345"], 2, "does not exist"),
        (["link", db, "1", "12345", "r"], 2, "does not exist"),
        (["import", db, tmp_path / "none.jsonl"], 2, "none.jsonl"),
        (["frobnicate", db], 1, "unknown command"),
        (["init"], 1, "usage"),
    ]:
        cp = ctx(*args, check=False)
        assert cp.returncode == rc and msg in cp.stderr, (args, cp.returncode, cp.stderr)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type":"node","id":1,"kind":"note","text":"ok"}\n{"type":"edge","src":1,"dst":9,"relation":"r"}\n')
    cp = ctx("import", db, broken, check=False)
    assert cp.returncode == 2 and "line 2" in cp.stderr
    assert json.loads(ctx("stats", db, "--json").stdout)["nodes"] == 1  # the good 'fine' line only; import rolled back
    consistency(db)


# ---- search against independent references ----------------------------------------------

def test_vectors_match_llamacpp_and_numpy_ranks(tmp_path):
    rng = random.Random()
    db = tmp_path / "v.db"
    ctx("init", db)
    topics = ["the moon orbits the earth", "bread is baked in an oven", "a violin has four strings",
              "rivers flow into the sea", "chess is a board game", "penguins live in antarctica",
              "the heart pumps blood", "volcanoes erupt lava", "bees make honey", "trains run on rails"]
    rng.shuffle(topics)
    jl = tmp_path / "t.jsonl"
    jl.write_text("".join(json.dumps({"text": t, "kind": "note"}) + "\n" for t in topics))
    ids = [int(x) for x in ctxm("add", db, "--jsonl", jl).stdout.split()]
    vec, _, _ = vectors(db)
    from llama_cpp import Llama
    ref = Llama(str(SMOLLM2), embedding=True, pooling_type=1, n_ctx=64, verbose=False)
    for i, t in zip(ids, topics[:4]):
        r = np.array(ref.embed(t, normalize=True), dtype=np.float64)
        assert float(r @ vec[i]) > 0.99, t
    # vector search with a stored text as the query: ranks = numpy's cosine order
    q = ids[rng.randrange(len(ids))]
    text = dict(zip(ids, topics))[q]
    got = json.loads(ctxm("search", db, text, "--mode", "vector", "-k", "10", "--json").stdout)["results"]
    mat = np.stack([vec[i] for i in ids]).astype(np.float64)
    cos = mat @ vec[q] / (np.linalg.norm(mat, axis=1) * np.linalg.norm(vec[q]))
    want = [ids[j] for j in np.argsort(-cos, kind="stable")]
    assert got[0]["id"] == q and abs(got[0]["vector"] - 1) < 1e-4
    assert [h["id"] for h in got] == want
    assert [h["vector"] for h in got] == pytest.approx([float(c) for c in sorted(cos, reverse=True)], abs=1e-5)


def test_keyword_order_matches_sqlite_bm25(tmp_path):
    rng = random.Random()
    vocab = [rand_token(rng, rng.randint(5, 8)) for _ in range(40)]  # 5+ letters: never one of the stopwords
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 30))) for _ in range(60)]
    db = tmp_path / "k.db"
    ctx("init", db)
    jl = tmp_path / "k.jsonl"
    jl.write_text("".join(json.dumps({"text": t, "kind": "note"}) + "\n" for t in texts))
    # keyword search needs no vectors: stored through import (no model)
    with open(jl) as f:
        nodes = [json.dumps({"type": "node", "id": i + 1, "kind": "note", "text": json.loads(l)["text"]}) for i, l in enumerate(f)]
    (tmp_path / "n.jsonl").write_text("\n".join(nodes) + "\n")
    ctx("import", db, tmp_path / "n.jsonl")
    ref = sqlite3.connect(":memory:")
    ref.execute("CREATE VIRTUAL TABLE f USING fts5(text)")
    ref.executemany("INSERT INTO f(rowid, text) VALUES(?, ?)", [(i + 1, t) for i, t in enumerate(texts)])
    for _ in range(5):
        words = rng.sample(vocab, 2)
        want = ref.execute("SELECT rowid, bm25(f) FROM f WHERE f MATCH ? ORDER BY bm25(f), rowid LIMIT 8",
                           (" OR ".join(f'"{w}"' for w in words),)).fetchall()
        got = json.loads(ctx("search", db, " ".join(words) + "?", "--mode", "keyword", "-k", "8", "--json").stdout)["results"]
        assert [h["id"] for h in got] == [r[0] for r in want]
        assert [h["keyword"] for h in got] == pytest.approx([-r[1] for r in want], rel=1e-9)


def test_graph_expansion_brings_linked_chunks(tmp_path):
    rng = random.Random()
    db = tmp_path / "g.db"
    ctx("init", db)
    marker = rand_token(rng, 12)
    body = ". ".join(rand_words(rng, 8) for _ in range(5))
    f = tmp_path / "doc.txt"
    f.write_text(f"{marker} {body}")
    d = json.loads(ctxm("add", db, "--file", f, "--chunk-tokens", "16", "--json").stdout)
    assert d["chunks"] >= 3
    c = db_conn(db)
    chunks = [r[0] for r in c.execute("SELECT dst FROM edges WHERE src = ? AND relation = 'chunk' ORDER BY dst", (d["id"],))]
    c.close()
    hit = json.loads(ctx("search", db, marker, "--mode", "keyword", "-k", "1", "--json").stdout)["results"]
    assert [h["id"] for h in hit] == [chunks[0]]
    exp = json.loads(ctx("search", db, marker, "--mode", "keyword", "-k", "1", "--hops", "1", "--json").stdout)["results"]
    assert [h["id"] for h in exp] == [chunks[0], chunks[1]]  # its "next" chunk; the container is walked, not returned
    assert exp[1]["hop"] == 1 and exp[1]["via"] == chunks[0] and exp[1]["doc"] == d["id"]
    exp2 = json.loads(ctx("search", db, marker, "--mode", "keyword", "-k", "1", "--hops", "2", "--json").stdout)["results"]
    # two hops: through the container every chunk of the document
    assert {h["id"]: h["hop"] for h in exp2} == {ch: (0 if ch == chunks[0] else 1 if ch == chunks[1] else 2) for ch in chunks}
    assert all(h["score"] <= exp2[0]["score"] for h in exp2)


# ---- crash safety and concurrency --------------------------------------------------------

def big_jsonl(path, rng, n, words):
    path.write_text("".join(json.dumps({"text": ". ".join(rand_words(rng, 8) for _ in range(words // 8))}) + "\n"
                            for _ in range(n)))


def test_kill9_during_add_leaves_consistent_db(tmp_path):
    rng = random.Random()
    db = tmp_path / "crash.db"
    ctx("init", db)
    jl = tmp_path / "big.jsonl"
    big_jsonl(jl, rng, 400, 48)  # documents of several 16-token chunks
    before = 0
    for attempt in range(2):
        p = subprocess.Popen([str(BIN_DIR / "rocmforge"), "context", "add", str(db), "--jsonl", str(jl), "-m", str(SMOLLM2),
                              "-t", THREADS, "--chunk-tokens", "16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # wait until it has committed a few documents, then kill at a random moment
        deadline = time.time() + 120
        while time.time() < deadline:
            c = sqlite3.connect(db, timeout=30)
            n = c.execute("SELECT count(*) FROM nodes WHERE kind = 'document'").fetchone()[0]
            c.close()
            if n >= before + 2:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL
        total = consistency(db)
        c = sqlite3.connect(db)
        docs = c.execute("SELECT count(*) FROM nodes WHERE kind = 'document'").fetchone()[0]
        c.close()
        assert before + 2 <= docs < before + 400, (before, docs)
        assert total > docs  # chunks came with them
        before = docs
    # the database stays writable after the kills
    ctxm("add", db, "--text", "after the crash")
    consistency(db)


def test_two_concurrent_writers(tmp_path):
    rng = random.Random()
    db = tmp_path / "two.db"
    ctx("init", db)
    files = []
    for k in range(2):
        f = tmp_path / f"w{k}.jsonl"
        f.write_text("".join(json.dumps({"text": f"writer {k} item {i} " + rand_words(rng, 12), "meta": {"w": k}}) + "\n"
                             for i in range(12)))
        files.append(f)
    procs = [subprocess.Popen([str(BIN_DIR / "rocmforge"), "context", "add", str(db), "--jsonl", str(f), "-m", str(SMOLLM2),
                               "-t", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e
        assert len(o.split()) == 12
    ids = [int(x) for o, _ in outs for x in o.split()]
    assert len(set(ids)) == 24
    c = db_conn(db)
    per = dict(c.execute("SELECT json_extract(meta, '$.w'), count(*) FROM nodes GROUP BY 1").fetchall())
    c.close()
    assert per == {0: 12, 1: 12}
    consistency(db)
