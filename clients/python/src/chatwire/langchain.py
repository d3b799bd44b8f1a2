"""ChatChatwire: a LangChain chat model served by a chatwire server.

    from chatwire.langchain import ChatChatwire
    chat = ChatChatwire(model="anthropic:claude-3-haiku-20240307")   # addr: $CHATWIRE_ADDR
    for chunk in chat.stream("Write me a 1 verse song about goldfish on the moon"):
        print(chunk.content, end="|", flush=True)

Needs the ``[langchain]`` extra (``pip install "./clients/python[langchain]"``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import uuid
import weakref
from contextvars import ContextVar
from operator import itemgetter
from typing import Any, AsyncIterator, Callable, Iterator, Literal, Mapping, Sequence

try:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        'chatwire.langchain needs langchain-core: pip install "chatwire[langchain]" '
        '(from a checkout: pip install "./clients/python[langchain]")'
    ) from e
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough, ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils import secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from . import messages as _m
from .client import AsyncClient, Client
from .errors import ChatwireError, RetryableChatwireError
from .v1 import chatwire_pb2 as pb

__all__ = ["ChatChatwire"]

_ROLES = {"system": pb.ROLE_SYSTEM, "user": pb.ROLE_USER, "human": pb.ROLE_USER,
          "assistant": pb.ROLE_ASSISTANT, "ai": pb.ROLE_ASSISTANT, "tool": pb.ROLE_TOOL}
_EFFORTS = {
    "none": pb.REASONING_EFFORT_NONE,
    "minimal": pb.REASONING_EFFORT_MINIMAL,
    "low": pb.REASONING_EFFORT_LOW,
    "medium": pb.REASONING_EFFORT_MEDIUM,
    "high": pb.REASONING_EFFORT_HIGH,
}
_STOP_REASONS = {
    pb.STOP_REASON_END_TURN: "end_turn",
    pb.STOP_REASON_MAX_TOKENS: "max_tokens",
    pb.STOP_REASON_STOP_SEQUENCE: "stop_sequence",
    pb.STOP_REASON_TOOL_USE: "tool_use",
    pb.STOP_REASON_CONTENT_FILTER: "content_filter",
    pb.STOP_REASON_OTHER: "other",
}


# ----------------------------------------------------------------- LangChain -> chatwire
def _data_uri(url: str) -> tuple[bytes, str] | None:
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[5:].split(";base64,", 1)
    return base64.b64decode(data), head


def _media(kind: str, *, url: str | None = None, data: bytes | None = None, mime: str = "",
           filename: str = "") -> pb.ContentBlock:
    if url is not None and (parsed := _data_uri(url)):
        data, mime = parsed[0], mime or parsed[1]
        url = None
    if kind == "image":
        return _m.image(url=url, data=data, mime_type=mime)
    if kind == "audio":
        if data is None:
            raise ValueError("chatwire: audio must be inline (base64) data")
        return _m.audio(data, mime)
    return _m.file(url=url, data=data, mime_type=mime, filename=filename)


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


def _block_to_pb(block: Any) -> pb.ContentBlock | None:
    """One LangChain content block (v1 standard, v0 standard, OpenAI or Anthropic
    format) as a chatwire block; None for blocks carried elsewhere (tool calls)."""
    if isinstance(block, str):
        return _m.text(block)
    if not isinstance(block, Mapping):
        raise ValueError(f"chatwire: unsupported content block {block!r}")
    t = block.get("type")
    if t == "text":
        return _m.text(block.get("text", ""))
    if t in ("tool_call", "tool_use", "tool_call_chunk", "server_tool_call", "invalid_tool_call"):
        return None  # the message's tool_calls carry these
    if t == "reasoning":
        extras = block.get("extras") or {}
        return _m.reasoning(block.get("reasoning", ""), extras.get("signature", "") or block.get("signature", ""),
                            extras.get("redacted", ""))
    if t == "thinking":
        return _m.reasoning(block.get("thinking", ""), block.get("signature", ""))
    if t == "redacted_thinking":
        return _m.reasoning(redacted=block.get("data", ""))
    if t == "image_url":  # OpenAI
        iu = block.get("image_url")
        return _media("image", url=iu["url"] if isinstance(iu, Mapping) else iu)
    if t == "input_audio":  # OpenAI
        a = block["input_audio"]
        return _media("audio", data=_b64(a["data"]), mime=f"audio/{a.get('format', 'wav')}")
    if t in ("image", "file", "audio", "document"):
        kind = "file" if t == "document" else t
        mime = block.get("mime_type", "")
        filename = block.get("filename") or (block.get("extras") or {}).get("filename", "") \
            or (block.get("metadata") or {}).get("filename", "") or block.get("title", "") or ""
        src = block.get("source")
        if isinstance(src, Mapping):  # Anthropic: {"source": {"type": base64|url|text, ...}}
            mime = src.get("media_type", mime)
            if src.get("type") == "base64":
                return _media(kind, data=_b64(src["data"]), mime=mime, filename=filename)
            if src.get("type") == "url":
                return _media(kind, url=src["url"], mime=mime, filename=filename)
            if src.get("type") == "text":
                return _media(kind, data=src["data"].encode(), mime=mime or "text/plain", filename=filename)
        if t == "file" and isinstance(block.get("file"), Mapping):  # OpenAI file
            f = block["file"]
            return _media("file", url=f.get("file_data"), filename=f.get("filename", ""))
        st = block.get("source_type")  # v0 standard
        if st == "base64" or "base64" in block:
            return _media(kind, data=_b64(block.get("base64") or block["data"]), mime=mime, filename=filename)
        if st == "url" or "url" in block:
            return _media(kind, url=block["url"], mime=mime, filename=filename)
        if st == "text" or "text" in block:
            return _media(kind, data=block["text"].encode(), mime=mime or "text/plain", filename=filename)
        raise ValueError(f"chatwire: {t} block needs base64 data or a url (file ids are not supported)")
    if t == "tool_result":  # Anthropic tool_result inside a user message
        content = block.get("content", "")
        blocks = content if isinstance(content, list) else None
        return _m.tool_result(
            block.get("tool_use_id", ""),
            [b for b in (_block_to_pb(x) for x in blocks) if b is not None] if blocks is not None else str(content),
            is_error=bool(block.get("is_error", False)),
        )
    if t == "refusal":
        return pb.ContentBlock(refusal=block.get("refusal", ""))
    raise ValueError(f"chatwire: unsupported content block type {t!r}")


def _content_to_pb(content: Any) -> list[pb.ContentBlock]:
    if isinstance(content, str):
        return [_m.text(content)] if content else []
    out = []
    for b in content:
        pbb = _block_to_pb(b)
        if pbb is not None:
            out.append(pbb)
    return out


def _message_to_pb(msg: BaseMessage) -> pb.Message:
    if isinstance(msg, SystemMessage):
        return pb.Message(role=pb.ROLE_SYSTEM, content=_content_to_pb(msg.content))
    if isinstance(msg, HumanMessage):
        return pb.Message(role=pb.ROLE_USER, content=_content_to_pb(msg.content), name=msg.name or "")
    if isinstance(msg, AIMessage):
        content = _content_to_pb(msg.content)
        if not any(b.WhichOneof("block") == "reasoning" for b in content):
            rc = msg.additional_kwargs.get("reasoning_content")
            if rc:
                content.insert(0, _m.reasoning(rc, msg.additional_kwargs.get("reasoning_signature", "")))
        for tc in msg.tool_calls:
            content.append(_m.tool_call(tc.get("id") or "", tc["name"], json.dumps(tc.get("args") or {})))
        for itc in msg.invalid_tool_calls:
            content.append(_m.tool_call(itc.get("id") or "", itc.get("name") or "", itc.get("args") or "{}"))
        return pb.Message(role=pb.ROLE_ASSISTANT, content=content, name=msg.name or "")
    if isinstance(msg, ToolMessage):
        if isinstance(msg.content, str):
            res = _m.tool_result(msg.tool_call_id, msg.content, is_error=msg.status == "error")
        else:
            res = _m.tool_result(msg.tool_call_id, _content_to_pb(msg.content), is_error=msg.status == "error")
        return pb.Message(role=pb.ROLE_TOOL, content=[res])
    if isinstance(msg, ChatMessage):
        role = _ROLES.get(msg.role)
        if role is None:
            raise ValueError(f"chatwire: unsupported message role {msg.role!r}")
        return pb.Message(role=role, content=_content_to_pb(msg.content))
    raise ValueError(f"chatwire: unsupported message type {type(msg).__name__}")


def _tool_to_pb(tool: Mapping[str, Any]) -> pb.Tool:
    fn = tool.get("function", tool)
    t = pb.Tool(name=fn["name"], description=fn.get("description", "") or "",
                parameters=_m.struct(fn.get("parameters") or {"type": "object", "properties": {}}))
    strict = fn.get("strict")
    if strict is not None:
        t.strict = bool(strict)
    return t


def _tool_choice_to_pb(choice: Any, tool_names: Sequence[str]) -> pb.ToolChoice | None:
    """Every LangChain tool_choice form: "auto", "any" / "required", "none", True,
    a tool name, {"type": "function", "function": {"name"}}, {"type": "tool", "name"},
    {"type": "auto" | "any" | "none"}."""
    M = pb.ToolChoice
    if choice is None or choice is False:
        return None
    if choice is True:
        if len(tool_names) == 1:
            return M(mode=M.MODE_TOOL, name=tool_names[0])
        return M(mode=M.MODE_ANY)
    if isinstance(choice, str):
        if choice == "auto":
            return M(mode=M.MODE_AUTO)
        if choice in ("any", "required"):
            return M(mode=M.MODE_ANY)
        if choice == "none":
            return M(mode=M.MODE_NONE)
        return M(mode=M.MODE_TOOL, name=choice)
    if isinstance(choice, Mapping):
        t = choice.get("type")
        if t == "function" or "function" in choice:
            return M(mode=M.MODE_TOOL, name=choice["function"]["name"])
        if t == "tool":
            return M(mode=M.MODE_TOOL, name=choice["name"])
        if t in ("auto", "any", "none", "required"):
            return _tool_choice_to_pb(t, tool_names)
    raise ValueError(f"chatwire: unsupported tool_choice {choice!r}")


def _response_format_to_pb(rf: Any) -> pb.ResponseFormat | None:
    if rf is None:
        return None
    if isinstance(rf, pb.ResponseFormat):
        return rf
    t = rf.get("type")
    if t == "json_object":
        return pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT)
    if t == "text":
        return pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_TEXT)
    if t == "json_schema":
        js = rf.get("json_schema", rf)  # OpenAI nests it under "json_schema"
        return pb.ResponseFormat(
            type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name=js.get("name", "") or "",
            schema=_m.struct(js["schema"]), strict=bool(js.get("strict") or False),
            description=js.get("description", "") or "",
        )
    raise ValueError(f"chatwire: unsupported response_format {rf!r}")


# ----------------------------------------------------------------- chatwire -> LangChain
def _usage(u: pb.Usage) -> UsageMetadata:
    usage = UsageMetadata(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                          total_tokens=u.total_tokens or u.input_tokens + u.output_tokens)
    itd = InputTokenDetails()
    if u.cache_read_tokens:
        itd["cache_read"] = u.cache_read_tokens
    if u.cache_creation_tokens:
        itd["cache_creation"] = u.cache_creation_tokens
    if itd:
        usage["input_token_details"] = itd
    if u.reasoning_tokens:
        usage["output_token_details"] = OutputTokenDetails(reasoning=u.reasoning_tokens)
    return usage


def _response_metadata(src: Any) -> dict[str, Any]:
    """model_name, model_provider ("chatwire": the content-block format),
    provider (who answered upstream), finish_reason, stop_reason, stop_sequence
    and the upstream's response metadata (request_id...)."""
    md: dict[str, Any] = dict(src.response_metadata)
    md.update(model_name=src.model, model_provider="chatwire", provider=src.provider,
              finish_reason=src.finish_reason or _STOP_REASONS.get(src.stop_reason, ""))
    if src.stop_reason:
        md["stop_reason"] = _STOP_REASONS.get(src.stop_reason, "other")
    if src.stop_sequence:
        md["stop_sequence"] = src.stop_sequence
    return md


