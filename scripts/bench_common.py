"""What the benchmark scripts share: waiting for a port, setting the shared
harness's mock at run time, a process's CPU time, stopping what they started.
Imported by the scripts beside it."""
import os
import socket
import subprocess
import time
import urllib.request


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port, proc, seconds=20):
    """Until something listens on 127.0.0.1:`port`; fails at once if `proc`,
    which should be listening there, has exited."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited ({proc.returncode}) before listening on {port}")
        if port_open(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def mock_config(port, query):
    """Sets the harness's mock on 127.0.0.1:`port` (`POST /_mock/config?query`,
    e.g. "tokens=200&first_delay_ms=0"); the knobs not named keep their values."""
    url = f"http://127.0.0.1:{port}/_mock/config?{query}"
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).read()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_all(procs):
    """SIGTERM, newest first (nginx's master then stops its worker too), then
    SIGKILL whatever has not exited after 10 s."""
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
