#!/usr/bin/env python3
"""Serving benchmark: aggregate generated tokens/s and time to first token
(p50/p99) at 1, 4 and 16 concurrent streams, `rocmforge serve` against
llama.cpp's server (llama-cpp-python's `llama_cpp.server`), same model,
same machine, same run. llama-cpp-python's server runs one request at a
time (requests wait on a lock), so its concurrency numbers show queueing.

Each level sends `--rounds` x concurrency streaming /v1/completions requests
(temperature 0, --max-tokens each, the same prompt with a per-request
suffix so prompts differ), `concurrency` at a time. A token is one SSE
chunk carrying text (both servers send one chunk per token when no stop
strings are set); TTFT is the time from sending the request to the first
such chunk. Aggregate tokens/s = all tokens of the level / its wall time.
The servers run one after the other, never together.

usage: .venv/bin/python bench/serve-bench.py [-m MODEL] [--threads N]
          [--levels 1,4,16] [--max-tokens 32] [--rounds 2] [--only rocmforge|llama.cpp]
llama.cpp's server needs: pip install fastapi uvicorn sse-starlette starlette-context pydantic-settings
"""
import argparse
import concurrent.futures as cf
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, path, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def start_rocmforge(args, port, slots, log):
    cmd = [str(Path(args.bin_dir) / "rocmforge"), "serve", "-m", args.model, "--port", str(port), "-t", str(args.threads),
           "--parallel", str(slots), "--ctx-size", str(args.ctx), "--max-queue", "256", "--log-level", "warn"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, p, "/health")
    return p


def start_llamacpp(args, port, slots, log):
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", args.model, "--port", str(port), "--host", "127.0.0.1",
           "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads), "--n_ctx", str(args.ctx),
           # queue concurrent requests instead of cutting the running one off (its default)
           "--interrupt_requests", "False"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, p, "/v1/models")
    return p


def one_stream(port, prompt, max_tokens):
    """Returns (ttft seconds or None, tokens)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    ttft, n, buf = None, 0, b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    continue
                j = json.loads(data)
                if j.get("choices") and j["choices"][0].get("text"):
                    n += 1
                    if ttft is None:
                        ttft = time.perf_counter() - t0
    c.close()
    return ttft, n


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


def run_level(port, conc, args):
    prompts = [f"{args.prompt} (request {i})" for i in range(conc * args.rounds)]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(conc) as ex:
        res = list(ex.map(lambda p: one_stream(port, p, args.max_tokens), prompts))
    wall = time.perf_counter() - t0
    ttfts = [r[0] for r in res if r[0] is not None]
    toks = sum(r[1] for r in res)
    return {"concurrency": conc, "requests": len(res), "tokens": toks, "wall_s": wall, "tok_s": toks / wall,
            "ttft_p50": pct(ttfts, 0.5), "ttft_p99": pct(ttfts, 0.99)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct-Q4_1.gguf"))
    ap.add_argument("--bin-dir", default=os.environ.get("RF_BIN_DIR", str(ROOT / "build")))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="requests per stream slot at each level")
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--prompt", default="Write a short story about a robot who learns to paint")
    ap.add_argument("--only", choices=["rocmforge", "llama.cpp"])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    servers = [("rocmforge", start_rocmforge), ("llama.cpp", start_llamacpp)]
    if args.only:
        servers = [s for s in servers if s[0] == args.only]
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} | {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} | threads {args.threads} | model {Path(args.model).name} | "
          f"max_tokens {args.max_tokens} | rounds {args.rounds}")
    print(f"{'server':<10} {'conc':>4} {'reqs':>5} {'tokens':>7} {'wall s':>8} {'tok/s':>8} {'ttft p50':>9} {'ttft p99':>9}")
    results = []
    for name, start in servers:
        with tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False) as log:
            port = free_port()
            # rocmforge decodes every stream of a level together: one slot per stream
            proc = start(args, port, max(levels), log)
            try:
                one_stream(port, "warm up", 4)
                for conc in levels:
                    r = run_level(port, conc, args)
                    r["server"] = name
                    results.append(r)
                    print(f"{name:<10} {conc:>4} {r['requests']:>5} {r['tokens']:>7} {r['wall_s']:>8.2f} {r['tok_s']:>8.2f} "
                          f"{r['ttft_p50']:>9.3f} {r['ttft_p99']:>9.3f}", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
