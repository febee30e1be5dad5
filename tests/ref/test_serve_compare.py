"""tests/gpu/serve_compare.py, the rule gpu-check uses to accept a GPU server's greedy chat
answers against the CPU server's: on its crafted cases, and on real answers of the CPU
server (SmolLM2, real weights) with their top-20 log-probabilities, where the answer
agrees with itself, and an empty answer or a token outside the CPU's top list must fail."""
import importlib.util
import json

from conftest import ROOT
from test_server import Server, request

spec = importlib.util.spec_from_file_location("serve_compare", ROOT / "tests" / "gpu" / "serve_compare.py")
sc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sc)


def ask(srv, i):
    body = {"messages": [{"role": "user", "content": f"Hello, tell me about the number {i}."}],
            "max_tokens": 12, "temperature": 0, "logprobs": True, "top_logprobs": 20}
    st, _, raw = request(srv, "POST", "/v1/chat/completions", body)
    assert st == 200, raw
    return json.loads(raw)["choices"][0]


def test_rule_on_crafted_cases():
    assert sc.self_test()


def test_rule_on_real_answers(real_models):
    srv = Server("--parallel", "2")
    try:
        answers = [ask(srv, i) for i in range(2)]
    finally:
        srv.stop()
    for a in answers:
        steps = a["logprobs"]["content"]
        assert len(steps) > 0 and len(steps[0]["top_logprobs"]) == 20, a
    ok, lines = sc.compare(answers, answers)
    assert ok, lines
    # an answer that ends at once: the model ranks no control token near its first pick
    first = answers[0]["logprobs"]["content"][0]
    assert not any(sc._special(t["token"]) for t in first["top_logprobs"]), first
    empty = [{"message": {"content": ""}, "logprobs": {"content": []}} for _ in answers]
    ok, lines = sc.compare(empty, answers)
    assert not ok and all("ended at step 0" in s for s in lines), lines
    # a first token the CPU does not rank in its top 20
    bad = json.loads(json.dumps(answers))
    bad[0]["logprobs"]["content"][0]["token"] = "\u2603 not a candidate"
    ok, lines = sc.compare(bad, answers)
    assert not ok and "not in its top list" in lines[0], lines
    # the CPU's second choice at the first step: accepted exactly when within the margin
    second = first["top_logprobs"][1]
    flip = json.loads(json.dumps(answers))
    flip[0]["logprobs"]["content"][0]["token"] = second["token"]
    ok, lines = sc.compare(flip, answers)
    assert ok == (first["logprob"] - second["logprob"] <= sc.MARGIN), (lines, first["logprob"], second["logprob"])
