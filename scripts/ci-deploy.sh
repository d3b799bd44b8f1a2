#!/usr/bin/env bash
# CI: the deployment artefacts, offline.
#   1. deploy/kubernetes/*.yaml against the Kubernetes OpenAPI schemas, strict
#      (unknown fields rejected), for the oldest and newest versions we claim:
#      PyPI's kubernetes-validate, pinned; it bundles the schemas (no network).
#   2. the manifests agree with each other and with chatwire: the ConfigMap's
#      config passes `chatwire check-config`; terminationGracePeriodSeconds above
#      shutdown_grace_secs; probes on the health listener's port; a non-loopback
#      address has callers' auth from a mounted Secret; the memory limit covers
#      the README's bound; non-root, read-only root, no privilege escalation, no
#      capabilities; Services, PDB and HPA select the Deployment's pods.
#   3. the Dockerfile: its build command is exactly `cargo build --release
#      --locked --bin chatwire`, its runtime stage copies that binary, runs no
#      shell and is non-root; the build context left by .dockerignore holds what
#      Cargo needs (`cargo metadata --locked --offline` inside a copy of it).
#      The image build itself is not exercised here (no Docker daemon in CI).
#
# Usage: scripts/ci-deploy.sh
# Environment: PYTHON (default python3), CHATWIRE_BIN (default: cargo build --locked --bin chatwire),
#   CI_DEPLOY_CACHE_DIR (where the pinned wheels are kept; default ~/.cache/chatwire-ci-deploy)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatwire-ci-deploy.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
START_TS=$(date +%s)
KUBERNETES_VALIDATE_VERSION=1.34.1          # bundles schemas for Kubernetes 1.25 .. 1.34
K8S_VERSIONS=(1.30.0 1.34.0)                # oldest we claim (native gRPC probes are GA since 1.27) and newest bundled
log() { printf '[ci-deploy %3ds] %s\n' "$(( $(date +%s) - START_TS ))" "$*" >&2; }
fail() { printf '\n[ci-deploy] FAIL: %s\n' "$*" >&2; exit 1; }

"$BASE_PYTHON" -m venv "$WORK/venv" || fail "python -m venv failed"
PY="$WORK/venv/bin/python"
# Kept as wheels in a cache directory of this script's own: the first run
# downloads them from PyPI, later runs install offline.
PY_TAG="$("$PY" -c 'import sys, platform; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')"
WHEELHOUSE="${CI_DEPLOY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatwire-ci-deploy}/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION-$PY_TAG"
if ! ls "$WHEELHOUSE"/kubernetes_validate-*.whl >/dev/null 2>&1; then
    log "downloading kubernetes-validate $KUBERNETES_VALIDATE_VERSION and its dependencies into $WHEELHOUSE (once)"
    mkdir -p "$(dirname "$WHEELHOUSE")"
    tmp_wh="$(mktemp -d "$(dirname "$WHEELHOUSE")/dl.XXXXXX")"
    timeout 180 "$PY" -m pip download --disable-pip-version-check --quiet -d "$tmp_wh" \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >"$WORK/pip.log" 2>&1 \
        || { rm -rf "$tmp_wh"; cat "$WORK/pip.log" >&2; fail "pip download kubernetes-validate failed"; }
    rm -rf "$WHEELHOUSE" && mv "$tmp_wh" "$WHEELHOUSE"
fi
timeout 120 "$PY" -m pip install --disable-pip-version-check --quiet --no-compile --no-index \
    --find-links "$WHEELHOUSE" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >>"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log" >&2; fail "pip install kubernetes-validate failed"; }

