#!/usr/bin/env bash
# The playground in a real browser: headless Chromium (Debian's `chromium`)
# driven by playwright-core, against chatwire started with --playground and a
# slow fake model, on 127.0.0.1 with a free port.
#
# Checks:
#   1. the page loads the model list through gRPC-Web (ListModels);
#   2. a prompt sent to fake:echo (200 ms per token) streams in token by token:
#      the answer text grows across several observations, each one extending
#      the last, and ends as the whole answer; the lifecycle panel shows
#      start, stream..., end; the status shows OK;
#   3. a scripted failure (fake:broken: one chunk, then UNAVAILABLE) is shown
#      as an error (status and lifecycle), with the partial text kept;
#   4. a screenshot of each is saved (the paths are printed).
#
# Usage: scripts/ci-browser.sh
# Environment (all optional):
#   CHATWIRE_BIN     a built chatwire binary (default: cargo build, target/debug/chatwire)
#   CHROMIUM         the browser (default /usr/bin/chromium; installed with apt-get when missing)
#   BROWSER_KEEP     1: keep the temporary directory (logs, node_modules)
# Screenshots are kept in their own temp directory (printed), as CI artifacts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-browser.XXXXXX")"
SHOTS="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-browser-shots.XXXXXX")"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
CHATWIRE_PID=""
START_TS=$(date +%s)

