#!/usr/bin/env python3
"""Many open, slow streams through chatwire: how fast a burst of them opens,
what each costs in memory, and what a relayed chunk costs in CPU while they
trickle (an upstream sending one token every --token-delay-ms per stream).

    python3 scripts/bench-open-streams.py --chatwire target/release/chatwire \
        --mock MOCK_BIN --loadgen LOADGEN_BIN [--streams 1000] [--shared]

It drives the mock OpenAI upstream and the gRPC load generator of the project's
shared benchmark harness (kept outside this repository; build them with
`cargo build --release` in its mock-upstream/ and loadgen/). Everything runs
on 127.0.0.1: the mock (one token per stream every 500 ms by default),
chatwire relaying it as `openai:mock`, and the load generator opening
--streams concurrent Stream calls, each on its own HTTP/2 connection, or all on
one (--shared). Printed as one JSON object:

- seconds until 50 / 90 / 99 / 100 % of the streams are open upstream;
- RSS per open stream: (RSS with the streams open - RSS before) / streams open;
- CPU per relayed chunk over a 10 s window once they are open (chatwire's
  utime + stime from /proc, divided by the chunks the mock sent meanwhile).

With --first-delay-ms longer than the run (e.g. 600000) every call is measured
while it waits for its first token, as behind a model that thinks first; the
delay is set on the mock after the warm-up calls, and no chunk is relayed.

chatwire needs two file descriptors per stream (client and upstream): the
script raises its limit to the hard limit, which caps --streams. Beyond about
5,000 streams on one connection (--shared) the load generator's own HTTP/2
layer drops the connection unless its connection window is raised (README,
"HTTP/2"); the harness's load generator has no option for that.
"""
import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

MOCK_PORT, PORT = 9001, 50191


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def mock_stats():
    with urllib.request.urlopen(f"http://127.0.0.1:{MOCK_PORT}/_mock/stats", timeout=5) as r:
        return json.load(r)