class _ChunkMapper:
    """pb.MessageChunk -> AIMessageChunk. Text is a plain string in "text" mode
    (as ChatAnthropic without tools or thinking); in "blocks" mode content is a
    list of standard blocks with the chunk's block index, so LangChain merges the
    fragments of one block."""

    def __init__(self, blocks: bool) -> None:
        self.blocks = blocks

    def map(self, c: pb.MessageChunk) -> ChatGenerationChunk:
        kind = c.WhichOneof("delta")
        content: Any = [] if self.blocks else ""
        kw: dict[str, Any] = {}
        additional: dict[str, Any] = {}
        if kind == "text":
            content = [{"type": "text", "text": c.text, "index": c.block_index}] if self.blocks else c.text
        elif kind == "refusal":
            additional["refusal"] = c.refusal
        elif kind == "tool_call":
            tc = c.tool_call
            kw["tool_call_chunks"] = [tool_call_chunk(name=tc.name or None, args=tc.arguments,
                                                      id=tc.id or None, index=tc.index)]
        elif kind == "reasoning":
            r = c.reasoning
            if self.blocks:
                block: dict[str, Any] = {"type": "reasoning", "index": c.block_index}
                if r.text:
                    block["reasoning"] = r.text
                extras = {k: v for k, v in (("signature", r.signature), ("redacted", r.redacted)) if v}
                if extras:
                    block["extras"] = extras
                content = [block]
            else:
                if r.text:
                    additional["reasoning_content"] = r.text
                if r.signature:
                    additional["reasoning_signature"] = r.signature
                if r.redacted:
                    additional["reasoning_redacted"] = r.redacted
        elif kind == "citation":
            ci = c.citation
            additional["citations"] = [{"block_index": ci.block_index, "type": ci.type, "cited_text": ci.cited_text,
                                        "url": ci.url, "title": ci.title, "start": ci.start, "end": ci.end}]
        if c.HasField("usage"):
            kw["usage_metadata"] = _usage(c.usage)
        if c.last:
            kw["chunk_position"] = "last"
            kw["response_metadata"] = _response_metadata(c)
        msg = AIMessageChunk(content=content, id=c.id or None, additional_kwargs=additional, **kw)
        return ChatGenerationChunk(message=msg)


