#!/usr/bin/env python3
"""Instructions chatwire executes per relayed chunk and per call, counted by
valgrind's callgrind: a figure that does not move with the machine's load, so
two builds can be compared where CPU time on a shared 2-core VM cannot tell a
few percent apart.

    python3 scripts/bench-instructions.py --chatwire BIN[,BIN2...] \
        --mock MOCK_BIN --loadgen LOADGEN_BIN [--tokens 200] [-c 32] [-n 64] [--reps 2]

The upstream is the project's shared benchmark harness's mock OpenAI server
and its load generator (kept outside this repository; build their
mock-upstream/ and loadgen/ with `cargo build --release`); valgrind is
Debian's `valgrind` package (`callgrind_control` reaches the process through
ptrace, which a container may need allowed). Everything runs on 127.0.0.1;
only chatwire runs under callgrind (the mock and the load generator run
natively, so a slowed chatwire reads the mock's events in larger batches than
it would at full speed: compare builds with each other, not with perf's
figures).

For each binary and repetition (binaries alternate): the mock answers every
call with --tokens tokens as fast as it can; chatwire starts under callgrind;
8 warm-up calls; the counters are zeroed; -n calls at concurrency -c; the
counters are dumped. Printed as one JSON object: per binary, the user-space
instructions per relayed chunk and per call of each repetition (kernel work,
such as socket writes, is not counted).
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from bench_common import mock_config, port_open, wait_port

MOCK_PORT, PORT = 9061, 50611


def loadgen(args, c, n):
    out = subprocess.run(
        [args.loadgen, "--mode", "grpc", "--url", f"http://127.0.0.1:{PORT}", "--model", "openai:mock",
         "-c", str(c), "-n", str(n), "--timeout-s", "300", "--duration-s", "600"],
        capture_output=True, text=True, timeout=900, check=True).stdout
    return json.loads(out)


def one_run(args, binary, workdir, tag):
    out_file = os.path.join(workdir, f"{tag}.callgrind")
    env = dict(os.environ, CHATWIRE_ADDR=f"127.0.0.1:{PORT}", RUST_LOG="warn", OPENAI_API_KEY="sk-bench",
               OPENAI_BASE_URL=f"http://127.0.0.1:{MOCK_PORT}/v1")
    cw = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", binary],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(PORT, cw, 120)
        loadgen(args, 4, 8)
        subprocess.run(["callgrind_control", "-z", str(cw.pid)], capture_output=True, check=True, timeout=60)
        r = loadgen(args, args.c, args.n)
        subprocess.run(["callgrind_control", "-d", str(cw.pid)], capture_output=True, check=True, timeout=60)
    finally:
        cw.terminate()
        try:
            cw.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cw.kill()
            cw.wait(timeout=30)
    # The dump after the zeroing is the first numbered part (<file>.1).
    dumps = sorted(glob.glob(out_file + ".*"))
    text = open(dumps[0]).read() if dumps else ""
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not m or not r.get("deltas_total") or r.get("errors"):
        raise RuntimeError(f"no count for {binary} (or calls failed): {dumps}, {r}")
    instructions = int(m.group(1))
    return dict(chunks=r["deltas_total"], errors=r.get("errors"),
                per_chunk=round(instructions / r["deltas_total"]), per_call=round(instructions / args.n))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chatwire", required=True, help="release build(s) of chatwire, comma-separated")
    ap.add_argument("--mock", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("-c", type=int, default=32)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    for port in (MOCK_PORT, PORT):
        if port_open(port):
            raise SystemExit(f"port {port} is already in use")
    workdir = tempfile.mkdtemp(prefix="chatwire-instructions-")
    mock = subprocess.Popen([args.mock], env=dict(os.environ, MOCK_ADDR=f"127.0.0.1:{MOCK_PORT}", MOCK_WORKERS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    try:
        wait_port(MOCK_PORT, mock, 10)
        mock_config(MOCK_PORT, f"tokens={args.tokens}&first_delay_ms=0&token_delay_ms=0")
        for rep in range(args.reps):
            for i, binary in enumerate(args.chatwire.split(",")):
                r = one_run(args, binary, workdir, f"b{i}-r{rep}")
                results.setdefault(binary, []).append(r)
                print(binary, r, file=sys.stderr, flush=True)
    finally:
        mock.terminate()
        mock.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(dict(tokens=args.tokens, c=args.c, n=args.n, results=results), indent=1))


if __name__ == "__main__":
    main()
