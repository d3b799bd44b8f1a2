#!/usr/bin/env bash
# Regenerates the Python stubs (src/chatwire/v1/chatwire_pb2*.py) from proto/.
#
#   clients/python/scripts/gen_stubs.sh            regenerate in place
#   clients/python/scripts/gen_stubs.sh --check    regenerate into a temp dir and
#                                                  diff against the committed stubs
#
# Needs grpcio-tools at the version pinned in clients/python/constraints.txt:
# PYTHON (default python3) must be able to `import grpc_tools`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
DEST="$HERE/src"
check=0
[ "${1:-}" = "--check" ] && check=1

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Every .proto under proto/ (the google/* well-known types come with grpc_tools).
mapfile -t protos < <(cd "$ROOT/proto" && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd "$ROOT/proto" && "$PYTHON" -m grpc_tools.protoc -I . --python_out="$out" --pyi_out="$out" \
    --grpc_python_out="$out" "${protos[@]}")
# One package per proto directory (chatwire/v1 -> chatwire.v1).
find "$out" -type d -mindepth 1 | while read -r d; do
    [ "$d" = "$out/chatwire" ] && continue   # the hand-written package's own __init__
    printf '"""Generated from proto/ by clients/python/scripts/gen_stubs.sh. Do not edit."""\n' >"$d/__init__.py"
done

if [ "$check" = 1 ]; then
    if diff -ru --exclude=__pycache__ "$out/chatwire/v1" "$DEST/chatwire/v1"; then
        echo "PASS: the committed Python stubs match proto/"
    else
        echo "FAIL: the committed Python stubs are stale: run clients/python/scripts/gen_stubs.sh" >&2
        exit 1
    fi
else
    rm -rf "$DEST/chatwire/v1"
    cp -r "$out/chatwire/v1" "$DEST/chatwire/v1"
    echo "regenerated $DEST/chatwire/v1"
fi
