"""A local mock of Anthropic's Messages API for the seed examples.

Serves POST /v1/messages with a recorded-format SSE body (default
fixtures/goldfish_haiku.sse), written to the socket in small pieces at
irregular points (inside events, inside UTF-8), as a real network delivers
it. Checks what chatwire sends: the x-api-key, anthropic-version, the model,
stream: true. Prints its port on stdout, then serves until killed.

    python mock_anthropic.py [--key KEY] [--fixture FILE]
"""

import argparse
import json
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--key", default="sk-ant-mock-key")
ap.add_argument("--fixture", default=str(Path(__file__).parent / "fixtures" / "goldfish_haiku.sse"))
ap.add_argument("--model", default="claude-3-haiku-20240307")
args = ap.parse_args()
BODY = Path(args.fixture).read_bytes()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # to stderr, one line per request
        sys.stderr.write("mock-anthropic: " + (fmt % a) + "\n")

    def _error(self, status, kind, msg):
        body = json.dumps({"type": "error", "error": {"type": kind, "message": msg}}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/messages":
            return self._error(404, "not_found_error", f"no route {self.path}")
        if self.headers.get("x-api-key") != args.key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not self.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version header is required")
        if req.get("model") != args.model or req.get("stream") is not True:
            return self._error(400, "invalid_request_error", f"unexpected model/stream: {req.get('model')!r}")
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("request-id", "req_mock_0001")
        self.send_header("connection", "close")
        self.end_headers()
        rnd = random.Random(7)
        i = 0
        try:
            while i < len(BODY):
                n = rnd.randint(1, 97)
                self.wfile.write(BODY[i : i + n])
                self.wfile.flush()
                i += n
                if rnd.random() < 0.1:
                    time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            # chatwire dropped the upstream request: its client went away.
            sys.stderr.write(f"mock-anthropic: chatwire closed the stream after {i} of {len(BODY)} bytes\n")
        self.close_connection = True


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
