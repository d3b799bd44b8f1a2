#!/usr/bin/env bash
# CI for the clients: the Node client's tests (node --test) against a real
# chatwire, the proto's per-language file options pinned, and `buf generate`
# (buf.gen.yaml) producing Go, Java and TypeScript stubs: the TypeScript is
# compiled and its example (examples/ts/stream.ts) run against chatwire, the
# Java is compiled with the example examples/java/ChatwireStream.java, the Go is
# generated and checked but not compiled (no Go toolchain on the CI machine).
#
# Installs into a temp dir only: npm packages from clients/node's lockfile
# (npm ci), and, where missing, Debian's protobuf-compiler, protoc-gen-go,
# protoc-gen-go-grpc, protobuf-compiler-grpc-java-plugin, libprotobuf-java and
# libgrpc-java (apt-get, as root).
#
# Environment: CHATWIRE_BIN (default target/debug/chatwire, built with cargo if
# absent), NODE_CI_KEEP=1 keeps the temp dir.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-ci-node.XXXXXX")"
START=$(date +%s)
SERVER_PID=""
STEPS_OK=0

log() { printf '[ci-node %3ds] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
fail() {
    printf '[ci-node] FAIL: %s\n' "$*" >&2
    [ -s "$WORK/chatwire.log" ] && tail -n 20 "$WORK/chatwire.log" >&2
    exit 1
}
cleanup() {
    local rc=$?
    [ -n "${JAVAC_PID:-}" ] && kill "$JAVAC_PID" 2>/dev/null || true
    [ -n "${APT_PID:-}" ] && wait "$APT_PID" 2>/dev/null || true   # never leave apt-get half done
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${NODE_CI_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then log "temp dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ok() { STEPS_OK=$((STEPS_OK + 1)); log "ok: $*"; }

command -v node >/dev/null || fail "node not found"
command -v npm >/dev/null || fail "npm not found"

# ---- chatwire binary
if [ -z "${CHATWIRE_BIN:-}" ]; then
    CHATWIRE_BIN="$ROOT/target/debug/chatwire"
    if [ ! -x "$CHATWIRE_BIN" ]; then
        log "building chatwire (cargo build --bin chatwire)"
        (cd "$ROOT" && cargo build --quiet --bin chatwire) || fail "cargo build"
    fi
fi
[ -x "$CHATWIRE_BIN" ] || fail "chatwire binary $CHATWIRE_BIN is not executable"
export CHATWIRE_BIN

# ---- protoc and the Go / Java plugins: installed (if missing) in the background
# while npm ci and the Node tests run
need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v protoc-gen-go >/dev/null || need_apt+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || need_apt+=(protoc-gen-go-grpc)
command -v grpc_java_plugin >/dev/null || command -v protoc-gen-grpc-java >/dev/null || need_apt+=(protobuf-compiler-grpc-java-plugin)
[ -f /usr/share/java/protobuf.jar ] || need_apt+=(libprotobuf-java)
[ -f /usr/share/java/grpc-stub.jar ] || need_apt+=(libgrpc-java)
APT_PID=""
if [ "${#need_apt[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || fail "need ${need_apt[*]} (Debian packages) and cannot apt-get install them"
    log "apt-get install ${need_apt[*]} (in the background)"
    ( timeout 150 apt-get update -q && DEBIAN_FRONTEND=noninteractive timeout 150 \
        apt-get install -y -q --no-install-recommends "${need_apt[@]}" ) >"$WORK/apt.log" 2>&1 &
    APT_PID=$!
fi

# ---- the Node client, in a copy laid out as the repository (clients/node, proto/)
mkdir -p "$WORK/repo/clients"
cp -r "$ROOT/proto" "$WORK/repo/proto"
(cd "$ROOT/clients" && tar --exclude=node/node_modules -cf - node) | (cd "$WORK/repo/clients" && tar -xf -)
NODE_DIR="$WORK/repo/clients/node"
log "npm ci (clients/node's lockfile)"
(cd "$NODE_DIR" && timeout 240 npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1) \
    || { tail -n 30 "$WORK/npm.log" >&2; fail "npm ci"; }
BIN="$NODE_DIR/node_modules/.bin"
ok "npm ci"

log "node --test (clients/node/test) against chatwire"
(cd "$NODE_DIR" && timeout 180 node --test test/*.test.js) || fail "node --test"
ok "node --test"

# ---- the file options are pinned (buf breaking excepts their rules, see buf.yaml)
(cd "$ROOT" && "$BIN/buf" build --exclude-source-info -o "$WORK/image.json") || fail "buf build"
node -e '
const img = require(process.argv[1]);
const f = img.file.find((x) => x.name === "chatwire/v1/chatwire.proto");
const want = {
  csharpNamespace: "Chatwire.V1",
  goPackage: "github.com/chatwire/chatwire/gen/go/chatwire/v1;chatwirev1",
  javaMultipleFiles: true,
  javaOuterClassname: "ChatwireProto",
  javaPackage: "com.chatwire.v1",
  objcClassPrefix: "CVX",
  phpNamespace: "Chatwire\\V1",
  rubyPackage: "Chatwire::V1",
};
const got = f.options || {};
const bad = Object.entries(want).filter(([k, v]) => got[k] !== v);
if (bad.length) { console.error("file options changed (released values):", bad.map(([k, v]) => `${k}: want ${JSON.stringify(v)}, got ${JSON.stringify(got[k])}`).join("; ")); process.exit(1); }
' "$WORK/image.json" || fail "the proto's file options differ from the released ones"
ok "file options pinned"

if [ -n "$APT_PID" ]; then
    wait "$APT_PID" || { tail -n 20 "$WORK/apt.log" >&2; fail "apt-get install ${need_apt[*]}"; }
    APT_PID=""
fi
mkdir -p "$WORK/plugins"
if ! command -v protoc-gen-grpc-java >/dev/null; then
    ln -s "$(command -v grpc_java_plugin)" "$WORK/plugins/protoc-gen-grpc-java"   # Debian's name for it
fi
export PATH="$WORK/plugins:$BIN:$PATH"
ok "protoc $(protoc --version | cut -d' ' -f2), Go and Java plugins"

# ---- buf generate (buf.gen.yaml, unchanged)
GEN="$WORK/out"
log "buf generate (buf.gen.yaml)"
(cd "$ROOT" && timeout 120 buf generate -o "$GEN") || fail "buf generate"
for f in gen/go/chatwire/v1/chatwire.pb.go gen/go/chatwire/v1/chatwire_grpc.pb.go \
         gen/java/com/chatwire/v1/ChatModelServiceGrpc.java gen/java/com/chatwire/v1/MessageChunk.java \
         gen/ts/chatwire/v1/chatwire_pb.ts; do
    [ -s "$GEN/$f" ] || fail "buf generate wrote no $f"
done
grep -q '^package chatwirev1$' "$GEN/gen/go/chatwire/v1/chatwire.pb.go" || fail "Go package is not chatwirev1"
grep -q 'func (c \*chatModelServiceClient) Stream(' "$GEN/gen/go/chatwire/v1/chatwire_grpc.pb.go" || fail "no Go Stream client"
ok "buf generate: Go (not compiled: no Go toolchain here), Java, TypeScript"

# ---- Java (in the background while the TypeScript runs): compile the stubs
# (+ google.rpc from the shipped protos) and the example
J=/usr/share/java
CP="$J/protobuf.jar:$J/grpc-api.jar:$J/grpc-stub.jar:$J/grpc-protobuf.jar:$J/grpc-protobuf-lite.jar:$J/grpc-context.jar:$J/grpc-core.jar:$J/guava.jar:$J/geronimo-annotation-1.3-spec.jar"
mkdir -p "$WORK/java-rpc" "$WORK/classes"
protoc -I "$ROOT/clients/node/proto" --java_out="$WORK/java-rpc" google/rpc/status.proto google/rpc/error_details.proto \
    || fail "protoc google/rpc (Java)"
command -v javac >/dev/null || fail "javac not found"
# (a short-lived javac starts faster with C1 only and the serial GC)
timeout 300 javac -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC -nowarn -encoding UTF-8 -d "$WORK/classes" -cp "$CP" \
    $(find "$GEN/gen/java" "$WORK/java-rpc" -name '*.java') "$ROOT/examples/java/ChatwireStream.java" >"$WORK/javac.log" 2>&1 &
JAVAC_PID=$!

# ---- TypeScript: compile the stubs and the example, run it against chatwire
TS="$WORK/ts"
mkdir -p "$TS"
cp -r "$GEN/gen" "$TS/gen"
# google.rpc error details for Connect's findDetails, from the protos clients/node ships.
(cd "$ROOT" && buf generate clients/node/proto --template '{"version":"v2","plugins":[{"local":"protoc-gen-es","out":"gen/ts","opt":"target=ts"}]}' -o "$TS") \
    || fail "buf generate (google/rpc, TypeScript)"
cp "$ROOT/examples/ts/stream.ts" "$TS/"
ln -s "$NODE_DIR/node_modules" "$TS/node_modules"
(cd "$TS" && timeout 120 "$BIN/tsc" --strict --target es2022 --module commonjs --moduleResolution node10 \
    --esModuleInterop --skipLibCheck --outDir out stream.ts) || fail "tsc (generated TypeScript + examples/ts/stream.ts)"
ok "TypeScript compiled (tsc --strict)"

TOKEN="ci-node-token"
CHATWIRE_API_KEYS="$TOKEN" "$CHATWIRE_BIN" --addr 127.0.0.1:0 --log-format json >"$WORK/chatwire.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 200); do
    ADDR="$(grep -o '"message":"chatwire serving","addr":"[^"]*"' "$WORK/chatwire.log" | sed 's/.*"addr":"//; s/"$//' || true)"
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "chatwire exited"
    sleep 0.1
done
[ -n "$ADDR" ] || fail "chatwire did not start"
OUT="$(cd "$TS" && timeout 60 node out/stream.js "$ADDR" "$TOKEN")" || fail "examples/ts/stream.ts"
printf '%s\n' "$OUT" | sed 's/^/  ts> /' >&2
want='Hello| |from| |TypeScript|
last stop=END_TURN
error code=ResourceExhausted reason=UPSTREAM_RATE_LIMITED domain=chatwire upstream_status=429 retryDelayMs=7000'
[ "$OUT" = "$want" ] || fail "examples/ts/stream.ts printed something else; want:
$want"
ok "TypeScript example: stream, ErrorInfo and RetryInfo through Connect's gRPC transport"

wait "$JAVAC_PID" || { tail -n 30 "$WORK/javac.log" >&2; fail "javac (generated Java + examples/java/ChatwireStream.java)"; }
ok "Java compiled (javac; not run: no grpc-java transport installable here)"

log "PASS ($(( $(date +%s) - START )) s)"
echo "ci-node: $STEPS_OK passed, 0 failed"