def load_h2_bench():
    """scripts/bench-h2-upstream.py as a module: its nginx and TLS set-up, and
    the helpers both scripts use (waiting for a port, CPU time, stopping)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-h2-upstream.py")
    spec = importlib.util.spec_from_file_location("bench_h2_upstream", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chatwire", required=True)
    ap.add_argument("--mock", required=True, help="the harness's mock-upstream binary")
    ap.add_argument("--loadgen", required=True, help="the harness's loadgen binary")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--shared", action="store_true", help="all streams on one HTTP/2 connection")
    ap.add_argument("--token-delay-ms", type=int, default=500)
    ap.add_argument("--first-delay-ms", type=int, default=0,
                    help="the mock's delay before each stream's first token: with a delay longer than the "
                         "run, every call is measured waiting for its first token (as behind a reasoning model)")
    ap.add_argument("--ramp-s", type=float, default=60.0, help="give up waiting for the streams after this")
    ap.add_argument("--h2-upstream", action="store_true",
                    help="relay through nginx (TLS, HTTP/2) in front of the mock, as "
                         "scripts/bench-h2-upstream.py does, instead of the mock's plain HTTP/1.1")
    args = ap.parse_args()

    h2 = load_h2_bench()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for port in (MOCK_PORT, PORT):
        if h2.port_open(port):
            sys.exit(f"port {port} is already in use")
    work = tempfile.mkdtemp(prefix="chatwire-open-streams-")
    print(f"logs in {work}", file=sys.stderr)
    # SIGTERM ends the run like Ctrl-C: the processes started here are killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    config = os.path.join(work, "chatwire.toml")
    with open(config, "w") as f:
        f.write("max_concurrent_streams = 0\nmax_connections = 100000\n")
    procs = []

    def spawn(cmd, env, log):
        p = subprocess.Popen(cmd, env=dict(os.environ, **env), stdout=open(os.path.join(work, log), "w"),
                             stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        mock = spawn([args.mock], {"MOCK_TOKENS": "100000", "MOCK_TOKEN_DELAY_MS": str(args.token_delay_ms)},
                     "mock.log")
        h2.wait_port(MOCK_PORT, mock)
        upstream = {"OPENAI_BASE_URL": f"http://127.0.0.1:{MOCK_PORT}/v1"}
        if args.h2_upstream:
            ca = h2.start_nginx(work, 128, lambda cmd: spawn(cmd, {}, "nginx.log"))
            upstream = {"OPENAI_BASE_URL": f"https://127.0.0.1:{h2.NGINX_PORT}/v1",
                        "CHATWIRE_UPSTREAM_CA": ca}
        cw = spawn([args.chatwire, "--config", config],
                   {"CHATWIRE_ADDR": f"127.0.0.1:{PORT}", "RUST_LOG": "warn",
                    "OPENAI_API_KEY": "sk-mock", **upstream},
                   "chatwire.log")
        h2.wait_port(PORT, cw)
        # A few calls first, so the idle figure is that of a warm process.
        subprocess.run([args.loadgen, "--mode", "grpc", "--url", f"http://127.0.0.1:{PORT}",
                        "--model", "openai:mock", "-c", "8", "-n", "8", "--timeout-s", "2", "--duration-s", "5"],
                       capture_output=True)
        time.sleep(1)
        idle = rss_kib(cw.pid)
        if args.first_delay_ms:  # after the warm-up, which must not wait for it
            h2.mock_config(MOCK_PORT, f"first_delay_ms={args.first_delay_ms}")
        n = args.streams
        cmd = [args.loadgen, "--mode", "grpc", "--url", f"http://127.0.0.1:{PORT}", "--model", "openai:mock",
               "-c", str(n), "-n", str(n), "--timeout-s", "600", "--duration-s", "600", "--threads", "1"]
        if args.shared:
            cmd += ["--grpc-channel", "shared"]
        c0, t0 = h2.cpu_seconds(cw.pid), time.time()
        loadgen = spawn(cmd, {}, "loadgen.log")
        marks, open_now = {}, 0
        while time.time() - t0 < args.ramp_s:
            open_now = mock_stats()["active_streams"]
            for pct in (50, 90, 99, 100):
                if pct not in marks and open_now >= n * pct / 100:
                    marks[pct] = round(time.time() - t0, 2)
            if 100 in marks:
                break
            time.sleep(0.1)
        ramp_cpu_s = h2.cpu_seconds(cw.pid) - c0
        if 100 not in marks:
            print(f"warning: {open_now} of {n} streams open after {args.ramp_s} s", file=sys.stderr)
        time.sleep(3)
        if loadgen.poll() is not None:
            sys.exit(f"the load generator exited ({loadgen.returncode}) with the streams open: see {work}")
        loaded, s0 = rss_kib(cw.pid), mock_stats()
        open_at_rss = s0["active_streams"]
        c1, t1 = h2.cpu_seconds(cw.pid), time.time()
        time.sleep(10)
        s1, c2, t2 = mock_stats(), h2.cpu_seconds(cw.pid), time.time()
        chunks = s1["content_chunks"] - s0["content_chunks"]
        open_now = s1["active_streams"]
        print(json.dumps(dict(
            streams=n, connections="one shared" if args.shared else "one per stream",
            upstream="HTTP/2 over TLS (nginx)" if args.h2_upstream else "HTTP/1.1 (the mock)",
            token_delay_ms=args.token_delay_ms, first_delay_ms=args.first_delay_ms, open=open_now,
            seconds_to_open_pct=marks, ramp_cpu_s=round(ramp_cpu_s, 2),
            rss_idle_mib=round(idle / 1024, 1), rss_loaded_mib=round(loaded / 1024, 1),
            kib_per_open_stream=round((loaded - idle) / max(open_at_rss, 1), 1),
            chunks_per_s=round(chunks / (t2 - t1)),
            cpu_cores=round((c2 - c1) / (t2 - t1), 3),
            # None while every call waits for its first token (no chunk relayed)
            us_per_chunk=round((c2 - c1) * 1e6 / chunks, 1) if chunks else None)))
    except RuntimeError as e:  # a process that did not start, nginx or openssl missing
        sys.exit(str(e))
    finally:
        h2.stop_all(procs)


if __name__ == "__main__":
    main()