def _message_from_pb(m: pb.ChatMessage, blocks: bool) -> AIMessage:
    parts: list[Any] = []
    additional: dict[str, Any] = {}
    texts = [b.text for b in m.content if b.WhichOneof("block") == "text"]
    other = [b for b in m.content if b.WhichOneof("block") != "text"]
    if not blocks and not any(b.WhichOneof("block") == "reasoning" for b in other):
        content: Any = "".join(texts)
    else:
        for i, b in enumerate(m.content):
            k = b.WhichOneof("block")
            if k == "text":
                parts.append({"type": "text", "text": b.text, "index": i})
            elif k == "reasoning":
                blk: dict[str, Any] = {"type": "reasoning", "reasoning": b.reasoning.text, "index": i}
                extras = {k2: v for k2, v in (("signature", b.reasoning.signature),
                                              ("redacted", b.reasoning.redacted)) if v}
                if extras:
                    blk["extras"] = extras
                parts.append(blk)
        content = parts
    refusal = "".join(b.refusal for b in m.content if b.WhichOneof("block") == "refusal")
    if refusal:
        additional["refusal"] = refusal
    tcs = [tool_call(name=t.name, args=json.loads(t.arguments_json) if t.arguments_json else
                     _struct_dict(t.arguments), id=t.id or None) for t in m.tool_calls]
    itcs = [invalid_tool_call(name=t.name, args=t.arguments, id=t.id or None, error=t.error)
            for t in m.invalid_tool_calls]
    kw: dict[str, Any] = {}
    if m.HasField("usage"):
        kw["usage_metadata"] = _usage(m.usage)
    return AIMessage(content=content, id=m.id or None, tool_calls=tcs, invalid_tool_calls=itcs,
                     additional_kwargs=additional, response_metadata=_response_metadata(m), **kw)


