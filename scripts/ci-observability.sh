#!/usr/bin/env bash
# CI: metrics scraped by a real Prometheus (Debian's `prometheus` package).
#
# Starts a mock Anthropic upstream (Python's standard library: a 503 for the
# model `claude-down`, a streamed answer otherwise), chatwire with
# --metrics-addr and a config (retries, an alias with a fallback, scripted fake
# models), and Prometheus scraping chatwire every second — each on a free port
# on 127.0.0.1, Prometheus run directly with a temporary config and TSDB
# (never as a system service). Then it runs calls through the chatwire CLI and
# asks Prometheus's HTTP API (/api/v1/query) for the histograms and counters;
# last, it checks deploy/grafana/chatwire-dashboard.json: valid JSON, every
# panel's PromQL accepted by Prometheus, every metric it names present in the
# real scrape. Prints PASS or FAIL; bounded by timeouts (budget: 3 minutes
# after the build).
#
# Environment (optional): CHATWIRE_BIN (default: cargo build, target/debug/chatwire),
# PROMETHEUS_BIN (default: /usr/bin/prometheus, installed with apt-get when absent),
# OBS_KEEP_LOGS=1 keeps the temporary directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-obs.XXXXXX")"
PIDS=()
START_TS=$(date +%s)

log() { printf '[obs %3ds] %s\n' "$(( $(date +%s) - START_TS ))" "$*" >&2; }
fail() {
    printf '\n[obs] FAIL: %s\n' "$*" >&2
    for f in "$WORK"/*.log; do
        [ -s "$f" ] || continue
        printf '\n--- last lines of %s ---\n' "$(basename "$f")" >&2
        tail -n 20 "$f" >&2
    done
    exit 1
}
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${OBS_KEEP_LOGS:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v python3 >/dev/null || fail "python3 not found"
command -v curl >/dev/null || fail "curl not found"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_until() {
    local secs="$1" what="$2"
    shift 2
    local deadline=$(( $(date +%s) + secs ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not ready after ${secs}s"
        sleep 0.3
    done
}

# ---------------------------------------------------------------- 1. Prometheus and chatwire binaries
PROM="${PROMETHEUS_BIN:-/usr/bin/prometheus}"
if [ ! -x "$PROM" ]; then
    log "installing Debian's prometheus package"
    export DEBIAN_FRONTEND=noninteractive
    timeout 120 apt-get update >"$WORK/apt.log" 2>&1 || fail "apt-get update failed"
    # The package's postinst may try to start a service: policy-rc.d forbids it here.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        REMOVE_POLICY=1
    fi
    timeout 300 apt-get install -y --no-install-recommends prometheus >>"$WORK/apt.log" 2>&1 \
        || fail "apt-get install prometheus failed"
    [ "${REMOVE_POLICY:-0}" = 1 ] && rm -f /usr/sbin/policy-rc.d
    # Whatever the package started, this script runs its own Prometheus.
fi
[ -x "$PROM" ] || fail "prometheus binary $PROM not found"
log "$("$PROM" --version 2>&1 | head -n1)"

if [ -z "${CHATWIRE_BIN:-}" ]; then
    log "cargo build (debug)"
    (cd "$ROOT" && timeout 1800 cargo build --quiet --bin chatwire) >"$WORK/cargo.log" 2>&1 \
        || fail "cargo build failed (see cargo.log)"
    CHATWIRE_BIN="$ROOT/target/debug/chatwire"
fi
T0=$(date +%s)

# ---------------------------------------------------------------- 2. mock upstream
UP_PORT="$(free_port)"
cat >"$WORK/upstream.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def ev(d):
    return f"event: {d['type']}\ndata: {json.dumps(d)}\n\n"

ANSWER = (ev({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
              "model": "claude-mock", "content": [], "stop_reason": None, "stop_sequence": None,
              "usage": {"input_tokens": 12, "output_tokens": 1}}})
          + ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
          + "".join(ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
                    for t in ["one ", "two ", "three ", "four"])
          + ev({"type": "content_block_stop", "index": 0})
          + ev({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 4}})
          + ev({"type": "message_stop"})).encode()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if body.get("model") == "claude-down":
            out = b'{"type":"error","error":{"type":"overloaded_error","message":"down"}}'
            self.send_response(503)
            self.send_header("content-type", "application/json")
        else:
            out = ANSWER
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$WORK/upstream.py" "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

# ---------------------------------------------------------------- 3. chatwire with metrics
CW_PORT="$(free_port)"
METRICS_PORT="$(free_port)"
cat >"$WORK/chatwire.toml" <<'EOF'
[retry]
max_retries = 1
base_backoff_ms = 1
max_backoff_ms = 2
[fake.scripts.hello]
chunks = [{text = "Hel"}, {text = "lo"}, {text = " world"}]
usage = {inputTokens = 7, outputTokens = 3, cacheReadTokens = 2}
[fake.scripts.broken]
chunks = [{text = "par"}, {text = "tial"}]
fail = {afterChunks = 1, code = "UNAVAILABLE"}
[fake.scripts.slow]
chunks = [{text = "late"}]
delayMs = 2000
[models."fake:slow"]
first_chunk_secs = 0.2
[models.flaky]
target = "anthropic:claude-down"
fallbacks = ["anthropic:claude-ok"]
EOF
env -u CHATWIRE_CONFIG -u OTEL_EXPORTER_OTLP_ENDPOINT ANTHROPIC_API_KEY=ci-not-a-key \
    ANTHROPIC_BASE_URL="http://127.0.0.1:$UP_PORT" RUST_LOG=info \
    "$CHATWIRE_BIN" --addr "127.0.0.1:$CW_PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" \
    --config "$WORK/chatwire.toml" >"$WORK/chatwire.log" 2>&1 &
PIDS+=($!)
wait_until 30 "chatwire /metrics" curl -sf --max-time 2 "http://127.0.0.1:$METRICS_PORT/metrics"

# ---------------------------------------------------------------- 4. Prometheus scraping it
PROM_PORT="$(free_port)"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: chatwire
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
mkdir -p "$WORK/tsdb"
"$PROM" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM_URL="http://127.0.0.1:$PROM_PORT"
wait_until 60 "prometheus" curl -sf --max-time 2 "$PROM_URL/-/ready"
log "chatwire on $CW_PORT (metrics $METRICS_PORT), prometheus on $PROM_PORT, upstream on $UP_PORT"

# ---------------------------------------------------------------- 5. calls
cw() { timeout 30 "$CHATWIRE_BIN" "$1" --addr "http://127.0.0.1:$CW_PORT" --model "$2" "${3:-hi}"; }
for i in 1 2 3; do cw stream fake:hello >>"$WORK/calls.log" 2>&1 || fail "stream fake:hello"; done
cw invoke fake:hello >>"$WORK/calls.log" 2>&1 || fail "invoke fake:hello"
cw events fake:hello >>"$WORK/calls.log" 2>&1 || fail "events fake:hello"
cw stream anthropic:claude-ok >>"$WORK/calls.log" 2>&1 || fail "stream anthropic:claude-ok"
cw stream flaky >>"$WORK/calls.log" 2>&1 || fail "stream flaky (retry, then fallback)"
if cw stream fake:broken >>"$WORK/calls.log" 2>&1; then fail "fake:broken should fail"; fi
if cw stream fake:slow >>"$WORK/calls.log" 2>&1; then fail "fake:slow should meet its first-chunk timer"; fi
log "9 calls made"

# ---------------------------------------------------------------- 6. Prometheus's HTTP API
query() {  # prints the value of the query's first sample, or "none"
    curl -sf --max-time 5 -G "$PROM_URL/api/v1/query" --data-urlencode "query=$1" \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["status"]=="success", r; v=r["data"]["result"]; print(v[0]["value"][1] if v else "none")'
}
# Waits until `query` returns a value for which the Python expression `check` (on v) holds.
expect() {
    local what="$1" q="$2" check="$3" v="none"
    local deadline=$(( $(date +%s) + 30 ))
    while :; do
        v="$(query "$q" || echo error)"
        if [ "$v" != none ] && [ "$v" != error ] && python3 -c "import sys; v=float(sys.argv[1]); sys.exit(0 if ($check) else 1)" "$v"; then
            log "ok   $what = $v"
            return 0
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what: $q gave $v, wanted $check"
        sleep 1
    done
}
expect "scrape target up" 'up{job="chatwire"}' 'v == 1'
expect "OK calls (duration histogram count)" 'sum(gen_ai_client_operation_duration_seconds_count{code="OK"})' 'v == 7'
expect "Stream calls of fake:hello" 'sum(gen_ai_client_operation_duration_seconds_count{rpc="Stream",gen_ai_request_model="fake:hello",code="OK"})' 'v == 3'
expect "failed call, by code" 'sum(gen_ai_client_operation_duration_seconds_count{code="UNAVAILABLE",gen_ai_request_model="fake:broken"})' 'v == 1'
expect "TTFT p50 (histogram_quantile)" 'histogram_quantile(0.5, sum by (le) (gen_ai_server_time_to_first_token_seconds_bucket))' 'v > 0 and v < 10'
expect "TTFT observations" 'sum(gen_ai_server_time_to_first_token_seconds_count)' 'v == 8'
expect "added latency p99" 'histogram_quantile(0.99, sum by (le) (chatwire_added_latency_seconds_bucket))' 'v > 0 and v < 1'
expect "inter-chunk gaps (fake:hello, 2 per call x5)" 'sum(chatwire_upstream_inter_chunk_gap_seconds_count{gen_ai_request_model="fake:hello"})' 'v == 10'
expect "output tokens of fake:hello" 'sum(chatwire_tokens_total{gen_ai_request_model="fake:hello",gen_ai_token_type="output"})' 'v == 15'
expect "cache-read tokens" 'sum(chatwire_tokens_total{gen_ai_token_type="cache_read"})' 'v == 10'
expect "token usage histogram (input, anthropic)" 'sum(gen_ai_client_token_usage_sum{gen_ai_provider_name="anthropic",gen_ai_token_type="input"})' 'v == 24'
expect "retries on flaky" 'sum(chatwire_retries_total{gen_ai_request_model="flaky"})' 'v == 1'
expect "fallbacks on flaky" 'sum(chatwire_fallbacks_total{gen_ai_request_model="flaky"})' 'v == 1'
expect "upstream 503s" 'sum(chatwire_upstream_responses_total{http_response_status_code="503"})' 'v == 2'
expect "upstream 200s" 'sum(chatwire_upstream_responses_total{http_response_status_code="200"})' 'v == 2'
expect "upstream TTFB observations" 'sum(chatwire_upstream_time_to_first_byte_seconds_count)' 'v == 4'
expect "errors by reason" 'sum(chatwire_errors_total{reason="SCRIPTED_FAILURE"})' 'v == 1'
expect "first-chunk timer firings" 'sum(chatwire_timer_firings_total{timer="first_chunk"})' 'v == 1'
expect "deadline errors" 'sum(gen_ai_client_operation_duration_seconds_count{code="DEADLINE_EXCEEDED",gen_ai_request_model="fake:slow"})' 'v == 1'
expect "calls in flight" 'sum(chatwire_calls_in_flight)' 'v == 0'

# ---------------------------------------------------------------- 7. the Grafana dashboard
DASH="$ROOT/deploy/grafana/chatwire-dashboard.json"
curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/scrape.txt" || fail "scrape"
python3 - "$DASH" "$WORK/scrape.txt" "$PROM_URL" <<'EOF' || fail "the dashboard does not match the metrics"
import json, re, sys, urllib.parse, urllib.request
dash_path, scrape_path, prom = sys.argv[1:4]
dash = json.load(open(dash_path))  # valid JSON, or this raises
scraped = set()
for line in open(scrape_path):
    if line.startswith("#") or not line.strip():
        continue
    scraped.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
# Names the queries use, with their label matchers and by/without groups taken out.
def metric_names(e):
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\b(by|without)\s*\([^)]*\)", "", e)
    return set(re.findall(r"\b((?:gen_ai|chatwire)_[a-z0-9_]+)\b", e))
exprs = []
def walk(o):
    if isinstance(o, dict):
        if isinstance(o.get("expr"), str):
            exprs.append(o["expr"])
        for v in o.values():
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(dash)
assert len(exprs) >= 6, f"only {len(exprs)} queries in the dashboard"
titles = " ".join(p.get("title", "") for p in dash.get("panels", []))
for want in ["TTFT", "tokens/s", "error rate", "in flight", "added latency"]:
    assert want.lower() in titles.lower(), f"no panel about {want!r}: {titles}"
bad = []
for e in exprs:
    names = metric_names(e)
    assert names, f"a query names no chatwire metric: {e}"
    for n in names - scraped:
        bad.append(f"{n} (in {e}) is not in the scrape")
    q = e.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$model", ".*").replace("$provider", ".*")
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        r = json.load(urllib.request.urlopen(url, timeout=5))
        if r.get("status") != "success":
            bad.append(f"Prometheus refused {q}: {r}")
    except Exception as x:
        bad.append(f"Prometheus refused {q}: {x}")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"[obs] dashboard: {len(exprs)} queries, all accepted by Prometheus, all metric names scraped", file=sys.stderr)
EOF

log "PASS: Prometheus scraped chatwire and answered every query ($(( $(date +%s) - T0 ))s after the build)"
echo "PASS"
