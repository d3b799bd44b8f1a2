"""Starts a real chatwire server on 127.0.0.1 (a free port) for the tests.

The binary is $CHATWIRE_BIN, else the repository's target/{release,debug}/chatwire
if present, else `cargo build --bin chatwire` (debug) once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chatwire_bin() -> str:
    env = os.environ.get("CHATWIRE_BIN")
    if env:
        return env
    for p in (REPO / "target/release/chatwire", REPO / "target/debug/chatwire"):
        if p.exists():
            return str(p)
    subprocess.run(["cargo", "build", "--quiet", "--bin", "chatwire"], cwd=REPO, check=True, timeout=1800)
    return str(REPO / "target/debug/chatwire")


class Server:
    """A running chatwire; ``.addr`` is host:port, ``.log()`` its output so far."""

    def __init__(self, config: str = "", env: dict[str, str] | None = None, args: list[str] | None = None,
                 clear_provider_env: bool = False) -> None:
        self.dir = tempfile.mkdtemp(prefix="chatwire-py-")
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        cmd = [chatwire_bin(), "--addr", self.addr]
        if config:
            path = os.path.join(self.dir, "chatwire.toml")
            with open(path, "w") as f:
                f.write(config)
            cmd += ["--config", path]
        cmd += args or []
        full_env = dict(os.environ)
        full_env.pop("CHATWIRE_CONFIG", None)
        full_env.pop("CHATWIRE_ADDR", None)
        full_env.pop("CHATWIRE_API_KEYS", None)
        if clear_provider_env:
            for k in list(full_env):
                if k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_API", "OLLAMA_")):
                    del full_env[k]
        full_env.setdefault("RUST_LOG", "info")
        full_env.update(env or {})
        self.log_path = os.path.join(self.dir, "chatwire.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatwire exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chatwire not listening after 60s:\n{self.log()}")
                time.sleep(0.1)

    def log(self) -> str:
        self._log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        """Waits until ``needle`` appears in the log; returns the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in the server log after {timeout}s:\n{text[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
