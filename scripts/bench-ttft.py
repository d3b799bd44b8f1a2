#!/usr/bin/env python3
"""Time to first token (at concurrency 1 unless -c), with enough calls for a p99: straight
at the mock upstream, then through chatwire with each of several worker-thread
counts (`--worker-threads`), runs alternating.

    python3 scripts/bench-ttft.py --chatwire target/release/chatwire \
        --mock MOCK_BIN --loadgen LOADGEN_BIN [--workers 2,1] [--calls 1000] \
        [--reps 3] [--models openai:mock,anthropic:mock] [--delay-ms 0] [--pin] \
        [-c 1] [--shared]

The mock OpenAI / Anthropic upstream and the gRPC load generator are the
project's shared benchmark harness's (kept outside this repository; build
their mock-upstream/ and loadgen/ with `cargo build --release`). Everything
runs on 127.0.0.1. Per repetition: --calls calls of 200 tokens straight at the
mock (the direct path), then, for each worker count, a fresh chatwire, 50
warm-up calls and --calls calls per model. With --pin, chatwire runs on CPU 1
and the mock and the load generator on another (`taskset`; the first two CPUs this
process may use), so chatwire's threads do not compete with them for a CPU.
The direct path is the load generator's OpenAI SSE mode for both upstreams, as
in the harness's driver.

With -c N, N calls at once (each on its own gRPC connection, or all on one
with --shared), the direct path at the same concurrency.

Printed as one JSON object: per path, each repetition's p50 and p99 (ms), and
the added p50 / p99 against the same repetition's direct path.
"""
import argparse
import json
import os
import subprocess

from bench_common import mock_config, port_open, stop_all, wait_port

MOCK_PORT, PORT = 9071, 50621


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chatwire", required=True, help="a release build of chatwire")
    ap.add_argument("--mock", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--workers", default="2,1", help="worker-thread counts to compare, comma-separated")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default="openai:mock,anthropic:mock")
    ap.add_argument("--delay-ms", type=int, default=0, help="the mock's delay before the first token")
    ap.add_argument("--pin", action="store_true", help="chatwire on CPU 1, mock and load generator on CPU 0")
    ap.add_argument("-c", "--concurrency", type=int, default=1,
                    help="calls at once (the load generator's -c; one gRPC connection per call unless --shared)")
    ap.add_argument("--shared", action="store_true", help="every call on one gRPC connection")
    args = ap.parse_args()
    for port in (MOCK_PORT, PORT):
        if port_open(port):
            raise SystemExit(f"port {port} is already in use")
    pin_other, pin_chatwire = [], []
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--pin needs two CPUs")
        pin_other, pin_chatwire = ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]

    def loadgen(mode, url, model, n):
        channel = ["--grpc-channel", "shared"] if args.shared and mode == "grpc" else []
        p = subprocess.run(
            pin_other + [args.loadgen, "--mode", mode, "--url", url, "--model", model,
                         "-c", str(args.concurrency), "-n", str(n),
                         "--timeout-s", "60", "--duration-s", "600", "--threads", "1"] + channel,
            capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f"load generator failed: {p.stderr[-2000:]}")
        r = json.loads(p.stdout)
        if r.get("errors") or not r["ttft_ms"].get("p99"):
            raise RuntimeError(f"calls failed: {r}")
        return r["ttft_ms"]

    mock = subprocess.Popen(pin_other + [args.mock], env=dict(os.environ, MOCK_ADDR=f"127.0.0.1:{MOCK_PORT}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = {}
    try:
        wait_port(MOCK_PORT, mock, 10)
        mock_config(MOCK_PORT, f"tokens=200&first_delay_ms={args.delay_ms}&token_delay_ms=0")
        for rep in range(args.reps):
            direct = loadgen("openai-sse", f"http://127.0.0.1:{MOCK_PORT}/v1/chat/completions", "mock", args.calls)
            runs.setdefault("direct", []).append(dict(p50=direct["p50"], p99=direct["p99"]))
            for workers in args.workers.split(","):
                env = {k: v for k, v in os.environ.items() if not k.startswith("CHATWIRE_")}
                env.update(CHATWIRE_ADDR=f"127.0.0.1:{PORT}", CHATWIRE_WORKER_THREADS=workers,
                           RUST_LOG="warn", OPENAI_API_KEY="sk-bench", ANTHROPIC_API_KEY="sk-bench",
                           OPENAI_BASE_URL=f"http://127.0.0.1:{MOCK_PORT}/v1",
                           ANTHROPIC_BASE_URL=f"http://127.0.0.1:{MOCK_PORT}")
                cw = subprocess.Popen(pin_chatwire + [args.chatwire], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_port(PORT, cw, 30)
                    for model in args.models.split(","):
                        loadgen("grpc", f"http://127.0.0.1:{PORT}", model, max(50, 2 * args.concurrency))
                        t = loadgen("grpc", f"http://127.0.0.1:{PORT}", model, args.calls)
                        runs.setdefault(f"{model}, {workers} worker threads", []).append(dict(
                            p50=t["p50"], p99=t["p99"],
                            added_p50=round(t["p50"] - direct["p50"], 3),
                            added_p99=round(t["p99"] - direct["p99"], 3)))
                finally:
                    stop_all([cw])
    finally:
        stop_all([mock])
    print(json.dumps(dict(calls=args.calls, concurrency=args.concurrency, shared=args.shared,
                          delay_ms=args.delay_ms, pinned=args.pin, runs=runs), indent=1))


if __name__ == "__main__":
    main()
