"""Runs the three seed snippets against chatwire relaying a local mock of
Anthropic's Messages API, and checks their output exactly (token by token;
run ids, which are random UUIDs, are normalised to <uuid>).

    CHATWIRE_BIN=target/debug/chatwire python examples/python/check_seed.py [--update]
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SNIPPETS = ["sync_stream.py", "async_stream.py", "astream_events.py", "astream_events_v2.py"]
KEY = "sk-ant-mock-key"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"FAIL: {what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"FAIL: {what} not listening after 30s")


def main():
    update = "--update" in sys.argv
    binary = os.environ.get("CHATWIRE_BIN") or str(HERE.parents[1] / "target/debug/chatwire")
    procs = []
    try:
        mock = subprocess.Popen([sys.executable, str(HERE / "mock_anthropic.py"), "--key", KEY],
                                stdout=subprocess.PIPE, text=True)
        procs.append(mock)
        mock_port = int(mock.stdout.readline())
        cw_port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_API", "OLLAMA_", "CHATWIRE_"))}
        env.update(ANTHROPIC_BASE_URL=f"http://127.0.0.1:{mock_port}", ANTHROPIC_API_KEY=KEY,
                   RUST_LOG="warn")
        cw = subprocess.Popen([binary, "--addr", f"127.0.0.1:{cw_port}"], env=env)
        procs.append(cw)
        wait_port(cw_port, cw, "chatwire")
        bad = 0
        for name in SNIPPETS:
            run_env = dict(os.environ, CHATWIRE_ADDR=f"127.0.0.1:{cw_port}")
            r = subprocess.run([sys.executable, str(HERE / "run_snippet.py"), str(HERE / name)],
                               env=run_env, capture_output=True, text=True, timeout=120)
            got = UUID.sub("<uuid>", r.stdout)
            exp_path = HERE / "expected" / (name.replace(".py", ".txt"))
            print(f"--- {name} (exit {r.returncode})\n{r.stdout}")
            if r.returncode != 0:
                print(r.stderr)
                bad += 1
                continue
            if update:
                exp_path.write_text(got, encoding="utf-8")
                continue
            want = exp_path.read_text(encoding="utf-8")
            if got != want:
                bad += 1
                print(f"FAIL {name}: output differs from {exp_path.name}")
                print(f"  want: {want!r}\n  got:  {got!r}")
            else:
                print(f"ok   {name}: output equals {exp_path.name}")
        print(f"seed examples: {len(SNIPPETS) - bad} passed, {bad} failed")
        return 1 if bad else 0
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
