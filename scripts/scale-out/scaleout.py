#!/usr/bin/env python3
"""The scale-out checks of scripts/scale-out.sh (run it through that script).

Three chatwire replicas on 127.0.0.1 (free ports), a slow OpenAI-SSE mock
upstream, nginx in front (deploy/nginx/chatwire.conf, replicas and port filled
in), and a grpcio load client. Phases:

  A. spread       300 concurrent Stream calls through nginx; calls per replica
                  counted from each replica's own log (`call ended` lines).
  B. SIGKILL      300 concurrent long streams through nginx, one replica killed
                  with SIGKILL once every stream has its first chunk: every stream
                  it carried must end non-OK (never OK, never silently short),
                  every other stream and every new call must succeed.
  C. rolling      back-to-back calls through nginx with gRPC's retry policy while
                  each replica in turn gets SIGTERM, drains, exits and is started
                  again: zero failed calls, no in-flight stream cut; the retries
                  needed are counted twice: attempts in nginx's access log minus
                  the client's calls, and DRAINING refusals in the replicas' logs.
  D. round_robin  no proxy: a grpcio channel over the three replica addresses
                  with the round_robin policy spreads calls; one replica SIGKILLed
                  under load, calls started after it keep succeeding on the
                  other two, and it is used again once restarted.

Every call checks: OK  <=>  a `last` chunk arrived  <=>  the whole text arrived.
Exit status 0 only when every check passed. Figures are printed as it goes and
as a summary at the end (also written to $WORK/summary.txt).
"""

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import grpc
import grpc.aio

MODEL = "openai:mock"
SERVICE = "chatwire.v1.ChatModelService"
T0 = time.monotonic()
CHECKS = []          # (ok, text)
SUMMARY = []         # lines for the final figures
CHILDREN = []        # every process started here, ended on exit
PIDS_FILE = None     # their pids, for scale-out.sh's cleanup should this process be killed


def started(proc):
    CHILDREN.append(proc)
    if PIDS_FILE:
        with open(PIDS_FILE, "a") as f:
            f.write(f"{proc.pid}\n")
    return proc