# ---------------------------------------------------------------- 1. schemas
for v in "${K8S_VERSIONS[@]}"; do
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION --strict -k $v deploy/kubernetes/*.yaml"
    "$WORK/venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$ROOT"/deploy/kubernetes/*.yaml \
        || fail "deploy/kubernetes does not validate against Kubernetes $v"
done

# ---------------------------------------------------------------- 2. consistency
if [ -z "${CHATWIRE_BIN:-}" ]; then
    (cd "$ROOT" && timeout 900 cargo build --quiet --locked --bin chatwire) >"$WORK/cargo.log" 2>&1 \
        || { tail -20 "$WORK/cargo.log" >&2; fail "cargo build failed"; }
    CHATWIRE_BIN="$ROOT/target/debug/chatwire"
fi
log "manifests against each other and chatwire ($CHATWIRE_BIN check-config)"
"$PY" - "$ROOT" "$CHATWIRE_BIN" "$WORK" <<'EOF' || fail "deployment checks failed"
import os, re, subprocess, sys, tomllib
import yaml

root, binary, work = sys.argv[1:4]
kdir = os.path.join(root, "deploy", "kubernetes")
docs = {}
for name in sorted(os.listdir(kdir)):
    if name.endswith(".yaml"):
        for d in yaml.safe_load_all(open(os.path.join(kdir, name))):
            if d:
                docs[(d["kind"], d["metadata"]["name"])] = d
bad = []
def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        bad.append(what)

dep = docs[("Deployment", "chatwire")]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
env = {e["name"]: e.get("value") for e in c.get("env", [])}
cm = docs[("ConfigMap", "chatwire")]
toml_text = cm["data"]["chatwire.toml"]
cfg = tomllib.loads(toml_text)

# the config file as chatwire reads it
path = os.path.join(work, "chatwire.toml")
open(path, "w").write(toml_text)
r = subprocess.run([binary, "check-config", path], capture_output=True, text=True)
check(r.returncode == 0, f"chatwire check-config accepts the ConfigMap's chatwire.toml ({(r.stdout + r.stderr).strip()})")

# mounted where CHATWIRE_CONFIG says, read-only, from that ConfigMap
mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod.get("volumes", [])}
cfg_mount = [m for m in mounts.values() if m["mountPath"] == env.get("CHATWIRE_CONFIG")]
check(len(cfg_mount) == 1 and cfg_mount[0].get("readOnly") is True
      and vols[cfg_mount[0]["name"]].get("configMap", {}).get("name") == "chatwire"
      and cfg_mount[0].get("subPath") in cm["data"],
      "CHATWIRE_CONFIG is the ConfigMap's file, mounted read-only")

# drain
grace = cfg.get("shutdown_grace_secs", 30)
check(pod["terminationGracePeriodSeconds"] > grace + 1,
      f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > shutdown_grace_secs {grace} + 1")

# probes: gRPC, on the health-only listener's port, readiness naming the service
health_port = int(env["CHATWIRE_HEALTH_ADDR"].rsplit(":", 1)[1])
rp, lp = c["readinessProbe"], c["livenessProbe"]
check(rp.get("grpc", {}).get("port") == health_port and rp["grpc"].get("service") == "chatwire.v1.ChatModelService",
      f"readiness: gRPC health of chatwire.v1.ChatModelService on the health port {health_port}")
check(lp.get("grpc", {}).get("port") == health_port, "liveness: gRPC health on the health port")
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
check(ports.get("health") == health_port and ports.get("grpc") == int(cfg["addr"].rsplit(":", 1)[1]),
      "container ports match the config's addr and CHATWIRE_HEALTH_ADDR")

# callers' auth: required on a non-loopback address (or --insecure-no-auth)
host = cfg.get("addr", "127.0.0.1:50051").rsplit(":", 1)[0]
args = c.get("args", []) + c.get("command", [])
if host not in ("127.0.0.1", "localhost", "[::1]"):
    tf = cfg.get("auth", {}).get("tokens_file")
    under_secret = tf and any(tf.startswith(m["mountPath"].rstrip("/") + "/") and "secret" in vols[m["name"]]
                              and m.get("readOnly") for m in mounts.values())
    check(under_secret or "CHATWIRE_API_KEYS" in {e["name"] for e in c.get("env", [])} or "--insecure-no-auth" in args,
          f"addr {cfg['addr']} is not loopback: callers' tokens come from a mounted Secret ({tf})")

# provider keys from a Secret, never literal
check(any("secretRef" in e for e in c.get("envFrom", [])), "provider keys come from a Secret (envFrom)")
literal = [e["name"] for e in c.get("env", []) if re.search(r"(KEY|TOKEN)", e["name"]) and "value" in e]
check(not literal, f"no key or token as a literal env value ({literal})")

# memory: the README's bound with this config
mb = cfg.get("max_buffered_bytes", 512 << 20)
streams = cfg.get("max_concurrent_streams", 1024)
bound = 20 * 2**20 + mb + streams * 60 * 2**10
def qty(s):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", s)
    return int(m.group(1)) * {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[m.group(2)]
limit = qty(c["resources"]["limits"]["memory"])
check(limit >= bound * 1.25,
      f"memory limit {limit >> 20} MiB covers the bound {bound >> 20} MiB (20 + max_buffered_bytes + 60 KiB x streams) with 25% for requests in flight")
check(qty(c["resources"]["requests"]["memory"]) == limit, "memory request = limit (never overcommitted)")
check("cpu" in c["resources"]["requests"], "a CPU request (the HPA's utilisation is relative to it)")

# hardening
psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "runs as non-root (pod)")
check(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
check(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
check(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc.get("capabilities", {}).get("add"),
      "every capability dropped")

# selectors
labels = pod and dep["spec"]["template"]["metadata"]["labels"]
def selects(sel):
    return sel and all(labels.get(k) == v for k, v in sel.items())
for (kind, name), d in docs.items():
    if kind == "Service":
        check(selects(d["spec"]["selector"]), f"Service {name} selects the Deployment's pods")
        check(all(p.get("targetPort") in ports or p.get("targetPort") in ports.values() for p in d["spec"]["ports"]),
              f"Service {name} targets a container port")
    if kind == "PodDisruptionBudget":
        check(selects(d["spec"]["selector"]["matchLabels"]), f"PodDisruptionBudget {name} selects the pods")
    if kind == "HorizontalPodAutoscaler":
        t = d["spec"]["scaleTargetRef"]
        check(t["kind"] == "Deployment" and t["name"] == "chatwire", f"HPA {name} scales the Deployment")
        check(d["spec"]["minReplicas"] >= 2, f"HPA {name} keeps at least 2 replicas (the PDB allows one down)")
check(any(k == "Service" and d["spec"].get("clusterIP") == "None" for (k, _), d in docs.items()),
      "a headless Service (client-side balancing)")
sys.exit(1 if bad else 0)
EOF

# ---------------------------------------------------------------- 3. Dockerfile
log "Dockerfile: the build command, the runtime stage, the build context"
"$PY" - "$ROOT" "$WORK" <<'EOF' || fail "Dockerfile checks failed"
import fnmatch, os, re, shutil, subprocess, sys, tomllib

root, work = sys.argv[1:3]
text = open(os.path.join(root, "Dockerfile")).read()
# join continuation lines, drop comments
lines, cur = [], ""
for raw in text.splitlines():
    s = raw.strip()
    if not s or s.startswith("#"):
        continue
    cur += " " + s[:-1] if s.endswith("\\") else " " + s
    if not s.endswith("\\"):
        lines.append(cur.strip())
        cur = ""
stages, st = [], None
for ln in lines:
    word = ln.split()[0].upper()
    if word == "FROM":
        st = {"from": ln.split()[1], "as": (ln.split()[3] if len(ln.split()) > 3 else None), "ins": []}
        stages.append(st)
    elif st is not None:
        st["ins"].append((word, ln[len(word):].strip()))
bad = []
def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        bad.append(what)

check(len(stages) == 2, f"two stages, build then runtime ({len(stages)})")
build, runtime = stages[0], stages[-1]
runs = [a for w, a in build["ins"] if w == "RUN"]
cmds = [re.sub(r"--mount=\S+\s*", "", a).strip() for a in runs]
check(cmds == ["cargo build --release --locked --bin chatwire"],
      f"the build stage runs exactly `cargo build --release --locked --bin chatwire` ({cmds})")
m = re.match(r"rust:(\d+)\.(\d+)", build["from"])
want = tomllib.load(open(os.path.join(root, "Cargo.toml"), "rb"))["package"]["rust-version"].split(".")
check(m and (int(m.group(1)), int(m.group(2))) >= (int(want[0]), int(want[1])),
      f"the builder's Rust ({build['from']}) is at least Cargo.toml's rust-version {'.'.join(want)}")
check(all(":" in s["from"] and not s["from"].endswith(":latest") for s in stages), "base images pinned by tag")
check(not any(w == "RUN" for w, _ in runtime["ins"]), "the runtime stage runs nothing (no shell needed)")
copies = [a for w, a in runtime["ins"] if w == "COPY"]
check(any(f"--from={build['as']}" in a and "/target/release/chatwire " in a for a in copies),
      "the runtime stage copies the build stage's target/release/chatwire")
users = [a for w, a in runtime["ins"] if w == "USER"]
check(users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), f"runs as a numeric non-root user ({users})")
ep = [a for w, a in runtime["ins"] if w == "ENTRYPOINT"]
check(ep and ep[-1].startswith("["), "ENTRYPOINT in exec form (no shell)")

# the context after .dockerignore holds what Cargo needs
pats = [p.strip().rstrip("/") for p in open(os.path.join(root, ".dockerignore")) if p.strip() and not p.startswith("#")]
def ignored(rel):
    parts = rel.split("/")
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(parts[0], p) or
               (p.startswith("**/") and any(fnmatch.fnmatch(x, p[3:]) for x in parts)) for p in pats)
