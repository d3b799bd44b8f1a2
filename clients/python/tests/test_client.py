"""The typed client against a real chatwire server (fake models)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time

import grpc
import pytest

from chatwire import AsyncClient, ChatwireError, Client, RetryableChatwireError, messages as m, pb
from chatwire_server import Server


def script(s: dict) -> list[pb.Message]:
    return [m.user(json.dumps(s))]


def test_stream_invoke_events_list_models(addr):
    with Client(addr) as c:
        chunks = list(c.stream(model="fake:echo", messages=[m.user("hello there")]))
        assert [ch.text for ch in chunks if ch.WhichOneof("delta") == "text"] == ["hello", " ", "there"]
        assert [ch.last for ch in chunks].count(True) == 1 and chunks[-1].last
        msg = c.invoke(model="fake:echo", messages=[m.user("hello there")], max_tokens=1)
        assert m.text_of(msg) == "hello" and msg.stop_reason == pb.STOP_REASON_MAX_TOKENS
        events = list(c.stream_events(m.request("fake:echo", "hi", config=pb.RunConfig(tags=["t1"]))))
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[0] == "start" and kinds[-1] == "end" and set(kinds[1:-1]) == {"stream"}
        assert all(list(e.tags) == ["t1"] for e in events)
        names = {x.name for x in c.list_models().providers}
        assert "fake" in names


async def test_async_stream_invoke_events_list_models(addr):
    async with AsyncClient(addr) as c:
        texts = [ch.text async for ch in c.stream(model="fake:echo", messages=[m.user("a b")])
                 if ch.WhichOneof("delta") == "text"]
        assert texts == ["a", " ", "b"]
        msg = await c.invoke(model="fake:echo", messages=[m.user("a b")], stop=[" "])
        assert m.text_of(msg) == "a" and msg.stop_reason == pb.STOP_REASON_STOP_SEQUENCE
        kinds = [e.WhichOneof("event") async for e in c.stream_events(model="fake:echo", messages="x")]
        assert kinds[0] == "start" and kinds[-1] == "end"
        assert "fake" in {x.name for x in (await c.list_models()).providers}


def test_error_carries_code_reason_metadata_retry_delay(addr):
    bad = {"chunks": [{"text": "x"}], "fail": {"afterChunks": 0, "httpStatus": 429, "retryAfterSecs": 7,
                                               "message": "slow down"}}
    with Client(addr) as c:
        with pytest.raises(RetryableChatwireError) as ei:
            c.invoke(model="fake:script", messages=script(bad))
    e = ei.value
    assert isinstance(e, ChatwireError) and e.retryable
    assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.domain == "chatwire" and e.reason and e.reason.isupper()
    assert e.metadata.get("provider") == "fake" and e.metadata.get("upstream_status") == "429"
    assert e.retry_delay == 7.0


async def test_async_error_mid_stream_after_chunks(addr):
    cut = {"chunks": [{"text": "Hel"}, {"text": "lo"}], "fail": {"afterChunks": 2, "code": "UNAVAILABLE"}}
    got = []
    async with AsyncClient(addr) as c:
        with pytest.raises(ChatwireError) as ei:
            async for ch in c.stream(model="fake:script", messages=script(cut)):
                got.append(ch.text)
    assert got == ["Hel", "lo"]
    assert ei.value.code == grpc.StatusCode.UNAVAILABLE and ei.value.retryable


def test_bad_request_is_not_retryable(addr):
    with Client(addr) as c, pytest.raises(ChatwireError) as ei:
        c.invoke(model="fake:echo", messages=[pb.Message(content=[m.text("no role")])])
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert not ei.value.retryable and not isinstance(ei.value, RetryableChatwireError)
    assert "role" in ei.value.message


@pytest.fixture(scope="module")
def slow_server():
    s = Server("[fake]\ntoken_delay_ms = 200\n", clear_provider_env=True)
    yield s
    s.stop()


LONG = " ".join(["word"] * 200)


def test_deadline(slow_server):
    with Client(slow_server.addr) as c:
        t0 = time.monotonic()
        with pytest.raises(ChatwireError) as ei:
            list(c.stream(model="fake:echo", messages=[m.user(LONG)], timeout=0.5))
        assert ei.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 5


def _run_id_request(run_id: str) -> pb.ChatRequest:
    return m.request("fake:echo", LONG, config=pb.RunConfig(run_id=run_id))


def test_closing_the_stream_cancels_the_call(slow_server):
    run_id = "0193a6c0-0000-7000-8000-00000000c10e"
    with Client(slow_server.addr) as c:
        stream = c.stream(_run_id_request(run_id))
        first = next(stream)
        assert first.text == "word"
        stream.close()
        assert list(stream) == []
        # The server saw the call go away (the channel is still open), long
        # before the echo's 400 tokens x 200 ms.
        line: list[str] = []
        deadline = time.monotonic() + 10
        while not line and time.monotonic() < deadline:
            time.sleep(0.05)
            line = [l for l in slow_server.log().splitlines() if "call ended" in l and run_id in l]
    assert line and "dropped before completion" in line[0], line


async def test_breaking_out_of_async_for_cancels_the_call(slow_server):
    run_id = "0193a6c0-0000-7000-8000-00000000a51c"
    async with AsyncClient(slow_server.addr) as c:
        async for ch in c.stream(_run_id_request(run_id)):
            assert ch.text == "word"
            break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [l for l in slow_server.log().splitlines() if "call ended" in l and run_id in l]
            if lines:
                break
            await asyncio.sleep(0.05)
    assert lines and "dropped before completion" in lines[0], lines


def test_bearer_token():
    s = Server("", env={"CHATWIRE_API_KEYS": "tok-1,tok-2"}, clear_provider_env=True)
    try:
        with Client(s.addr) as c, pytest.raises(ChatwireError) as ei:
            c.invoke(model="fake:echo", messages="hi")
        assert ei.value.code == grpc.StatusCode.UNAUTHENTICATED
        with Client(s.addr, token="tok-2") as c:
            assert m.text_of(c.invoke(model="fake:echo", messages="hi")) == "hi"
    finally:
        s.stop()


def test_tls(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    s = Server("", args=["--tls-cert", str(cert), "--tls-key", str(key)], clear_provider_env=True)
    try:
        with Client(s.addr, root_certificates=cert.read_bytes()) as c:
            assert m.text_of(c.invoke(model="fake:echo", messages="secure")) == "secure"
        with Client(f"https://{s.addr}", root_certificates=cert.read_bytes(), server_name="localhost") as c:
            assert m.text_of(c.invoke(model="fake:echo", messages="named")) == "named"
        with Client(s.addr) as c, pytest.raises(ChatwireError) as ei:  # plaintext to a TLS port
            c.invoke(model="fake:echo", messages="hi", timeout=5)
        assert ei.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        s.stop()


def test_env_addr_and_token(addr, monkeypatch):
    monkeypatch.setenv("CHATWIRE_ADDR", addr)
    with Client() as c:
        assert m.text_of(c.invoke(model="fake:echo", messages="from env")) == "from env"


def test_message_constructors():
    req = m.request("fake:echo", [
        m.system("Be brief."),
        m.user("look", m.image(url="https://example.com/a.png"), m.image(data=b"\x89PNG", mime_type="image/png"),
               m.file(data=b"%PDF", mime_type="application/pdf", filename="a.pdf")),
        m.assistant(m.tool_call("c1", "f", {"x": 1})),
        m.tool("c1", "42"),
        m.user(m.tool_result("c1", [m.text("ok"), m.image(url="https://example.com/b.png")], is_error=True)),
    ], provider_options={"k": 1})
    assert [x.role for x in req.messages] == [1, 2, 3, 4, 2]
    assert req.messages[2].content[0].tool_call.arguments_json == '{"x": 1}'
    assert req.messages[4].content[0].tool_result.is_error
    assert req.provider_options["k"] == 1
    with pytest.raises(ValueError):
        m.image()