def log(msg):
    print(f"[scale-out {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def check(ok, what):
    CHECKS.append((bool(ok), what))
    print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
    return ok


def figure(line):
    SUMMARY.append(line)
    print("  >> " + line, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def expected_text(n):
    return "".join(f"w{i}" + (" " if i + 1 < n else "") for i in range(n))


# ---------------------------------------------------------------- processes

class Replica:
    """One chatwire process on a fixed port; its JSON log appended across restarts."""

    def __init__(self, idx, args, env, config_path):
        self.idx = idx
        self.name = f"r{idx}"
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.args = args
        self.env = env
        self.config = config_path
        self.log_path = os.path.join(args.work, f"replica-{idx}.log")
        self.proc = None

    def start(self):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.args.bin, "--config", self.config, "--addr", self.addr, "--log-format", "json"],
            env=self.env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        started(self.proc)

    def signal(self, sig):
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return self.proc.returncode

    async def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.proc.returncode}) before it was healthy; see {self.log_path}")
            if await health(self.addr, SERVICE) == 1:
                return
            await asyncio.sleep(0.1)
        raise SystemExit(f"{self.name} not healthy after {timeout}s; see {self.log_path}")

    def offset(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def events(self, since=0):
        """The replica's JSON log lines from byte offset `since`, fields flattened."""
        out = []
        with open(self.log_path, "rb") as f:
            f.seek(since)
            for raw in f:
                try:
                    j = json.loads(raw)
                except ValueError:
                    continue
                ev = dict(j.get("fields") or {})
                ev["level"] = j.get("level")
                out.append(ev)
        return out


async def health(addr, service):
    """grpc.health.v1.Health/Check by hand (no generated stubs): 1 = SERVING."""
    req = b"\x0a" + bytes([len(service)]) + service.encode()
    try:
        async with grpc.aio.insecure_channel(addr) as ch:
            rpc = ch.unary_unary("/grpc.health.v1.Health/Check",
                                 request_serializer=None, response_deserializer=None)
            resp = await rpc(req, timeout=1)
            return resp[1] if len(resp) >= 2 and resp[0] == 0x08 else 0
    except grpc.aio.AioRpcError:
        return -1


def count_calls(replicas, offsets, rpc=None):
    """Per replica: `call ended` outcomes in its log since `offsets`."""
    per = {}
    for r in replicas:
        c = collections.Counter()
        for ev in r.events(offsets[r.name]):
            if ev.get("message") == "call ended" and (rpc is None or ev.get("rpc") == rpc):
                c[ev.get("outcome")] += 1
        per[r.name] = c
    return per


async def settled_counts(replicas, offsets, expected, rpc="Stream", timeout=3.0):
    """count_calls, polled until the replicas have logged `expected` calls: a
    replica logs `call ended` as the call's guard drops, which can be a moment
    after the client has read the status."""
    deadline = time.monotonic() + timeout
    while True:
        per = count_calls(replicas, offsets, rpc)
        if sum(sum(c.values()) for c in per.values()) >= expected or time.monotonic() > deadline:
            return per
        await asyncio.sleep(0.05)


def offsets_of(replicas):
    return {r.name: r.offset() for r in replicas}


def started_run_ids(replica, since):
    started, ended = set(), set()
    for ev in replica.events(since):
        if ev.get("message") == "call started":
            started.add(ev.get("run_id"))
        elif ev.get("message") == "call ended":
            ended.add(ev.get("run_id"))
    return started, ended


# ---------------------------------------------------------------- the load client

def make_stubs(gen_dir):
    sys.path.insert(0, gen_dir)
    from chatwire.v1 import chatwire_pb2, chatwire_pb2_grpc  # noqa: E402
    return chatwire_pb2, chatwire_pb2_grpc


class Result:
    __slots__ = ("label", "run_id", "code", "details", "chunks", "last", "text_ok", "t_start", "t_first", "t_end")

    def ok(self):
        return self.code == grpc.StatusCode.OK


class Load:
    def __init__(self, pb, pb_grpc):
        self.pb = pb
        self.pb_grpc = pb_grpc
        self.first_chunks = 0

    def request(self, n, delay, run_id):
        pb = self.pb
        return pb.ChatRequest(
            model=MODEL,
            messages=[pb.Message(role=pb.ROLE_USER,
                                 content=[pb.ContentBlock(text=f"tokens={n} delay_ms={delay}")])],
            config=pb.RunConfig(run_id=run_id))

    async def stream(self, stub, n, delay, label, timeout=60):
        """One Stream call; `label` names it here, its run id (a UUID) names it in the replicas' logs."""
        r = Result()
        r.label, run_id = label, str(uuid.uuid4())
        r.run_id, r.chunks, r.last, r.details = run_id, 0, False, ""
        r.t_start, r.t_first = time.monotonic(), None
        text = []
        call = stub.Stream(self.request(n, delay, run_id), timeout=timeout)
        try:
            async for c in call:
                if r.chunks == 0:
                    r.t_first = time.monotonic()
                    self.first_chunks += 1
                r.chunks += 1
                if c.WhichOneof("delta") == "text":
                    text.append(c.text)
                if c.last:
                    r.last = True
            r.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as e:
            r.code, r.details = e.code(), e.details() or ""
        r.t_end = time.monotonic()
        r.text_ok = "".join(text) == expected_text(n)
        return r


def integrity(results, label):
    """OK <=> last chunk <=> whole text; never OK and short, never last and non-OK."""
    bad = [r for r in results if r.ok() != r.last or (r.ok() and not r.text_ok)]
    check(not bad, f"{label}: every call is OK iff its `last` chunk arrived, and every OK call has the whole "
                   f"text ({len(results)} calls, {len(bad)} violations"
                   + (f", e.g. {bad[0].label} {bad[0].code.name} chunks={bad[0].chunks} last={bad[0].last}"
                      f" text_ok={bad[0].text_ok}" if bad else "") + ")")


def codes(results):
    return dict(collections.Counter(r.code.name for r in results))


# ---------------------------------------------------------------- nginx

def render_nginx(args, replicas, port, work):
    src = open(args.nginx_conf).read()
    lines = src.splitlines(keepends=True)
    out, skipping, seen_begin, seen_end, params = [], False, False, False, None
    for line in lines:
        if "# BEGIN replicas" in line:
            seen_begin, skipping = True, True
            out.append(line)
            continue
        if "# END replicas" in line:
            seen_end, skipping = True, False
            # the replicas, with the parameters the shipped file gives its own
            out += [f"    server {r.addr} {params};\n" for r in replicas]
        if skipping:
            m = re.match(r"\s*server\s+\S+\s*(.*?);", line)
            if m and params is None:
                params = m.group(1)
            continue
        out.append(line)
    conf = "".join(out)
    assert seen_begin and seen_end and params is not None, "BEGIN/END replicas markers or server lines missing in " + args.nginx_conf
    conf, n = re.subn(r"^(\s*)listen\s+\d+(\s)", rf"\g<1>listen 127.0.0.1:{port}\2", conf, flags=re.M)
    assert n == 1, "one `listen PORT` line expected in " + args.nginx_conf
    conf, n = re.subn(r"access_log\s+\S+", f"access_log {work}/nginx-access.log", conf)
    assert n == 1
    with open(f"{work}/chatwire.conf", "w") as f:
        f.write(conf)
    temp = f"{work}/nginx-temp"
    os.makedirs(temp, exist_ok=True)
    main = f"""# generated by scripts/scale-out/scaleout.py: a private nginx for one test run
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log notice;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {work}/chatwire.conf;
}}
"""
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(main)
    return f"{work}/nginx.conf"


def nginx_access(work, since=0):
    """(lines, Counter of (http status, grpc status), Counter of upstream) since byte offset."""
    path = f"{work}/nginx-access.log"
    st, up = collections.Counter(), collections.Counter()
    n = 0
    try:
        with open(path, "rb") as f:
            f.seek(since)
            for raw in f:
                line = raw.decode("utf-8", "replace")
                if "ChatModelService/Stream" not in line:
                    continue
                n += 1
                m = re.search(r'" (\d{3}) grpc_status=(\S*) upstream=(\S+(?:, \S+)*) ', line)
                if m:
                    st[(m.group(1), m.group(2))] += 1
                    up[m.group(3)] += 1
    except OSError:
        pass
    return n, st, up


def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# ---------------------------------------------------------------- phases

async def phase_spread(load, stub, replicas, n_calls):
    log(f"A. spread: {n_calls} concurrent Stream calls through nginx (20 tokens, 1 every 60 ms)")
    offs = offsets_of(replicas)
    t = time.monotonic()
    results = await asyncio.gather(*[load.stream(stub, 20, 60, f"spread-{i}") for i in range(n_calls)])
    took = time.monotonic() - t
    per = await settled_counts(replicas, offs, n_calls)
    check(all(r.ok() for r in results), f"A: all {n_calls} calls OK (codes {codes(results)}, {took:.1f}s)")
    integrity(results, "A")
    counts = {name: c.get("OK", 0) for name, c in per.items()}
    figure(f"A. spread of {n_calls} concurrent streams through nginx, from each replica's log: "
           + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (total {sum(counts.values())})")
    check(sum(counts.values()) == n_calls, f"A: the replicas' logs account for every call ({sum(counts.values())})")
    check(all(v >= n_calls // 6 for v in counts.values()),
          f"A: every replica carried at least a sixth of the calls ({min(counts.values())} min)")


async def phase_sigkill(load, stub, replicas, victim, n_calls):
    log(f"B. SIGKILL: {n_calls} concurrent streams (60 tokens, 1 every 60 ms); {victim.name} killed once all have started")
    offs = offsets_of(replicas)
    load.first_chunks = 0
    tasks = [asyncio.ensure_future(load.stream(stub, 60, 60, f"kill-{i}")) for i in range(n_calls)]
    deadline = time.monotonic() + 20
    while load.first_chunks < n_calls and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    started = load.first_chunks
    victim.signal(signal.SIGKILL)
    t_kill = time.monotonic()
    log(f"   SIGKILL {victim.name} (pid {victim.proc.pid}) with {started}/{n_calls} streams past their first chunk")
    await victim.wait_exit(5)
    # New calls right after the kill, while the survivors still carry their streams.
    await asyncio.sleep(0.2)
    new = await asyncio.gather(*[load.stream(stub, 5, 20, f"after-kill-{i}") for i in range(60)])
    results = await asyncio.gather(*tasks)
    carried, ended = started_run_ids(victim, offs[victim.name])
    cut_in_log = carried - ended
    failed = {r.run_id for r in results if not r.ok()}
    on_victim = [r for r in results if r.run_id in carried]
    figure(f"B. SIGKILL {victim.name} with {started} streams in flight: it carried {len(carried)} "
           f"({len(cut_in_log)} unfinished in its log); at the client those ended "
           f"{codes(on_victim)}; chunks received before the cut: "
           f"min {min((r.chunks for r in on_victim), default=0)}, max {max((r.chunks for r in on_victim), default=0)} of 61")
    details = collections.Counter(r.details[:90] for r in on_victim if not r.ok())
    for d, k in details.most_common(3):
        figure(f"   {k} × {d!r}")
    others = [r for r in results if r.run_id not in carried]
    figure(f"B. streams on the other replicas: {codes(others)}; new calls after the kill: {codes(new)}; "
           f"served by " + ", ".join(f"{k} {v.get('OK', 0)}" for k, v in
                                      count_calls([r for r in replicas if r is not victim], offs, "Stream").items()))
    check(started == n_calls, f"B: all {n_calls} streams had their first chunk before the kill ({started})")
    check(len(carried) > 0, f"B: {victim.name} carried some of the streams ({len(carried)})")
    check(all(not r.ok() for r in on_victim), "B: every stream the killed replica carried ended non-OK at the client")
    check(failed == carried, f"B: the calls that failed are exactly those the killed replica carried "
                             f"({len(failed)} failed, {len(carried)} carried)")
    check(all(r.ok() for r in others), f"B: every stream on the other replicas ended OK ({len(others)})")
    check(all(r.ok() for r in new), f"B: every new call after the kill succeeded ({codes(new)})")
    integrity(results + new, "B")
    return t_kill


async def phase_rolling(load, stub_retry, replicas, workers, label, work, proxy):
    log(f"C. rolling restart ({label}): {workers} clients calling back to back (20 tokens, 1 every 50 ms) "
        f"with gRPC's retry policy; SIGTERM, drain, start again, one replica at a time")
    offs = offsets_of(replicas)
    acc0 = size(f"{work}/nginx-access.log")
    stop = asyncio.Event()
    results = []

    async def worker(w):
        i = 0
        while not stop.is_set():
            results.append(await load.stream(stub_retry, 20, 50, f"roll-{w}-{i}"))
            i += 1

    tasks = [asyncio.ensure_future(worker(w)) for w in range(workers)]
    await asyncio.sleep(2)
    steps = []
    for r in replicas:
        t = time.monotonic()
        r.signal(signal.SIGTERM)
        rc = await r.wait_exit(30)
        drained = time.monotonic() - t
        r.start()
        await r.wait_healthy()
        back = time.monotonic() - t
        steps.append((r.name, rc, drained, back))
        log(f"   {r.name}: SIGTERM → exit {rc} after {drained:.1f}s, serving again after {back:.1f}s")
        await asyncio.sleep(2)
    stop.set()
    await asyncio.gather(*tasks)

    refusals = collections.Counter()
    cut_by_grace = 0
    for r in replicas:
        for ev in r.events(offs[r.name]):
            if ev.get("message") == "call ended" and ev.get("outcome") == "Unavailable" and ev.get("items") == 0 \
                    and not ev.get("run_id"):
                refusals[r.name] += 1
            if "grace period over" in str(ev.get("message", "")):
                cut_by_grace += 1
    # Every attempt of a call passes nginx once (nginx's own moves to another
    # replica happen inside one request): attempts seen by nginx - calls made
    # by the client = the client's retries.
    attempts, st, _ = nginx_access(work, acc0)
    proxy_unavailable = sum(v for (h, g), v in st.items() if g == "14" or h in ("502", "503", "504"))
    trailers_only = sum(v for (h, g), v in st.items() if h == "200" and g == "-")
    failed = [r for r in results if not r.ok()]
    retries = attempts - len(results)
    figure(f"C. rolling restart ({label}): {len(results)} calls, {len(failed)} failed "
           f"({codes(results)}); replica exits: " + ", ".join(f"{n} rc={rc} after {d:.1f}s" for n, rc, d, _ in steps))
    figure(f"C. retries needed ({label}): client retries (attempts in nginx's access log {attempts} - calls "
           f"{len(results)}) {retries}; DRAINING refusals in the replicas' logs {sum(refusals.values())} "
           f"({dict(refusals)}); nginx: {trailers_only} trailers-only answers (the refusals), {proxy_unavailable} "
           f"UNAVAILABLE / 5xx of its own; in-flight streams cut by the grace period: {cut_by_grace}")
    for (code, d), k in collections.Counter((r.code.name, r.details[:100]) for r in failed).most_common(4):
        figure(f"   failed: {k} × {code} {d!r}")
    check(steps and all(rc == 0 for _, rc, _, _ in steps), "C: every replica exited 0 after SIGTERM")
    check(not failed, f"C: zero failed calls with the retry policy ({len(failed)} failed"
                      + (f", e.g. {failed[0].code.name} {failed[0].details[:80]!r}" if failed else "") + ")")
    check(cut_by_grace == 0, "C: no in-flight stream was cut by the grace period")
    integrity(results, "C")
    return len(failed), retries, sum(refusals.values()), proxy_unavailable


async def phase_round_robin(load, args, pb_grpc, replicas, retry_config):
    target = "ipv4:" + ",".join(r.addr for r in replicas)
    log(f"D. client-side round_robin, no proxy: target {target}")
    config = json.loads(retry_config)
    config["loadBalancingConfig"] = [{"round_robin": {}}]
    ch = grpc.aio.insecure_channel(target, options=[
        ("grpc.service_config", json.dumps(config)),
        ("grpc.enable_retries", 1),
        # gRPC would send the whole address list as :authority, which is not a
        # valid authority: HTTP/2 servers (chatwire's hyper) reset such streams
        # (RST_STREAM PROTOCOL_ERROR, INTERNAL at the client). A DNS target
        # (a headless Service) needs no such option.
        ("grpc.default_authority", "chatwire"),
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ])
    stub = pb_grpc.ChatModelServiceStub(ch)
    await asyncio.wait_for(ch.channel_ready(), 10)
    # 1. spread
    offs = offsets_of(replicas)
    res = await asyncio.gather(*[load.stream(stub, 10, 30, f"rr-{i}") for i in range(90)])
    per = {k: v.get("OK", 0) for k, v in (await settled_counts(replicas, offs, len(res))).items()}
    figure("D. round_robin spread of 90 concurrent calls: " + ", ".join(f"{k} {v}" for k, v in per.items()))
    check(all(r.ok() for r in res), f"D: all 90 calls OK ({codes(res)})")
    check(all(v >= 15 for v in per.values()), f"D: every replica carried at least 15 of 90 ({per})")
    # 2. a replica goes away under load
    victim = replicas[0]
    offs = offsets_of(replicas)
    stop = asyncio.Event()
    results = []

    async def worker(w):
        i = 0
        while not stop.is_set():
            results.append(await load.stream(stub, 10, 30, f"rrk-{w}-{i}"))
            i += 1

    tasks = [asyncio.ensure_future(worker(w)) for w in range(30)]
    await asyncio.sleep(1.5)
    victim.signal(signal.SIGKILL)
    t_kill = time.monotonic()
    await victim.wait_exit(5)
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks)
    # Cut by the kill: calls started before it that no replica logged as ended
    # (the victim logs `call started` only once the upstream answered, so a
    # call can be on it without that line; the survivors log every call they ran).
    await settled_counts(replicas, offs, sum(1 for r in results if r.ok()), timeout=2.0)
    ended_anywhere = set()
    for rep in replicas:
        ended_anywhere |= started_run_ids(rep, offs[rep.name])[1]
    before = [r for r in results if r.t_start < t_kill]
    after = [r for r in results if r.t_start >= t_kill]
    cut = [r for r in before if r.run_id not in ended_anywhere]
    per_after = {k: v.get("OK", 0) for k, v in count_calls(replicas, offs, "Stream").items()}
    figure(f"D. SIGKILL {victim.name} under round_robin load: {len(before)} calls started before "
           f"({codes(before)}; {len(cut)} were on {victim.name}: {codes(cut)}), {len(after)} started after: "
           f"{codes(after)}; OK per replica over the phase: {per_after}")
    check(all(not r.ok() for r in cut), "D: every call cut by the kill ended non-OK")
    check(all(r.ok() for r in before if r not in cut), "D: every other call started before the kill succeeded")
    check(after and all(r.ok() for r in after),
          f"D: every call started after the kill succeeded on the other two ({codes(after)})")
    integrity(results, "D")
    # 3. back in rotation once restarted
    victim.start()
    await victim.wait_healthy()
    t = time.monotonic()
    back = None
    rejoin = []
    while time.monotonic() - t < 15 and back is None:
        offs = offsets_of(replicas)
        rejoin += await asyncio.gather(*[load.stream(stub, 3, 10, f"rrb-{len(rejoin) + i}") for i in range(30)])
        if count_calls([victim], offs, "Stream")[victim.name].get("OK", 0) > 0:
            back = time.monotonic() - t
    check(all(r.ok() for r in rejoin), f"D: calls while {victim.name} rejoins succeed ({codes(rejoin)})")
    figure(f"D. {victim.name} restarted: round_robin sends it calls again after "
           + (f"{back:.1f}s" if back is not None else "more than 15 s"))
    check(back is not None, f"D: round_robin uses the restarted {victim.name} again within 15 s")
    await ch.close()


# ---------------------------------------------------------------- main

RETRY_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": SERVICE}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
})


