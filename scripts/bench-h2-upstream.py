#!/usr/bin/env python3
"""chatwire relaying an upstream that speaks HTTP/2 over TLS, as real providers
are spoken to: CPU per relayed chunk and tokens/s with fast streams (32 and
256 concurrent calls), and time to first token with slow streams (256 at once).

    python3 scripts/bench-h2-upstream.py --chatwire target/release/chatwire \
        --mock MOCK_BIN --loadgen LOADGEN_BIN [--stream-limit 128]

The upstream is the project's shared benchmark harness's mock OpenAI server
(kept outside this repository; build its mock-upstream/ and loadgen/ with
`cargo build --release`) behind nginx (Debian's `nginx` package, on PATH),
which terminates TLS with a throw-away CA (openssl), speaks HTTP/2 to chatwire
with `http2_max_concurrent_streams` --stream-limit (nginx's default, 128), and
HTTP/1.1 to the mock. chatwire trusts the CA through CHATWIRE_UPSTREAM_CA.
Everything runs on 127.0.0.1. Printed as one JSON object:

- direct_c256: the load generator straight at the mock (SSE), tokens/s;
- fast_c32, fast_c256: 200-token answers as fast as the mock sends them, CPU
  per relayed chunk (chatwire's utime + stime from /proc over the run, divided
  by the chunks the load generator received), tokens/s, errors;
- slow_c256: 512 calls of 200 tokens at 20 ms each (4 s per answer), 256 at
  once: time to first token (ms) and errors. Calls beyond what one HTTP/2
  connection may carry show here as first tokens seconds late.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from bench_common import cpu_seconds, mock_config, port_open, stop_all, wait_port

MOCK_PORT, NGINX_PORT, PORT = 9001, 9443, 50191


def make_tls(d):
    def run(*args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {r.stderr.strip()}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key",
        "-out", f"{d}/ca.pem", "-days", "2", "-subj", "/CN=bench-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/srv.key",
        "-out", f"{d}/srv.csr", "-subj", "/CN=127.0.0.1")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", f"{d}/srv.csr", "-CA", f"{d}/ca.pem", "-CAkey",
        f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/srv.pem", "-days", "2",
        "-extfile", f"{d}/ext.cnf")


NGINX_CONF = """worker_processes 1;
worker_rlimit_nofile 200000;
daemon off;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream mock {{ server 127.0.0.1:{mock}; keepalive 512; }}
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {d}/srv.pem;
    ssl_certificate_key {d}/srv.key;
    http2_max_concurrent_streams {limit};
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""


def find_nginx():
    """nginx's path (Debian puts it in /usr/sbin, off a user's PATH), or None."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def start_nginx(d, stream_limit, spawn):
    """TLS + HTTP/2 on NGINX_PORT in front of the mock, with a CA made in `d`;
    `spawn(cmd)` starts the process. Returns the CA's path, for CHATWIRE_UPSTREAM_CA."""
    nginx = find_nginx()
    if nginx is None or shutil.which("openssl") is None:
        raise RuntimeError("needs nginx and openssl (Debian: apt-get install nginx openssl)")
    make_tls(d)
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(NGINX_CONF.format(d=d, mock=MOCK_PORT, port=NGINX_PORT, limit=stream_limit))
    proc = spawn([nginx, "-c", f"{d}/nginx.conf"])
    wait_port(NGINX_PORT, proc)
    return f"{d}/ca.pem"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chatwire", required=True)
    ap.add_argument("--mock", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--stream-limit", type=int, default=128)
    a = ap.parse_args()
    for port in (MOCK_PORT, NGINX_PORT, PORT):
        if port_open(port):
            raise SystemExit(f"port {port} is already in use")
    d = tempfile.mkdtemp(prefix="chatwire-h2-bench-")
    procs = []
    ok = False
    try:
        procs.append(subprocess.Popen(
            [a.mock], env={**os.environ, "MOCK_ADDR": f"127.0.0.1:{MOCK_PORT}", "MOCK_WORKERS": "1"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(MOCK_PORT, procs[-1])

        def spawn(cmd):
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                          stderr=open(f"{d}/nginx.log", "w")))
            return procs[-1]

        ca = start_nginx(d, a.stream_limit, spawn)
        env = {**os.environ, "OPENAI_BASE_URL": f"https://127.0.0.1:{NGINX_PORT}/v1",
               "OPENAI_API_KEY": "sk-bench", "CHATWIRE_UPSTREAM_CA": ca,
               "CHATWIRE_ADDR": f"127.0.0.1:{PORT}", "RUST_LOG": "warn"}
        env.pop("CHATWIRE_CONFIG", None)
        chatwire = subprocess.Popen([a.chatwire], env=env, stdout=subprocess.DEVNULL,
                                    stderr=open(f"{d}/chatwire.log", "w"))
        procs.append(chatwire)
        wait_port(PORT, chatwire)

        def load(c, n, mode="grpc", url=f"http://127.0.0.1:{PORT}", model="openai:mock"):
            out = subprocess.run(
                [a.loadgen, "--url", url, "--mode", mode, "--model", model, "-c", str(c),
                 "-n", str(n), "--timeout-s", "90", "--threads", "1"],
                capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
            return json.loads(out.stdout)

        result = {}
        mock_config(MOCK_PORT, "tokens=200&first_delay_ms=0&token_delay_ms=0")
        direct = load(256, 2560, "openai-sse", f"http://127.0.0.1:{MOCK_PORT}/v1/chat/completions", "mock")
        result["direct_c256"] = {"tokens_per_s": direct.get("tokens_per_s")}
        load(32, 256)  # warm-up
        for c, n in ((32, 3200), (256, 2560)):
            before = cpu_seconds(chatwire.pid)
            r = load(c, n)
            used = cpu_seconds(chatwire.pid) - before
            result[f"fast_c{c}"] = {
                "us_per_chunk": round(used / max(r.get("deltas_total") or 0, 1) * 1e6, 2),
                "tokens_per_s": r.get("tokens_per_s"),
                "errors": r.get("errors"),
            }
        mock_config(MOCK_PORT, "tokens=200&first_delay_ms=0&token_delay_ms=20")
        r = load(256, 512)
        result["slow_c256"] = {"ttft_ms": {k: r["ttft_ms"].get(k) for k in ("p50", "p90", "p99", "max")},
                               "errors": r.get("errors")}
        print(json.dumps(result))
        ok = True
    except (RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
    finally:
        stop_all(procs)
        if not ok:
            for log in ("chatwire.log", "nginx.log", "error.log"):
                path = os.path.join(d, log)
                if os.path.exists(path):
                    tail = open(path, errors="replace").read()[-3000:]
                    if tail.strip():
                        print(f"--- {log} (last lines)\n{tail}", file=sys.stderr)
        shutil.rmtree(d, ignore_errors=True)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
