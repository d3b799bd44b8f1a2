#!/usr/bin/env python3
"""A slow OpenAI-compatible upstream for scripts/scale-out.sh (stdlib only).

Serves `POST /v1/chat/completions` with `stream: true` as OpenAI's Chat
Completions SSE: a role chunk, one chunk per token, a finish_reason chunk, the
usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`.
HTTP/1.1 keep-alive with chunked transfer encoding, as the real API.

The last user message says how to answer: `tokens=N delay_ms=D` streams the
tokens `w0 w1 ... w{N-1}` (each `wI` followed by a space but the last), one every
D milliseconds. Anything else gets 10 tokens at 50 ms.

Usage: mock_openai.py PORT_FILE   (binds 127.0.0.1:0, writes the port to PORT_FILE)
"""

import asyncio
import json
import re
import sys
import time

SPEC = re.compile(r"tokens=(\d+)\s+delay_ms=(\d+)")
MAX_TOKENS = 10_000
STATS = {"requests": 0, "completed": 0, "cut": 0, "in_flight": 0}


def tokens_for(n):
    return [f"w{i}" + (" " if i + 1 < n else "") for i in range(n)]


def last_user_text(body):
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


async def write_chunk(writer, data: bytes):
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    await writer.drain()


def sse(obj):
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def stream_answer(writer, body):
    text = last_user_text(body)
    m = SPEC.search(text)
    n, delay = (int(m.group(1)), int(m.group(2))) if m else (10, 50)
    n = min(n, MAX_TOKENS)
    model = body.get("model", "mock")
    created = int(time.time())
    cid = f"chatcmpl-{STATS['requests']}"

    def chunk(delta, finish=None):
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                 b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
    await write_chunk(writer, sse(chunk({"role": "assistant", "content": ""})))
    for tok in tokens_for(n):
        await asyncio.sleep(delay / 1000)
        await write_chunk(writer, sse(chunk({"content": tok})))
    await write_chunk(writer, sse(chunk({}, "stop")))
    if (body.get("stream_options") or {}).get("include_usage"):
        await write_chunk(writer, sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                                       "model": model, "choices": [],
                                       "usage": {"prompt_tokens": 5, "completion_tokens": n,
                                                 "total_tokens": 5 + n}}))
    await write_chunk(writer, b"data: [DONE]\n\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            raw = await reader.readexactly(length) if length else b""
            if method == "POST" and path.endswith("/chat/completions"):
                STATS["requests"] += 1
                STATS["in_flight"] += 1
                try:
                    body = json.loads(raw or b"{}")
                    if not body.get("stream"):
                        msg = b'{"error":{"message":"this mock streams only","type":"invalid_request_error"}}'
                        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                                     b"content-length: %d\r\n\r\n%s" % (len(msg), msg))
                        await writer.drain()
                        continue
                    await stream_answer(writer, body)
                    STATS["completed"] += 1
                except (ConnectionError, asyncio.CancelledError):
                    STATS["cut"] += 1
                    raise
                finally:
                    STATS["in_flight"] -= 1
            elif method == "GET" and path.endswith("/models"):
                msg = b'{"object":"list","data":[{"id":"mock","object":"model"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(msg), msg))
                await writer.drain()
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def report():
    while True:
        await asyncio.sleep(5)
        print(f"mock: {STATS}", flush=True)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(sys.argv[1], "w") as f:
        f.write(str(port))
    print(f"mock OpenAI upstream on 127.0.0.1:{port}", flush=True)
    asyncio.get_running_loop().create_task(report())
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
