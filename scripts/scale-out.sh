#!/usr/bin/env bash
# Scale-out, shown with real parts on 127.0.0.1: three chatwire replicas behind
# nginx (Debian's package, `grpc_pass` over HTTP/2, deploy/nginx/chatwire.conf),
# a slow OpenAI-SSE mock upstream, and a grpcio load client; then client-side
# round_robin over the three replicas without a proxy. Prints figures and
# PASS / FAIL. See scripts/scale-out/scaleout.py for the phases and checks.
#
# Usage: scripts/scale-out.sh            (from anywhere; CI runs it)
# Environment (all optional):
#   CHATWIRE_BIN       a built chatwire binary (default: cargo build --locked --bin chatwire, debug)
#   NGINX              an nginx binary (default: nginx on PATH, else apt-get install nginx)
#   PYTHON             python that makes the script's venv (default python3)
#   SCALE_OUT_CALLS    concurrent streams in phases A and B (default 300)
#   SCALE_OUT_WORKERS  back-to-back clients during the rolling restart (default 60)
#   SCALE_OUT_LABEL    a name for the binary in the figures (default: its git describe)
#   SCALE_OUT_TIMEOUT  seconds for the phases (default 150)
#   SCALE_OUT_VENV     a venv to (re)use for grpcio (default: a new one in the temp directory)
#   SCALE_OUT_CACHE_DIR  where the grpcio wheels are kept (default ~/.cache/chatwire-scale-out)
#   SCALE_OUT_KEEP     1: keep the temporary directory (logs, nginx config, summary)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-scale-out.XXXXXX")"
chmod 755 "$WORK"   # nginx's workers (user nobody when started as root) read below it
RUNNER_PID=""
START_TS=$(date +%s)