async def run(args):
    pb, pb_grpc = make_stubs(args.gen)
    load = Load(pb, pb_grpc)
    work = args.work

    # the mock upstream
    port_file = f"{work}/mock.port"
    mock_log = open(f"{work}/mock.log", "wb")
    mock = subprocess.Popen([sys.executable, args.mock, port_file], stdout=mock_log, stderr=subprocess.STDOUT)
    started(mock)
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        await asyncio.sleep(0.05)
    mock_port = int(open(port_file).read())
    log(f"mock OpenAI upstream on 127.0.0.1:{mock_port}")

    # the replicas
    config = f"{work}/chatwire.toml"
    with open(config, "w") as f:
        f.write(f"shutdown_grace_secs = {args.grace}\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "OLLAMA_", "CHATWIRE_"))}
    env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1",
               OPENAI_API_KEY="sk-scale-out-local-mock", RUST_LOG="info")
    replicas = [Replica(i, args, env, config) for i in range(3)]
    for r in replicas:
        r.start()
    for r in replicas:
        await r.wait_healthy()
    log("replicas serving: " + ", ".join(f"{r.name}={r.addr}" for r in replicas))

    # nginx
    nginx_port = free_port()
    conf = render_nginx(args, replicas, nginx_port, work)
    ngx_log = open(f"{work}/nginx.out", "wb")
    ngx = subprocess.Popen([args.nginx, "-p", f"{work}/", "-e", f"{work}/nginx-error.log", "-c", conf],
                           stdout=ngx_log, stderr=subprocess.STDOUT)
    started(ngx)
    proxy = f"127.0.0.1:{nginx_port}"
    plain = grpc.aio.insecure_channel(proxy)
    stub = pb_grpc.ChatModelServiceStub(plain)
    for _ in range(100):
        if ngx.poll() is not None:
            raise SystemExit(f"nginx exited ({ngx.returncode}); see {work}/nginx-error.log and nginx.out")
        if await health(proxy, SERVICE) == 1:
            break
        await asyncio.sleep(0.1)
    else:
        raise SystemExit("nginx: no healthy answer through it after 10 s")
    log(f"nginx {args.nginx} on {proxy} (grpc_pass to the three replicas)")

    await phase_spread(load, stub, replicas, args.calls)
    victim = replicas[1]
    await phase_sigkill(load, stub, replicas, victim, args.calls)
    victim.start()
    await victim.wait_healthy()
    log(f"{victim.name} started again on {victim.addr}")

    await plain.close()   # from here on, the only channel to the proxy is the retrying one (channelz counts it)
    retry_ch = grpc.aio.insecure_channel(proxy, options=[
        ("grpc.service_config", RETRY_CONFIG), ("grpc.enable_retries", 1)])
    stub_retry = pb_grpc.ChatModelServiceStub(retry_ch)
    await phase_rolling(load, stub_retry, replicas, args.workers, args.label, work, proxy)
    await retry_ch.close()

    await phase_round_robin(load, args, pb_grpc, replicas, RETRY_CONFIG)