check(ignored("target/debug/chatwire") and ignored(".git/HEAD"), ".dockerignore leaves out target/ and .git/")
ctx = os.path.join(work, "context")
files = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
for rel in files:
    if ignored(rel) or not os.path.exists(os.path.join(root, rel)):
        continue
    dst = os.path.join(ctx, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(os.path.join(root, rel), dst)
r = subprocess.run(["cargo", "metadata", "--locked", "--offline", "--no-deps", "--format-version", "1"],
                   cwd=ctx, capture_output=True, text=True)
check(r.returncode == 0, "Cargo.toml and Cargo.lock in the context agree (cargo metadata --locked)"
      + ("" if r.returncode == 0 else f": {r.stderr.strip()[-300:]}"))
import json
meta = json.loads(r.stdout) if r.returncode == 0 else {"packages": []}
missing = [t["src_path"] for p in meta["packages"] for t in p["targets"] if not os.path.exists(t["src_path"])]
check(r.returncode == 0 and not missing, f"every Cargo target's source is in the build context ({missing[:3]})")
for need in ("build.rs", "proto/chatwire/v1/chatwire.proto", "src/main.rs", ".cargo/config.toml"):
    check(os.path.exists(os.path.join(ctx, need)), f"{need} is in the build context")
sys.exit(1 if bad else 0)
EOF

log "the Dockerfile's build command, as CI's debug build: cargo build --locked --bin chatwire"
(cd "$ROOT" && timeout 900 cargo build --quiet --locked --bin chatwire) >"$WORK/cargo2.log" 2>&1 \
    || { tail -20 "$WORK/cargo2.log" >&2; fail "cargo build --locked --bin chatwire failed"; }
log "PASS: deploy/kubernetes validates (Kubernetes ${K8S_VERSIONS[*]}) and agrees with chatwire; the Dockerfile builds what CI builds"