def _struct_dict(s: Any) -> dict:
    from google.protobuf import json_format
    return json_format.MessageToDict(s)


# ----------------------------------------------------------------- the model
# LangChain hands _stream no run manager, so the public entry points put the
# run's id, tags and metadata here for _build_request (RunConfig).
_RUN: ContextVar[dict[str, Any] | None] = ContextVar("chatwire_run", default=None)


def _reset(token: Any) -> None:
    try:
        _RUN.reset(token)
    except ValueError:  # a generator finished in another context
        pass

class ChatChatwire(BaseChatModel):
    """A LangChain chat model whose calls go to a chatwire server over gRPC.

    ``model`` is chatwire's model name: ``provider:model`` (e.g.
    ``anthropic:claude-3-haiku-20240307``, ``openai:gpt-4o-mini``, ``fake:echo``)
    or an alias from the server's config. The server is ``addr`` (default
    ``$CHATWIRE_ADDR``, else ``127.0.0.1:50051``; ``https://`` for TLS); the
    bearer token is ``api_key`` (default ``$CHATWIRE_API_KEY``). The provider
    keys live in the server, never here.

    Failures raise :class:`chatwire.ChatwireError`; retryable ones (UNAVAILABLE,
    RESOURCE_EXHAUSTED, ABORTED) as its subclass
    :class:`chatwire.RetryableChatwireError`, so
    ``chat.with_retry(retry_if_exception_type=(RetryableChatwireError,))`` and
    ``with_fallbacks`` act on them. ``max_retries`` retries those before the
    first chunk arrives.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model: str = Field(alias="model_name")
    """chatwire model name (``provider:model`` or an alias)."""
    addr: str | None = Field(default=None, alias="base_url")
    """The chatwire server; default ``$CHATWIRE_ADDR``, else ``127.0.0.1:50051``."""
    api_key: SecretStr | None = Field(default_factory=secret_from_env("CHATWIRE_API_KEY", default=None))
    """Bearer token for the chatwire server (``$CHATWIRE_API_KEY``)."""
    tls: bool | None = None
    """Use TLS (default: ``https://`` in addr, or ``$CHATWIRE_TLS=1``)."""
    root_certificates: bytes | None = None
    """PEM roots for TLS (default: the system's, or ``$CHATWIRE_TLS_CA``)."""
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    server_name: str | None = None
    timeout: float | None = None
    """Deadline of each call in seconds (the server honours it for the whole call)."""
    max_retries: int = 2
    """Retries of a retryable failure before the first chunk (the server itself
    already retries its upstream)."""

    temperature: float | None = None
    max_tokens: int | None = Field(default=None, alias="max_completion_tokens")
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    """Reasoning effort (Anthropic thinking budget, OpenAI reasoning_effort...)."""
    reasoning_budget_tokens: int | None = None
    """A reasoning token budget (Anthropic, Gemini)."""
    include_reasoning: bool | None = None
    """Whether reasoning comes back as reasoning content blocks."""
    provider_options: dict[str, Any] | None = None
    """Provider-specific JSON merged into the upstream body by the server."""
    streaming: bool = False
    """Whether ``invoke`` uses the Stream RPC (callbacks then see every token)."""

    _client: Client | None = PrivateAttr(default=None)
    _aclients: Any = PrivateAttr(default_factory=weakref.WeakKeyDictionary)

    @property
    def _llm_type(self) -> str:
        return "chatwire"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "stop": self.stop, "reasoning_effort": self.reasoning_effort}

    def _resolve_model(self, override: str | None) -> str:
        """A per-call ``model=``; one without a ``provider:`` prefix keeps this
        model's provider (``model="claude-3-5-haiku-latest"`` on an
        ``anthropic:...`` model), as a provider's own chat class would take it."""
        if not override:
            return self.model
        if ":" not in override and ":" in self.model:
            return f"{self.model.split(':', 1)[0]}:{override}"
        return override

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model", self.model)
        params = LangSmithParams(ls_provider=model.split(":", 1)[0] if ":" in model else "chatwire",
                                 ls_model_name=model, ls_model_type="chat")
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if (mt := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = mt
        if ls_stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = ls_stop
        return params

    # ---- the run (RunConfig: run id, tags, metadata)
    def _run(self, config: RunnableConfig | None) -> tuple[RunnableConfig, dict[str, Any]]:
        config = ensure_config(config)
        if config.get("run_id") is None:
            config = {**config, "run_id": uuid.uuid4()}
        run = {"run_id": str(config["run_id"]),
               "tags": list(dict.fromkeys([*(config.get("tags") or []), *(self.tags or [])])),
               "metadata": {**(self.metadata or {}), **(config.get("metadata") or {})}}
        return config, run

    def invoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
               stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        config, run = self._run(config)
        token = _RUN.set(run)
        try:
            return super().invoke(input, config, stop=stop, **kwargs)
        finally:
            _reset(token)

    async def ainvoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                      stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        config, run = self._run(config)
        token = _RUN.set(run)
        try:
            return await super().ainvoke(input, config, stop=stop, **kwargs)
        finally:
            _reset(token)

    def stream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
               stop: list[str] | None = None, **kwargs: Any) -> Iterator[AIMessageChunk]:
        config, run = self._run(config)
        token = _RUN.set(run)
        try:
            yield from super().stream(input, config, stop=stop, **kwargs)
        finally:
            _reset(token)

    async def astream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                      stop: list[str] | None = None, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        config, run = self._run(config)
        token = _RUN.set(run)
        try:
            async for chunk in super().astream(input, config, stop=stop, **kwargs):
                yield chunk
        finally:
            _reset(token)

    # ---- clients
    def _conn_kwargs(self) -> dict[str, Any]:
        return dict(token=self.api_key.get_secret_value() if self.api_key else None, tls=self.tls,
                    root_certificates=self.root_certificates, private_key=self.private_key,
                    certificate_chain=self.certificate_chain, server_name=self.server_name)

    def _sync_client(self) -> Client:
        if self._client is None:
            self._client = Client(self.addr, **self._conn_kwargs())
        return self._client

    def _async_client(self) -> AsyncClient:
        loop = asyncio.get_running_loop()
        c = self._aclients.get(loop)
        if c is None:
            c = AsyncClient(self.addr, **self._conn_kwargs())
            self._aclients[loop] = c
        return c

    # ---- the request
    def _blocks_mode(self, kwargs: Mapping[str, Any]) -> bool:
        return bool(kwargs.get("tools")) or self.reasoning_effort not in (None, "none") \
            or bool(self.reasoning_budget_tokens) or bool(self.include_reasoning)

    def _build_request(self, messages: list[BaseMessage], stop: list[str] | None,
                       run_manager: Any, kwargs: dict[str, Any]) -> pb.ChatRequest:
        kwargs = dict(kwargs)
        kwargs.pop("stream", None)
        kwargs.pop("ls_structured_output_format", None)
        req = pb.ChatRequest(model=self._resolve_model(kwargs.pop("model", None)),
                             messages=[_message_to_pb(m) for m in messages])

        def pick(name: str) -> Any:
            v = kwargs.pop(name, None)
            return v if v is not None else getattr(self, name)

        if (v := pick("max_tokens")) is not None:
            req.max_tokens = v
        for name in ("temperature", "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty",
                     "parallel_tool_calls"):
            if (v := pick(name)) is not None:
                setattr(req, name, v)
        stops = stop if stop is not None else kwargs.pop("stop", None)
        kwargs.pop("stop", None)
        req.stop.extend(stops if stops is not None else (self.stop or []))
        tools = kwargs.pop("tools", None) or []
        req.tools.extend(_tool_to_pb(t) for t in tools)
        tc = _tool_choice_to_pb(kwargs.pop("tool_choice", None), [t.name for t in req.tools])
        if tc is not None:
            req.tool_choice.CopyFrom(tc)
        rf = _response_format_to_pb(kwargs.pop("response_format", None))
        if rf is not None:
            req.response_format.CopyFrom(rf)
        effort = kwargs.pop("reasoning_effort", None) or self.reasoning_effort
        budget = kwargs.pop("reasoning_budget_tokens", None) or self.reasoning_budget_tokens
        incl = kwargs.pop("include_reasoning", None)
        incl = incl if incl is not None else self.include_reasoning
        if effort or budget or incl is not None:
            if effort:
                req.reasoning.effort = _EFFORTS[effort]
            if budget:
                req.reasoning.budget_tokens = budget
            if incl is not None:
                req.reasoning.include_reasoning = incl
        po = {**(self.provider_options or {}), **(kwargs.pop("provider_options", None) or {})}
        if po:
            req.provider_options.CopyFrom(_m.struct(po))
        if kwargs:
            raise TypeError(f"ChatChatwire: unsupported arguments {sorted(kwargs)}")
        run = _RUN.get()
        if run is None and run_manager is not None:
            run = {"run_id": str(run_manager.run_id), "tags": run_manager.tags or [],
                   "metadata": run_manager.metadata or {}}
        if run is not None:
            req.config.run_id = run["run_id"]
            req.config.tags.extend(run["tags"])
            for k, v in run["metadata"].items():
                req.config.metadata[str(k)] = v if isinstance(v, str) else json.dumps(v, default=str)
        return req

    def _backoff(self, attempt: int, err: ChatwireError) -> float:
        if err.retry_delay is not None:
            return min(err.retry_delay, 60.0)
        return min(0.5 * 2**attempt, 8.0) * (0.5 + random.random() / 2)

    # ---- sync
    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        blocks = self._blocks_mode(kwargs)
        req = self._build_request(messages, stop, run_manager, kwargs)
        attempt = 0
        while True:
            try:
                msg = self._sync_client().invoke(req, timeout=self.timeout)
                break
            except RetryableChatwireError as e:
                if attempt >= self.max_retries:
                    raise
                time.sleep(self._backoff(attempt, e))
                attempt += 1
        return ChatResult(generations=[ChatGeneration(message=_message_from_pb(msg, blocks))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        mapper = _ChunkMapper(self._blocks_mode(kwargs))
        req = self._build_request(messages, stop, run_manager, kwargs)
        attempt = 0
        while True:
            stream = self._sync_client().stream(req, timeout=self.timeout)
            sent = False
            try:
                for c in stream:
                    sent = True
                    yield mapper.map(c)
                return
            except RetryableChatwireError as e:
                if sent or attempt >= self.max_retries:
                    raise
                time.sleep(self._backoff(attempt, e))
                attempt += 1
            finally:
                stream.close()  # a consumer that stops early cancels the call

    # ---- async
    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        blocks = self._blocks_mode(kwargs)
        req = self._build_request(messages, stop, run_manager, kwargs)
        attempt = 0
        while True:
            try:
                msg = await self._async_client().invoke(req, timeout=self.timeout)
                break
            except RetryableChatwireError as e:
                if attempt >= self.max_retries:
                    raise
                await asyncio.sleep(self._backoff(attempt, e))
                attempt += 1
        return ChatResult(generations=[ChatGeneration(message=_message_from_pb(msg, blocks))])

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        mapper = _ChunkMapper(self._blocks_mode(kwargs))
        req = self._build_request(messages, stop, run_manager, kwargs)
        attempt = 0
        while True:
            stream = self._async_client().stream(req, timeout=self.timeout)
            sent = False
            try:
                async for c in stream:
                    sent = True
                    yield mapper.map(c)
                return
            except RetryableChatwireError as e:
                if sent or attempt >= self.max_retries:
                    raise
                await asyncio.sleep(self._backoff(attempt, e))
                attempt += 1
            finally:
                stream.close()

    # ---- tools and structured output
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: dict | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Binds tools (any form ``convert_to_openai_tool`` takes).

        ``tool_choice``: ``"auto"``, ``"any"`` / ``"required"``, ``"none"``, ``True``
        (the single tool, or any), a tool name, or a dict
        (``{"type": "function", "function": {"name": ...}}``, ``{"type": "tool", "name": ...}``).
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        if tool_choice is not None:
            _tool_choice_to_pb(tool_choice, [f["function"]["name"] for f in formatted])  # validate now
            kwargs["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict | BaseModel]:
        """Structured output by a forced tool call (``function_calling``), or by the
        API's ``responseFormat`` (``json_schema``: JSON following the schema;
        ``json_mode``: any JSON object)."""
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        if method == "function_calling":
            if schema is None:
                raise ValueError("schema is required for method='function_calling'")
            tool = convert_to_openai_tool(schema, strict=strict)
            name = tool["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, strict=strict,
                                  ls_structured_output_format={"kwargs": {"method": method, "strict": strict},
                                                               "schema": tool})
            parser: Runnable = (PydanticToolsParser(tools=[schema], first_tool_only=True) if is_pydantic
                                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True))
        elif method == "json_schema":
            if schema is None:
                raise ValueError("schema is required for method='json_schema'")
            fn = convert_to_openai_tool(schema)["function"]
            rf = {"type": "json_schema", "name": fn["name"], "schema": fn.get("parameters") or {},
                  "strict": bool(strict), "description": fn.get("description", "")}
            llm = self.bind(response_format=rf,
                            ls_structured_output_format={"kwargs": {"method": method, "strict": strict},
                                                         "schema": convert_to_openai_tool(schema)})
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        elif method == "json_mode":
            llm = self.bind(response_format={"type": "json_object"},
                            ls_structured_output_format={"kwargs": {"method": method}, "schema": schema})
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        else:
            raise ValueError(f"unknown method {method!r}: function_calling, json_schema or json_mode")
        if not include_raw:
            return llm | parser
        parser_assign = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
        parser_with_fallback = parser_assign.with_fallbacks([parser_none], exception_key="parsing_error")
        return RunnableMap(raw=llm) | parser_with_fallback
