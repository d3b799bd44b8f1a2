"""ChatChatwire's mapping, through a real chatwire server (scripted fakes)."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel

from chatwire import ChatwireError, RetryableChatwireError, pb
from chatwire.langchain import ChatChatwire


def fold(chunks):
    full = None
    for c in chunks:
        full = c if full is None else full + c
    return full


def test_stream_maps_reasoning_text_tool_calls_usage_metadata(addr):
    chat = ChatChatwire(model="fake:thinking", addr=addr, reasoning_effort="low")
    chunks = list(chat.bind_tools([{"name": "get_weather", "description": "w",
                                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}],
                                  tool_choice="auto").stream("hi"))
    assert chunks[-1].chunk_position == "last"
    assert all(c.id == "msg_thinking" for c in chunks)
    full = fold(chunks)
    assert full.content == [
        {"type": "reasoning", "reasoning": "The user wants a greeting.", "index": 0,
         "extras": {"signature": "EqQBCkYIBxgCKkA"}},
        {"type": "text", "text": "Hello there!", "index": 1},
    ]
    assert full.tool_calls == [{"name": "get_weather", "args": {"location": "Paris"}, "id": "toolu_1",
                                "type": "tool_call"}]
    assert full.usage_metadata == {"input_tokens": 50, "output_tokens": 40, "total_tokens": 90,
                                   "input_token_details": {"cache_read": 30, "cache_creation": 10},
                                   "output_token_details": {"reasoning": 15}}
    md = full.response_metadata
    assert md["model_name"] == "thinking" and md["model_provider"] == "chatwire" and md["provider"] == "fake"
    assert md["finish_reason"] and md["stop_reason"] == "tool_use"
    blocks = full.content_blocks
    assert [b["type"] for b in blocks] == ["reasoning", "text", "tool_call"]


def test_invoke_equals_stream_fold(addr):
    chat = ChatChatwire(model="fake:thinking", addr=addr, reasoning_effort="low")
    msg = chat.invoke("hi")
    full = fold(chat.stream("hi"))
    assert msg.usage_metadata == full.usage_metadata
    assert msg.tool_calls == full.tool_calls
    assert [b for b in msg.content if b["type"] == "text"][0]["text"] == "Hello there!"
    assert msg.content[0]["extras"]["signature"] == "EqQBCkYIBxgCKkA"


def test_text_only_streams_strings_with_usage(addr):
    chat = ChatChatwire(model="fake:echo", addr=addr)
    chunks = list(chat.stream("goldfish on the moon"))
    assert [c.content for c in chunks[:-1]] == ["goldfish", " ", "on", " ", "the", " ", "moon"]
    assert chunks[-1].chunk_position == "last" and chunks[-1].content == ""
    assert chunks[-1].usage_metadata["output_tokens"] >= 1


def test_reasoning_without_reasoning_config_goes_to_additional_kwargs(addr):
    full = fold(ChatChatwire(model="fake:usage", addr=addr).stream("x"))
    assert full.content == "Done."
    assert full.additional_kwargs == {"reasoning_content": "Counting tokens.", "reasoning_signature": "sig-usage"}


async def test_astream_events_v2_chunks(addr):
    chat = ChatChatwire(model="fake:echo", addr=addr)
    events = [e async for e in chat.astream_events("a b", version="v2")]
    assert events[0]["event"] == "on_chat_model_start" and events[-1]["event"] == "on_chat_model_end"
    streamed = [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]
    assert streamed == ["a", " ", "b", ""]
    assert events[-1]["data"]["output"].content == "a b"


def test_structured_output_json_schema_and_function_calling(addr):
    class Joke(BaseModel):
        setup: str
        punchline: str

    joke = ChatChatwire(model="fake:joke", addr=addr).with_structured_output(Joke, method="json_schema")
    assert joke.invoke("x").punchline == "To keep an eye on the mouse."
    raw = ChatChatwire(model="fake:joke", addr=addr).with_structured_output(Joke, method="json_mode",
                                                                            include_raw=True).invoke("x")
    assert isinstance(raw["raw"], AIMessage) and raw["parsed"].setup.startswith("Why") and raw["parsing_error"] is None


def test_request_mapping():
    chat = ChatChatwire(model="anthropic:claude-x", max_tokens=64, temperature=0.2, stop=["END"],
                        reasoning_effort="high", reasoning_budget_tokens=2048, include_reasoning=True)

    class RM:
        run_id = uuid.UUID("01939d4e-0000-7000-8000-000000000001")
        tags = ["t1"]
        metadata = {"user": "u1", "n": 3}

    msgs = [SystemMessage("sys"),
            HumanMessage(content=[{"type": "text", "text": "see"},
                                  {"type": "image", "base64": "iVBORw==", "mime_type": "image/png"},
                                  {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                                  {"type": "file", "url": "https://x/a.pdf", "mime_type": "application/pdf"}]),
            AIMessage(content=[{"type": "reasoning", "reasoning": "hm", "extras": {"signature": "S"}}],
                      tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]),
            ToolMessage("boom", tool_call_id="c1", status="error")]
    req = chat._build_request(msgs, None, RM(), {
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters":
                                                    {"type": "object", "properties": {}}}}],
        "tool_choice": "any", "response_format": {"type": "json_object"}, "model": "claude-y"})
    assert req.model == "anthropic:claude-y"
    assert req.max_tokens == 64 and req.temperature == pytest.approx(0.2) and list(req.stop) == ["END"]
    assert req.reasoning.effort == pb.REASONING_EFFORT_HIGH and req.reasoning.budget_tokens == 2048
    assert req.reasoning.include_reasoning
    assert req.tool_choice.mode == pb.ToolChoice.MODE_ANY and req.tools[0].name == "f"
    assert req.response_format.type == pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT
    assert req.config.run_id == str(RM.run_id) and list(req.config.tags) == ["t1"]
    assert dict(req.config.metadata) == {"user": "u1", "n": "3"}
    user = req.messages[1].content
    assert user[1].image.data == b"\x89PNG" and user[1].image.mime_type == "image/png"
    assert user[2].image.mime_type == "image/jpeg" and user[3].file.url == "https://x/a.pdf"
    ai = req.messages[2].content
    assert ai[0].reasoning.signature == "S" and ai[1].tool_call.arguments_json == '{"a": 1}'
    assert req.messages[3].content[0].tool_result.is_error


@pytest.mark.parametrize("choice,mode,name", [
    ("auto", pb.ToolChoice.MODE_AUTO, ""), ("any", pb.ToolChoice.MODE_ANY, ""),
    ("required", pb.ToolChoice.MODE_ANY, ""), ("none", pb.ToolChoice.MODE_NONE, ""),
    ("g", pb.ToolChoice.MODE_TOOL, "g"), (True, pb.ToolChoice.MODE_ANY, ""),
    ({"type": "function", "function": {"name": "g"}}, pb.ToolChoice.MODE_TOOL, "g"),
    ({"type": "tool", "name": "f"}, pb.ToolChoice.MODE_TOOL, "f"),
])
def test_tool_choice_forms(choice, mode, name):
    def f(x: int) -> int:
        """f."""
        return x

    def g(y: str) -> str:
        """g."""
        return y

    bound = ChatChatwire(model="fake:echo").bind_tools([f, g], tool_choice=choice)
    req = bound.bound._build_request([HumanMessage("x")], None, None, dict(bound.kwargs))
    assert req.tool_choice.mode == mode and req.tool_choice.name == name
    assert [t.name for t in req.tools] == ["f", "g"]


def test_errors_retry_and_fallbacks(addr):
    over = ChatChatwire(model="fake:overloaded", addr=addr, max_retries=0)
    with pytest.raises(RetryableChatwireError) as ei:
        over.invoke("x")
    assert ei.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and ei.value.retry_delay == 7.0
    calls = []
    retried = over.with_retry(retry_if_exception_type=(RetryableChatwireError,), stop_after_attempt=2,
                              wait_exponential_jitter=False)
    t0 = time.monotonic()
    with pytest.raises(RetryableChatwireError):
        retried.invoke("x", config={"callbacks": []})
    assert time.monotonic() - t0 < 30
    fb = over.with_fallbacks([ChatChatwire(model="fake:echo", addr=addr)],
                             exceptions_to_handle=(RetryableChatwireError,))
    assert fb.invoke("fell back").content == "fell back"
    bad = ChatChatwire(model="nosuchprovider:x", addr=addr)
    with pytest.raises(ChatwireError) as ei2:
        bad.with_fallbacks([ChatChatwire(model="fake:echo", addr=addr)],
                           exceptions_to_handle=(RetryableChatwireError,)).invoke("x")
    assert not ei2.value.retryable and ei2.value.code == grpc.StatusCode.NOT_FOUND
    del calls


def test_breaking_out_of_chat_stream_cancels(addr):
    from chatwire_server import Server

    s = Server("[fake]\ntoken_delay_ms = 200\n", clear_provider_env=True)
    try:
        chat = ChatChatwire(model="fake:echo", addr=s.addr)
        from langchain_core.callbacks import BaseCallbackHandler

        seen = []

        class Rec(BaseCallbackHandler):
            def on_chat_model_start(self, serialized, messages, *, run_id, **kw):
                seen.append(run_id)

        for chunk in chat.stream(" ".join(["w"] * 100), config={"callbacks": [Rec()]}):
            break
        run_id = seen[0]  # LangChain's run id, sent as the request's RunConfig.run_id
        deadline = time.monotonic() + 10
        lines: list[str] = []
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
            lines = [l for l in s.log().splitlines() if "call ended" in l and str(run_id) in l]
        assert lines and "dropped before completion" in lines[0], s.log()[-3000:]
    finally:
        s.stop()


async def test_breaking_out_of_chat_astream_cancels():
    from chatwire_server import Server

    s = Server("[fake]\ntoken_delay_ms = 200\n", clear_provider_env=True)
    try:
        chat = ChatChatwire(model="fake:echo", addr=s.addr)
        async for chunk in chat.astream(" ".join(["w"] * 100), config={"tags": ["break-me"]}):
            break
        deadline = time.monotonic() + 10
        lines: list[str] = []
        while not lines and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            lines = [l for l in s.log().splitlines() if "call ended" in l]
        assert lines and "dropped before completion" in lines[0], lines
    finally:
        s.stop()
