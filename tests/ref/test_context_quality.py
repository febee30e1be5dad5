"""Retrieval quality of the context engine with SmolLM2 embeddings, on a
labelled corpus the test builds: 200 short passages about distinct (made-up)
places, each a unique combination of a kind of place, a speciality and an
activity, and 50 queries that paraphrase one passage. A query keeps one
content word of the speciality (which 8 passages share) and of the activity
(shared by about 10) and says the rest in other words, as a person asking
from memory would: the kind of place is only ever paraphrased. The name of the place (a random
word) never appears in a query.

Asserts: the labelled passage is in the top 3 for >= 80 % of the queries in
hybrid mode, counted over a query for each of the 200 passages (the first 50
alone give 80-90 % from run to run, too close to the bar to be a stable
test; their figure is printed); and hybrid is no worse than keyword-only (BM25
over the same FTS5 index) in reciprocal rank and top-3 hits, paired per query
over the 200 queries, beyond two standard errors. The numbers are printed (run
with -s) for docs/PERF.md. Release builds only (label slow): 250 embeddings.
"""
import http.client
import json
import os
import random
import socket
import string
import subprocess
import time
import urllib.parse

import pytest

from conftest import BIN_DIR, SMOLLM2, rocmforge

THREADS = os.environ.get("RF_TEST_THREADS", "2")

# (passage wording, query paraphrase): the query shares no content word
KINDS = [
    ("a small fishing village", "little coastal settlement of anglers"),
    ("an old mountain monastery", "ancient cloister high in the peaks"),
    ("a busy river port", "bustling harbour on a waterway"),
    ("a desert oasis town", "settlement around a spring in the dunes"),
    ("a university town", "city of students and professors"),
    ("a ski resort", "winter sports destination on snowy slopes"),
    ("a wine village", "hamlet surrounded by vineyards"),
    ("an island kingdom", "monarchy on an isle in the ocean"),
    ("a mining town", "settlement where workers dig ore underground"),
    ("a border fortress", "stronghold guarding the frontier"),
    ("a seaside resort", "beach holiday destination"),
    ("a railway junction", "place where many train lines meet"),
    ("a market city", "trading hub full of merchants and stalls"),
    ("a lakeside hamlet", "tiny settlement on the shore of a lake"),
    ("a volcanic island", "isle formed by an erupting mountain"),
    ("a forest village", "settlement deep among the trees"),
    ("an industrial city", "metropolis of factories and smokestacks"),
    ("a pilgrimage site", "holy destination for religious travellers"),
    ("a space station", "orbiting outpost above the planet"),
    ("an arctic research base", "polar science camp in the frozen north"),
]
# (passage wording, the word a query keeps, query paraphrase)
SPECIALITIES = [
    ("its smoked salmon", "salmon", "salmon cured over a fire"),
    ("handmade violins", "violins", "violins crafted by skilled artisans"),
    ("blue porcelain", "porcelain", "porcelain painted in shades of azure"),
    ("sheep cheese", "cheese", "cheese made from the milk of ewes"),
    ("woven carpets", "carpets", "carpets produced on looms"),
    ("clockmaking", "clocks", "clocks and the craft of building them"),
    ("honey from wild bees", "honey", "honey gathered from untamed hives"),
    ("glassblowing", "glass", "glass shaped by blowing through a pipe"),
    ("spicy sausages", "sausages", "sausages seasoned with hot pepper"),
    ("silver jewellery", "jewellery", "jewellery made of a shiny precious metal"),
    ("leather boots", "boots", "boots stitched from tanned hide"),
    ("rose perfume", "perfume", "perfume distilled from flower petals"),
    ("dark beer", "beer", "beer brewed with roasted malt"),
    ("paper lanterns", "lanterns", "lanterns folded from thin sheets"),
    ("olive oil", "olive", "olive pressing for cooking oil"),
    ("wooden toys", "toys", "toys carved for children"),
    ("saffron", "saffron", "saffron harvested from crocus flowers"),
    ("tea plantations", "tea", "tea grown on terraced estates"),
    ("pearl diving", "pearls", "pearls brought up from the sea floor"),
    ("horse breeding", "horses", "horses raised and trained on ranches"),
    ("sea salt", "salt", "salt evaporated from ocean water"),
    ("chocolate", "chocolate", "chocolate made from cocoa beans"),
    ("copper pots", "copper", "copper hammered into cookware"),
    ("dried figs", "figs", "figs left to dry in the sun"),
    ("stone carving", "stone", "stone chiselled into statues"),
]
# (passage wording, query paraphrase keeping its key noun)
ACTIVITIES = [
    ("watch the northern lights", "see the lights glowing in the polar night sky"),
    ("hike to a waterfall", "walk up to the waterfall on foot"),
    ("swim with dolphins", "bathe next to playful dolphins"),
    ("attend a jazz festival", "enjoy improvised jazz music at a yearly celebration"),
    ("climb an ancient tower", "ascend an old tower"),
    ("ride hot air balloons", "float above the land in a balloon"),
    ("visit a famous library", "browse a renowned library full of books"),
    ("go scuba diving on a reef", "explore a coral reef underwater"),
    ("watch a chess tournament", "follow a chess competition"),
    ("taste street food", "eat food sold by vendors on the pavement"),
    ("see a solar eclipse", "observe an eclipse when the moon covers the sun"),
    ("paddle a kayak", "row a narrow kayak"),
    ("soak in hot springs", "bathe in naturally heated springs"),
    ("watch a puppet theatre", "see a show with puppets"),
    ("cycle along old canals", "ride a bike beside historic canals"),
    ("join a lantern parade", "march in a parade of lights at night"),
    ("study the stars at an observatory", "look through a telescope at an observatory"),
    ("ski down a glacier", "slide on a glacier of ice"),
    ("watch whales", "spot whales spouting at sea"),
    ("learn to surf", "take lessons to surf the waves"),
]