def stop_children():
    for p in reversed(CHILDREN):
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + 3
    for p in CHILDREN:
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--nginx-conf", required=True)
    ap.add_argument("--mock", required=True)
    ap.add_argument("--gen", required=True, help="directory of the generated chatwire_pb2 stubs")
    ap.add_argument("--work", required=True)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--workers", type=int, default=60)
    ap.add_argument("--grace", type=int, default=10)
    ap.add_argument("--label", default="this binary")
    args = ap.parse_args()
    global PIDS_FILE
    PIDS_FILE = os.path.join(args.work, "pids")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    code = 1
    try:
        asyncio.run(run(args))
        code = 0 if CHECKS and all(ok for ok, _ in CHECKS) else 1
    except SystemExit as e:
        print(f"[scale-out] FAIL: {e}", flush=True)
    finally:
        stop_children()
    with open(f"{args.work}/summary.txt", "w") as f:
        f.write("\n".join(SUMMARY) + "\n")
    print("\n== figures")
    for line in SUMMARY:
        print("  " + line)
    bad = [w for ok, w in CHECKS if not ok]
    print(f"\n== {len(CHECKS) - len(bad)}/{len(CHECKS)} checks passed")
    for w in bad:
        print("  FAIL  " + w)
    sys.exit(code if not bad else 1)


if __name__ == "__main__":
    main()