log() { printf '[scale-out %3ds] %s\n' "$(( $(date +%s) - START_TS ))" "$*" >&2; }
fail() {
    printf '\n[scale-out] FAIL: %s\n' "$*" >&2
    for f in "$WORK"/*.log; do
        [ -s "$f" ] || continue
        printf '\n--- last lines of %s ---\n' "$(basename "$f")" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}
cleanup() {
    local rc=$?
    if [ -n "$RUNNER_PID" ] && kill -0 "$RUNNER_PID" 2>/dev/null; then
        kill -TERM "$RUNNER_PID" 2>/dev/null || true   # it ends its replicas, nginx and the mock
        for _ in $(seq 50); do kill -0 "$RUNNER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$RUNNER_PID" 2>/dev/null || true
    fi
    # Should the runner have been killed before it could end them: its children
    # by the pids it wrote (each checked to be ours: its command line names $WORK).
    if [ -s "$WORK/pids" ]; then
        while read -r pid; do
            if grep -qF "$WORK" "/proc/$pid/cmdline" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        done <"$WORK/pids"
    fi
    if [ "${SCALE_OUT_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v "$BASE_PYTHON" >/dev/null || fail "$BASE_PYTHON not found (set PYTHON)"

# ---------------------------------------------------------------- nginx (Debian's package)
NGINX="${NGINX:-$(command -v nginx || true)}"
[ -n "$NGINX" ] || NGINX=/usr/sbin/nginx
if [ ! -x "$NGINX" ]; then
    command -v apt-get >/dev/null || fail "no nginx and no apt-get: install nginx or set NGINX"
    log "apt-get install nginx (Debian's package; only the binary is used, never its service)"
    export DEBIAN_FRONTEND=noninteractive
    # RUNLEVEL=1: the package's maintainer scripts do not start the system service.
    timeout 120 apt-get update -qq >"$WORK/apt.log" 2>&1 || fail "apt-get update failed (see apt.log)"
    RUNLEVEL=1 timeout 120 apt-get install -y -qq --no-install-recommends nginx >>"$WORK/apt.log" 2>&1 \
        || fail "apt-get install nginx failed (see apt.log)"
    NGINX=/usr/sbin/nginx
fi
"$NGINX" -V 2>&1 | grep -q -- '--with-http_v2_module' || fail "$NGINX has no HTTP/2 module"
log "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"

# ---------------------------------------------------------------- the load client's venv and stubs
VENV="${SCALE_OUT_VENV:-$WORK/venv}"
[ -x "$VENV/bin/python" ] || "$BASE_PYTHON" -m venv "$VENV" || fail "python -m venv failed"
# Pinned, and kept as wheels in a cache directory of this script's own (the
# first run downloads them from PyPI; later runs install offline in seconds).
GRPC_VERSION=1.85.4
PY_TAG="$("$VENV/bin/python" -c 'import sys, platform; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')"
WHEELHOUSE="${SCALE_OUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatwire-scale-out}/grpcio-$GRPC_VERSION-$PY_TAG"
if ! ls "$WHEELHOUSE"/grpcio_tools-*.whl >/dev/null 2>&1; then
    log "downloading grpcio $GRPC_VERSION and grpcio-tools into $WHEELHOUSE (once)"
    mkdir -p "$(dirname "$WHEELHOUSE")"
    tmp_wh="$(mktemp -d "$(dirname "$WHEELHOUSE")/dl.XXXXXX")"
    timeout 180 "$VENV/bin/python" -m pip download --disable-pip-version-check --quiet --only-binary=:all: \
        -d "$tmp_wh" "grpcio==$GRPC_VERSION" "grpcio-tools==$GRPC_VERSION" >"$WORK/pip.log" 2>&1 \
        || { rm -rf "$tmp_wh"; fail "pip download grpcio failed (see pip.log)"; }
    rm -rf "$WHEELHOUSE" && mv "$tmp_wh" "$WHEELHOUSE"
fi
timeout 120 "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --no-compile --no-index \
    --find-links "$WHEELHOUSE" "grpcio==$GRPC_VERSION" "grpcio-tools==$GRPC_VERSION" >>"$WORK/pip.log" 2>&1 \
    || fail "pip install grpcio failed (see pip.log)"
mkdir -p "$WORK/gen"
"$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/proto" --python_out="$WORK/gen" --grpc_python_out="$WORK/gen" \
    "$ROOT/proto/chatwire/v1/chatwire.proto" >"$WORK/protoc.log" 2>&1 || fail "protoc failed (see protoc.log)"
log "grpcio $("$VENV/bin/python" -c 'import grpc; print(grpc.__version__)') and stubs from proto/ ready"

# ---------------------------------------------------------------- chatwire
if [ -z "${CHATWIRE_BIN:-}" ]; then
    log "cargo build --locked --bin chatwire"
    (cd "$ROOT" && timeout 1800 cargo build --quiet --locked --bin chatwire) >"$WORK/cargo.log" 2>&1 \
        || fail "cargo build failed (see cargo.log)"
    CHATWIRE_BIN="$ROOT/target/debug/chatwire"
fi
[ -x "$CHATWIRE_BIN" ] || fail "chatwire binary $CHATWIRE_BIN is not executable"
LABEL="${SCALE_OUT_LABEL:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo chatwire)}"
log "chatwire: $CHATWIRE_BIN ($LABEL)"

# ---------------------------------------------------------------- the phases
set +e
timeout --signal=TERM --kill-after=10 "${SCALE_OUT_TIMEOUT:-150}" \
    "$VENV/bin/python" -u "$ROOT/scripts/scale-out/scaleout.py" \
    --bin "$CHATWIRE_BIN" --nginx "$NGINX" --nginx-conf "$ROOT/deploy/nginx/chatwire.conf" \
    --mock "$ROOT/scripts/scale-out/mock_openai.py" --gen "$WORK/gen" --work "$WORK" \
    --calls "${SCALE_OUT_CALLS:-300}" --workers "${SCALE_OUT_WORKERS:-60}" --label "$LABEL" &
RUNNER_PID=$!
wait "$RUNNER_PID"
rc=$?
RUNNER_PID=""
set -e
[ "$rc" -eq 124 ] && fail "the phases did not finish within ${SCALE_OUT_TIMEOUT:-150}s"
[ "$rc" -eq 0 ] || fail "scale-out checks failed (exit $rc)"
log "PASS: scale-out behind nginx and with client-side round_robin ($(( $(date +%s) - START_TS ))s)"
