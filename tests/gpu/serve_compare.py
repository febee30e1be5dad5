#!/usr/bin/env python3
"""serve_compare.py - does a GPU server's greedy chat answer agree with the CPU server's?

gpu-check asks `serve --gpu-layers auto` and `serve --device cpu` the same greedy chat
requests with `logprobs` and `top_logprobs` (OpenAI chat format) and passes the two JSON
answer lists here. Identical text is too strict a test: both backends quantize activations
to q8, which moves logits by about 2% of their spread, and a model with random weights has
a nearly flat distribution (its top two tokens are often 0.01 nats apart), so the argmax may
flip without any bug. The rule instead, per answer, step by step while the tokens agree:
  - a step where the GPU picked another token passes only if that token is in the CPU's
    top list within MARGIN nats of the CPU's pick; comparison then stops (the contexts
    differ from there on);
  - a GPU answer that ends early (or runs on where the CPU's ended) passes only if the
    CPU's top list at that step holds a special token (one that ends an answer) within
    MARGIN nats of its pick; likewise the other way round.
An answer that is empty where the CPU's is not, or a token the CPU ranks nowhere near its
pick, fails. usage: serve_compare.py GPU.json CPU.json | serve_compare.py --self-test
"""
import json
import sys

MARGIN = 0.25  # nats


def _special(tok):
    """A control token's text, such as <|im_end|> or </s>."""
    return tok.startswith("<") and tok.endswith(">") and " " not in tok


def _steps(answer):
    return (answer.get("logprobs") or {}).get("content") or []


def compare_one(gpu, cpu, margin=MARGIN):
    """(ok, reason) for one choice of each server (dicts with logprobs.content)."""
    gs, cs = _steps(gpu), _steps(cpu)
    for i in range(max(len(gs), len(cs))):
        if i >= len(gs) or i >= len(cs):
            ended = "gpu" if i >= len(gs) else "cpu"
            # one side ended at step i: the other side's top list must hold an ending token near its pick
            ref = cs[i] if ended == "gpu" else gs[i]
            near = [t for t in ref.get("top_logprobs", []) if _special(t["token"]) and t["logprob"] >= ref["logprob"] - margin]
            if near:
                return True, f"{ended} ended at step {i}, where the other ranks {near[0]['token']!r} within {margin}"
            return False, f"{ended} ended at step {i}; the other side picked {ref['token']!r} with no ending token near it"
        g, c = gs[i], cs[i]
        if g["token"] == c["token"]:
            continue
        alt = [t for t in c.get("top_logprobs", []) if t["token"] == g["token"]]
        if alt and alt[0]["logprob"] >= c["logprob"] - margin:
            return True, (f"near-tie at step {i}: gpu {g['token']!r}, cpu {c['token']!r} "
                          f"({c['logprob'] - alt[0]['logprob']:.3f} nats apart)")
        where = f"{c['logprob'] - alt[0]['logprob']:.3f} nats below" if alt else "not in its top list"
        return False, f"step {i}: gpu {g['token']!r}, cpu {c['token']!r}; the gpu's token is {where} the cpu's pick"
    return True, "identical"


def compare(gpu_answers, cpu_answers, margin=MARGIN):
    ok, lines = True, []
    if len(gpu_answers) != len(cpu_answers):
        return False, [f"{len(gpu_answers)} gpu answers, {len(cpu_answers)} cpu answers"]
    for k, (g, c) in enumerate(zip(gpu_answers, cpu_answers)):
        good, why = compare_one(g, c, margin)
        ok &= good
        lines.append(f"answer {k}: {'ok' if good else 'FAIL'}: {why}")
    return ok, lines


def _step(tok, lp, tops):
    return {"token": tok, "logprob": lp, "top_logprobs": [{"token": t, "logprob": l} for t, l in tops]}


def self_test():
    a = _step("a", -1.0, [("a", -1.0), ("b", -1.1), ("<|im_end|>", -1.2)])
    b = _step("b", -1.0, [("b", -1.0), ("a", -1.05)])
    x = _step("x", -1.0, [("x", -1.0), ("y", -1.01)])
    ans = lambda *steps: {"logprobs": {"content": list(steps)}}
    cases = [  # (gpu, cpu, expected)
        (ans(a, x), ans(a, x), True),                   # identical
        (ans(b), ans(a, x), True),                      # near-tie flip at step 0
        (ans(b), ans(_step("a", -1.0, [("a", -1.0), ("b", -1.6)])), False),  # flip far from a tie
        (ans(_step("z", -1.0, [])), ans(a), False),     # a token the cpu does not rank
        (ans(), ans(a), True),                          # gpu ended where the cpu ranks an end token near
        (ans(), ans(x), False),                         # gpu ended, nothing ending near the cpu's pick
        (ans(a), ans(), True),                          # cpu ended where the gpu ranks an end token near
        (ans(a, b), ans(a, x), False),                  # agree, then a token the cpu does not rank
    ]
    bad = 0
    for i, (g, c, want) in enumerate(cases):
        got, why = compare_one(g, c)
        if got != want:
            bad += 1
            print(f"self-test case {i}: got {got} ({why}), want {want}")
    print(f"serve_compare self-test: {len(cases) - bad} of {len(cases)} cases as expected")
    return bad == 0


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return 0 if self_test() else 1
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        gpu = json.load(f)
    with open(argv[2]) as f:
        cpu = json.load(f)
    ok, lines = compare(gpu, cpu)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
