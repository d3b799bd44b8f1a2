#!/usr/bin/env bash
# CI for the Python package (clients/python) and the seed examples (examples/python):
#   1. a venv of its own; pip install ./clients/python[langchain] + langchain-tests +
#      pytest, versions pinned by clients/python/constraints.txt
#   2. the committed stubs equal a fresh generation from proto/
#   3. pytest: the client, ChatChatwire's mapping, LangChain's standard unit tests,
#      and the standard integration tests against the fake models (each pytest
#      session starts its own chatwire on a free port)
#   4. the LangChain streaming guide's snippets against chatwire relaying a local
#      mock of Anthropic's Messages API, output checked exactly
#   5. the standard integration tests against SmolLM2 behind llama-cpp-python's
#      OpenAI-compatible server, started by scripts/e2e-real-model.sh (its cached
#      portable llama-cpp-python wheel: llama.cpp is not built again), E2E_THEN hook
#
# Usage: scripts/ci-python.sh
# Environment (optional):
#   PYTHON           python that makes the venv (default python3)
#   CHATWIRE_BIN     a built chatwire (default: cargo build --bin chatwire, i.e. the
#                    target/debug binary cargo test already built)
#   CI_PYTHON_SKIP_REAL_MODEL=1   skip step 5
#   CI_PYTHON_VENV   reuse this venv instead of a new one
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-ci-python.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log() { printf '[ci-python %3ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }
fail() { printf '[ci-python] FAIL: %s\n' "$*" >&2; exit 1; }

VENV="${CI_PYTHON_VENV:-$WORK/venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    "${PYTHON:-python3}" -m venv "$VENV" || fail "python -m venv"
fi
log "pip install ./clients/python[langchain] (constraints: clients/python/constraints.txt)"
timeout 600 "$PY" -m pip install --disable-pip-version-check --quiet \
    -c clients/python/constraints.txt "./clients/python[langchain]" \
    langchain-tests pytest pytest-asyncio grpcio-tools >"$WORK/pip.log" 2>&1 \
    || { tail -n 30 "$WORK/pip.log"; fail "pip install"; }

log "stubs are current"
PYTHON="$PY" bash clients/python/scripts/gen_stubs.sh --check || fail "stale stubs"

if [ -z "${CHATWIRE_BIN:-}" ]; then
    log "cargo build --bin chatwire"
    timeout 1800 cargo build --quiet --bin chatwire || fail "cargo build"
    CHATWIRE_BIN="$ROOT/target/debug/chatwire"
fi
export CHATWIRE_BIN
[ -x "$CHATWIRE_BIN" ] || fail "$CHATWIRE_BIN is not executable"

cd "$ROOT/clients/python"
log "pytest: client, ChatChatwire, standard unit tests, standard integration tests (fake models)"
env -u CHATWIRE_TEST_MODEL -u CHATWIRE_ADDR -u CHATWIRE_API_KEY \
    timeout 600 "$PY" -m pytest -p no:cacheprovider --benchmark-disable -q -rxXs tests \
    || fail "pytest (fake models)"

cd "$ROOT"
log "seed examples: the LangChain streaming guide against chatwire + a mock Anthropic"
timeout 300 "$PY" examples/python/check_seed.py || fail "seed examples"

if [ "${CI_PYTHON_SKIP_REAL_MODEL:-0}" != 1 ]; then
    log "standard integration tests against SmolLM2 (llama-cpp-python, through scripts/e2e-real-model.sh)"
    # The model server and its venv come from the e2e script (its cached wheel);
    # the tests use this venv and start their own chatwire pointed at the model.
    E2E_THEN="cd '$ROOT/clients/python' && env -u OPENAI_API_KEY -u CHATWIRE_ADDR -u CHATWIRE_API_KEY \
OPENAI_BASE_URL=\"\$E2E_OPENAI_BASE_URL\" CHATWIRE_TEST_MODEL=\"\$E2E_MODEL\" CHATWIRE_TEST_MAX_TOKENS=48 \
timeout 900 '$PY' -m pytest -p no:cacheprovider --benchmark-disable -q -rxXs tests/integration" \
    CHATWIRE_BIN="$CHATWIRE_BIN" bash scripts/e2e-real-model.sh || fail "standard tests against SmolLM2"
fi

log "PASS: Python package, standard tests and seed examples"