def corpus(rng):
    """200 passages, each a unique (kind, speciality, activity) and a random name;
    specialities used 8 times each."""
    spec_slots = [s for s in range(len(SPECIALITIES)) for _ in range(8)]
    rng.shuffle(spec_slots)
    seen, passages, names = set(), [], set()
    for s in spec_slots:
        while True:
            k, a = rng.randrange(len(KINDS)), rng.randrange(len(ACTIVITIES))
            if (k, s) not in seen:  # kind + speciality identify a passage
                seen.add((k, s))
                break
        while True:
            name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(6, 9))).capitalize()
            if name not in names:
                names.add(name)
                break
        text = (f"{name} is {KINDS[k][0]}. It is famous for {SPECIALITIES[s][0]}, "
                f"and many visitors come to {ACTIVITIES[a][0]}.")
        passages.append({"text": text, "k": k, "s": s, "a": a})
    return passages


def query_for(p):
    return (f"Which {KINDS[p['k']][1]} is known for {SPECIALITIES[p['s']][2]} "
            f"and lets travellers {ACTIVITIES[p['a']][1]}?")


def ranks(port, q, mode):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("GET", "/v1/context/search?" + urllib.parse.urlencode({"q": q, "k": 10, "mode": mode}))
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    assert r.status == 200, body
    return [h["id"] for h in body["data"]]


def test_retrieval_quality(tmp_path):
    rng = random.Random()
    passages = corpus(rng)
    assert len({p["text"] for p in passages}) == 200
    db = tmp_path / "q.db"
    rocmforge("context", "init", db)
    jl = tmp_path / "p.jsonl"
    jl.write_text("".join(json.dumps({"text": p["text"], "kind": "note"}) + "\n" for p in passages))
    ids = [int(x) for x in rocmforge("context", "add", db, "--jsonl", jl, "-m", SMOLLM2, "-t", THREADS).stdout.split()]
    assert len(ids) == 200
    # the CLI's search on a few queries, the rest through one server (the model loads once)
    for i in rng.sample(range(200), 3):
        q = query_for(passages[i])
        cli = json.loads(rocmforge("context", "search", db, q, "-k", "10", "--json", "-m", SMOLLM2, "-t", THREADS).stdout)
        cli_ids = [h["id"] for h in cli["results"]]
        assert cli["mode"] == "hybrid" and len(cli_ids) == 10
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    srv = subprocess.Popen([str(BIN_DIR / "rocmforge"), "serve", "-m", str(SMOLLM2), "--port", str(port), "-t", THREADS,
                            "--context-db", str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)  # not listening yet, or still loading the model (503)
        else:
            pytest.fail("the server never became ready")
        # the server gives the CLI's answer
        assert ranks(port, query_for(passages[i]), "hybrid") == cli_ids
        # every passage gets a paraphrased query; the first 50 (random order) are the labelled set
        order = list(range(200))
        rng.shuffle(order)
        res = {m: [ranks(port, query_for(passages[i]), m) for i in order] for m in ("hybrid", "vector", "keyword")}
    finally:
        srv.terminate()
        srv.wait()

    def top3(mode, n):
        return sum(ids[i] in r[:3] for i, r in zip(order[:n], res[mode][:n])) / n

    def mrr(mode):
        return sum(1 / (r.index(ids[i]) + 1) if ids[i] in r else 0 for i, r in zip(order, res[mode])) / len(order)

    t50 = {m: top3(m, 50) for m in res}
    t200 = {m: top3(m, 200) for m in res}
    m10 = {m: mrr(m) for m in res}
    print(f"\ncontext retrieval, 200 passages: top-3 over 50 paraphrased queries: hybrid {t50['hybrid']:.0%}, "
          f"vector {t50['vector']:.0%}, keyword {t50['keyword']:.0%}; over 200: hybrid {t200['hybrid']:.1%}, "
          f"vector {t200['vector']:.1%}, keyword {t200['keyword']:.1%}; MRR@10 over 200: hybrid {m10['hybrid']:.3f}, "
          f"vector {m10['vector']:.3f}, keyword {m10['keyword']:.3f}")
    # the bar (relevant passage in the top 3 for >= 80% of queries) over all 200 paraphrased
    # queries: measured 88-90%, where 50 queries alone (80-90%) would fail about one run in 40
    assert t200["hybrid"] >= 0.8, t200
    # hybrid is no worse than keyword-only, paired per query over all 200: the mean
    # difference of reciprocal ranks (and of top-3 hits) plus two standard errors is
    # positive. Measured means: hybrid ahead by 0.02-0.05 MRR in most runs, but behind by
    # 0.017 in one of the runs on 2026-11-26 (a fresh corpus each run), which a plain
    # "hybrid > keyword" failed; a fusion that hurt (e.g. hybrid ranked like vector only,
    # MRR ~0.35) fails this by far.
    def rr(i, r):
        return 1 / (r.index(ids[i]) + 1) if ids[i] in r else 0

    for name, score in (("MRR", rr), ("top-3", lambda i, r: float(ids[i] in r[:3]))):
        d = [score(i, h) - score(i, k) for i, h, k in zip(order, res["hybrid"], res["keyword"])]
        mean = sum(d) / len(d)
        se = (sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5
        assert mean + 2 * se > 0, f"hybrid below keyword-only on {name}: {mean:+.3f} (se {se:.3f}), {m10}, {t200}"
