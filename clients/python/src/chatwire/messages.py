"""Convenience constructors for requests, messages and content blocks.

    from chatwire import messages as m
    req = m.request("fake:echo", [m.system("Be brief."), m.user("hi", m.image(url="https://..."))],
                    max_tokens=64)
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence, Union

from google.protobuf import json_format, struct_pb2

from .v1 import chatwire_pb2 as pb

__all__ = [
    "text",
    "image",
    "file",
    "audio",
    "tool_call",
    "tool_result",
    "reasoning",
    "system",
    "user",
    "assistant",
    "tool",
    "message",
    "request",
    "struct",
    "tool_spec",
    "text_of",
]

Content = Union[str, pb.ContentBlock]


def struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct:
    """A JSON object as a ``google.protobuf.Struct``."""
    s = struct_pb2.Struct()
    if value:
        s.update(dict(value))
    return s


def text(value: str) -> pb.ContentBlock:
    return pb.ContentBlock(text=value)


def image(*, url: str | None = None, data: bytes | None = None, mime_type: str = "") -> pb.ContentBlock:
    """An image by http(s) / ``data:`` URL, or inline bytes with their media type."""
    if (url is None) == (data is None):
        raise ValueError("image: give exactly one of url= or data=")
    img = pb.Image(url=url) if url is not None else pb.Image(data=data, mime_type=mime_type)
    return pb.ContentBlock(image=img)


def file(
    *, url: str | None = None, data: bytes | None = None, mime_type: str = "", filename: str = ""
) -> pb.ContentBlock:
    """A document (PDF, text...) by URL or inline bytes."""
    if (url is None) == (data is None):
        raise ValueError("file: give exactly one of url= or data=")
    f = pb.File(url=url) if url is not None else pb.File(data=data)
    f.mime_type = mime_type
    f.filename = filename
    return pb.ContentBlock(file=f)


def audio(data: bytes, mime_type: str) -> pb.ContentBlock:
    return pb.ContentBlock(audio=pb.Audio(data=data, mime_type=mime_type))


def tool_call(id: str, name: str, arguments: Mapping[str, Any] | str) -> pb.ContentBlock:
    """A tool call the model made (for assistant messages sent back).

    ``arguments`` is an object, or its exact JSON text (sent as ``argumentsJson``).
    """
    if isinstance(arguments, str):
        return pb.ContentBlock(tool_call=pb.ToolCall(id=id, name=name, arguments_json=arguments))
    return pb.ContentBlock(
        tool_call=pb.ToolCall(id=id, name=name, arguments_json=json.dumps(dict(arguments)))
    )


def tool_result(
    tool_call_id: str, content: str | Sequence[Content] = "", *, is_error: bool = False
) -> pb.ContentBlock:
    """A tool's result: text, or content blocks (text, image, file)."""
    if isinstance(content, str):
        return pb.ContentBlock(
            tool_result=pb.ToolResult(tool_call_id=tool_call_id, content=content, is_error=is_error)
        )
    return pb.ContentBlock(
        tool_result=pb.ToolResult(
            tool_call_id=tool_call_id, blocks=[_block(c) for c in content], is_error=is_error
        )
    )


def reasoning(text: str = "", signature: str = "", redacted: str = "") -> pb.ContentBlock:
    return pb.ContentBlock(reasoning=pb.Reasoning(text=text, signature=signature, redacted=redacted))


def _block(c: Content) -> pb.ContentBlock:
    return text(c) if isinstance(c, str) else c


def message(role: int, *content: Content, name: str = "") -> pb.Message:
    return pb.Message(role=role, content=[_block(c) for c in content], name=name)


def system(*content: Content) -> pb.Message:
    return message(pb.ROLE_SYSTEM, *content)


def user(*content: Content, name: str = "") -> pb.Message:
    return message(pb.ROLE_USER, *content, name=name)


def assistant(*content: Content) -> pb.Message:
    return message(pb.ROLE_ASSISTANT, *content)


def tool(tool_call_id: str, content: str | Sequence[Content], *, is_error: bool = False) -> pb.Message:
    """A ROLE_TOOL message holding one tool result."""
    return pb.Message(role=pb.ROLE_TOOL, content=[tool_result(tool_call_id, content, is_error=is_error)])


def tool_spec(name: str, description: str = "", parameters: Mapping[str, Any] | None = None) -> pb.Tool:
    return pb.Tool(
        name=name,
        description=description,
        parameters=struct(parameters or {"type": "object", "properties": {}}),
    )


def request(
    model: str,
    messages: str | Iterable[pb.Message],
    **fields: Any,
) -> pb.ChatRequest:
    """A ChatRequest; a plain string is one user message.

    Other fields are ChatRequest's (``max_tokens``, ``temperature``, ``stop``,
    ``tools``, ``tool_choice``, ``config``...); ``provider_options`` may be a dict.
    """
    if isinstance(messages, str):
        messages = [user(messages)]
    if isinstance(fields.get("provider_options"), Mapping):
        fields["provider_options"] = struct(fields["provider_options"])
    return pb.ChatRequest(model=model, messages=list(messages), **fields)


def text_of(msg: pb.ChatMessage) -> str:
    """The text of a final message (its text blocks, concatenated)."""
    return "".join(b.text for b in msg.content if b.WhichOneof("block") == "text")


def to_dict(msg: Any) -> dict:
    """A protobuf message as JSON-like dict (camelCase field names, as grpcurl)."""
    return json_format.MessageToDict(msg)