log() { printf '[browser %3ds] %s\n' "$(( $(date +%s) - START_TS ))" "$*" >&2; }
fail() {
    printf '\n[browser] FAIL: %s\n' "$*" >&2
    for f in "$WORK"/*.log; do
        [ -s "$f" ] || continue
        printf '\n--- last lines of %s ---\n' "$(basename "$f")" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}
cleanup() {
    local rc=$?
    if [ -n "$CHATWIRE_PID" ] && kill -0 "$CHATWIRE_PID" 2>/dev/null; then
        kill -TERM "$CHATWIRE_PID" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$CHATWIRE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CHATWIRE_PID" 2>/dev/null || true
        wait "$CHATWIRE_PID" 2>/dev/null || true
    fi
    if [ "${BROWSER_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v node >/dev/null || fail "node not found"
command -v npm >/dev/null || fail "npm not found"

# 1. The browser: Debian's chromium.
if [ ! -x "$CHROMIUM" ]; then
    log "installing chromium (apt-get)"
    command -v apt-get >/dev/null || fail "$CHROMIUM missing and no apt-get"
    timeout 240 apt-get update -qq >"$WORK/apt.log" 2>&1 || fail "apt-get update"
    timeout 240 apt-get install -y -qq --no-install-recommends chromium >>"$WORK/apt.log" 2>&1 \
        || fail "apt-get install chromium"
fi
[ -x "$CHROMIUM" ] || fail "$CHROMIUM not found after install"
log "browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"

# 2. playwright-core (no bundled browsers) in the temp dir's own node_modules.
(cd "$WORK" && timeout 180 npm install --silent --no-audit --no-fund --no-save playwright-core@1 >"$WORK/npm.log" 2>&1) \
    || fail "npm install playwright-core"

# 3. chatwire with the playground and a slow fake model.
if [ -z "${CHATWIRE_BIN:-}" ]; then
    log "building chatwire (cargo build)"
    (cd "$ROOT" && cargo build --quiet --bin chatwire) || fail "cargo build"
    CHATWIRE_BIN="$ROOT/target/debug/chatwire"
fi
cat >"$WORK/chatwire.toml" <<'EOF'
[fake]
token_delay_ms = 200

[fake.scripts.broken]
chunks = [{ text = "half an answer " }]
delayMs = 200
fail = { afterChunks = 1, code = "UNAVAILABLE", message = "scripted failure for the browser test" }
EOF
PORT="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
BASE="http://127.0.0.1:$PORT"
"$CHATWIRE_BIN" --addr "127.0.0.1:$PORT" --config "$WORK/chatwire.toml" --playground \
    >"$WORK/chatwire.log" 2>&1 &
CHATWIRE_PID=$!
for _ in $(seq 100); do
    kill -0 "$CHATWIRE_PID" 2>/dev/null || fail "chatwire exited before it was ready"
    if node -e 'require("http").get(process.argv[1],r=>process.exit(r.statusCode===200?0:1)).on("error",()=>process.exit(1))' "$BASE/playground"; then
        break
    fi
    sleep 0.1
done
log "chatwire serving the playground at $BASE/playground"

# 4. The browser test.
cat >"$WORK/test.js" <<'EOF'
const { chromium } = require("playwright-core");
const [base, chromiumPath, profile, shots] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, what) { if (!cond) throw new Error(what); console.log("  ok: " + what); }

(async () => {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1100, height: 700 },
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(base + "/playground", { timeout: 15000 });
    await page.waitForFunction(() => Number(document.getElementById("model").dataset.loaded || 0) > 0, null, { timeout: 15000 });
    const models = await page.$$eval("#models option", (os) => os.map((o) => o.value));
    check(models.includes("fake:echo") && models.includes("fake:broken"), "ListModels through gRPC-Web lists fake:echo and fake:broken (" + models.length + " models)");

    // Streaming, token by token.
    const words = "one two three four five six seven eight";
    await page.fill("#model", "fake:echo");
    await page.fill("#prompt", words);
    await page.click("#send");
    const seen = [];
    const deadline = Date.now() + 20000;
    for (;;) {
      const [text, status] = await page.evaluate(() => [document.getElementById("output").textContent, document.getElementById("status").className]);
      if (text && text !== seen[seen.length - 1]) seen.push(text);
      if (status === "ok" || status === "error" || Date.now() > deadline) break;
      await sleep(40);
    }
    console.log("  observed: " + JSON.stringify(seen));
    for (let i = 1; i < seen.length; i++) check(seen[i].startsWith(seen[i - 1]) && seen[i].length > seen[i - 1].length, "observation " + i + " extends the one before");
    check(seen.length >= 5, "the answer grew across " + seen.length + " observations (tokens arrive one by one, not in one lump)");
    check(seen[seen.length - 1] === words, "the final text is the whole answer");
    const status = await page.textContent("#status");
    check(status === "OK", "status shows OK (" + status + ")");
    const kinds = await page.$$eval("#events li", (ls) => ls.map((l) => l.className));
    check(kinds[0] === "start" && kinds[kinds.length - 1] === "end" && kinds.filter((k) => k === "stream").length >= 5, "lifecycle: start, " + kinds.filter((k) => k === "stream").length + " stream events, end");
    await page.screenshot({ path: shots + "/playground-stream.png", fullPage: true });

    // An error status is shown as an error.
    await page.fill("#model", "fake:broken");
    await page.fill("#prompt", "anything");
    await page.click("#send");
    await page.waitForFunction(() => ["ok", "error"].includes(document.getElementById("status").className), null, { timeout: 15000 });
    const errStatus = await page.textContent("#status");
    const errClass = await page.getAttribute("#status", "class");
    check(errClass === "error" && errStatus.includes("UNAVAILABLE") && errStatus.includes("scripted failure"), "the failure is shown as an error: " + JSON.stringify(errStatus));
    const errKinds = await page.$$eval("#events li", (ls) => ls.map((l) => l.className));
    check(errKinds[0] === "start" && errKinds.includes("error") && !errKinds.includes("end"), "lifecycle: " + errKinds.join(", "));
    check((await page.textContent("#output")) === "half an answer ", "the partial text is kept beside the error");
    await page.screenshot({ path: shots + "/playground-error.png", fullPage: true });
    check(pageErrors.length === 0, "no script errors on the page " + JSON.stringify(pageErrors));
  } finally {
    await context.close();
  }
})().then(() => process.exit(0), (e) => { console.error("FAIL: " + (e && e.stack || e)); process.exit(1); });
EOF
log "driving headless chromium"
(cd "$WORK" && timeout 120 node test.js "$BASE" "$CHROMIUM" "$WORK/profile" "$SHOTS") \
    || fail "browser test"
log "screenshots: $SHOTS/playground-stream.png $SHOTS/playground-error.png"
log "PASS (playground in headless Chromium: tokens streamed one by one, error shown as an error)"
