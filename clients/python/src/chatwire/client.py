"""Typed sync and asyncio clients for chatwire's ChatModelService.

    from chatwire import Client, messages as m
    with Client("127.0.0.1:50051") as client:
        for chunk in client.stream(model="fake:echo", messages=[m.user("hello there")]):
            print(chunk.text, end="|")

Every call takes ``timeout=`` (seconds; the gRPC deadline, which chatwire
honours for the whole call, upstream included). Closing a stream
(``close()``, leaving a ``with`` block, ``break`` out of the loop and dropping
the iterator, or ``aclose()`` / breaking out of ``async for``) cancels the RPC,
and chatwire then drops the upstream request. Every failure is raised as
:class:`chatwire.ChatwireError`.
"""

from __future__ import annotations

import os
from typing import Any, Generic, Sequence, TypeVar

import grpc
import grpc.aio

from . import messages as _m
from .errors import from_rpc_error
from .v1 import chatwire_pb2 as pb
from .v1 import chatwire_pb2_grpc as pb_grpc

__all__ = ["Client", "AsyncClient", "ChatStream", "AsyncChatStream", "DEFAULT_ADDR", "resolve_target"]

#: Where a client connects when neither ``addr`` nor ``CHATWIRE_ADDR`` says.
DEFAULT_ADDR = "127.0.0.1:50051"

T = TypeVar("T")


def resolve_target(addr: str | None, tls: bool | None) -> tuple[str, bool]:
    """``addr`` (else ``$CHATWIRE_ADDR``, else 127.0.0.1:50051) as a gRPC target.

    ``https://host:port`` means TLS, ``http://host:port`` plaintext; a bare
    ``host:port`` is plaintext unless ``tls`` (or ``$CHATWIRE_TLS=1``) says.
    """
    addr = addr or os.environ.get("CHATWIRE_ADDR") or DEFAULT_ADDR
    if tls is None:
        tls = os.environ.get("CHATWIRE_TLS", "") in ("1", "true", "yes")
    if addr.startswith("https://"):
        return addr[len("https://") :].rstrip("/"), True
    if addr.startswith("http://"):
        return addr[len("http://") :].rstrip("/"), bool(tls)
    return addr, bool(tls)


def _channel_setup(
    addr: str | None,
    tls: bool | None,
    root_certificates: bytes | None,
    private_key: bytes | None,
    certificate_chain: bytes | None,
    server_name: str | None,
    options: Sequence[tuple[str, Any]],
) -> tuple[str, grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    target, use_tls = resolve_target(addr, tls or bool(root_certificates) or None)
    opts = list(options)
    # Answers can be large (images are not, but a long answer folded by Invoke can be).
    opts.append(("grpc.max_receive_message_length", 64 * 1024 * 1024 + 4096))
    creds = None
    if use_tls:
        if root_certificates is None and os.environ.get("CHATWIRE_TLS_CA"):
            with open(os.environ["CHATWIRE_TLS_CA"], "rb") as f:
                root_certificates = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
    return target, creds, opts


def _request(request: pb.ChatRequest | None, fields: dict[str, Any]) -> pb.ChatRequest:
    if request is not None:
        if fields:
            raise TypeError("give a ChatRequest or its fields, not both")
        return request
    if "model" not in fields or "messages" not in fields:
        raise TypeError("model= and messages= are required")
    return _m.request(fields.pop("model"), fields.pop("messages"), **fields)


class _Config:
    def __init__(self, token: str | None, timeout: float | None, metadata: Sequence[tuple[str, str]]):
        if token is None:
            token = os.environ.get("CHATWIRE_API_KEY") or None
        self.token = token
        self.timeout = timeout
        self.metadata = list(metadata)

    def call_kwargs(self, timeout: float | None, metadata: Sequence[tuple[str, str]] | None) -> dict[str, Any]:
        md = list(self.metadata) + list(metadata or ())
        if self.token:
            md.append(("authorization", f"Bearer {self.token}"))
        return {"timeout": timeout if timeout is not None else self.timeout, "metadata": md or None}


class ChatStream(Generic[T]):
    """A server stream (Stream or StreamEvents): iterate it; ``close()`` cancels it.

    Closing it, leaving its ``with`` block, or dropping the last reference to it
    before the stream ended cancels the RPC (the server drops the upstream
    request). Errors are raised as :class:`ChatwireError` from iteration.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._closed = False

    def __iter__(self) -> "ChatStream[T]":
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        try:
            return next(self._call)
        except grpc.RpcError as e:
            if self._closed and e.code() == grpc.StatusCode.CANCELLED:
                raise StopIteration from None
            raise from_rpc_error(e) from None

    def close(self) -> None:
        """Cancels the call if it is still running (idempotent)."""
        self._closed = True
        self._call.cancel()

    cancel = close

    def initial_metadata(self) -> Any:
        return self._call.initial_metadata()

    def __enter__(self) -> "ChatStream[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._call.cancel()
        except Exception:
            pass


class AsyncChatStream(Generic[T]):
    """The asyncio counterpart of :class:`ChatStream` (``async for``, ``aclose()``)."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._closed = False

    def __aiter__(self) -> "AsyncChatStream[T]":
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        try:
            item = await self._call.read()
        except grpc.aio.AioRpcError as e:
            if self._closed and e.code() == grpc.StatusCode.CANCELLED:
                raise StopAsyncIteration from None
            raise from_rpc_error(e) from None
        if item is grpc.aio.EOF:
            # The status is OK here (a failed status raised above).
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Cancels the call if it is still running (idempotent)."""
        self._closed = True
        self._call.cancel()

    cancel = close

    async def __aenter__(self) -> "AsyncChatStream[T]":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._call.done():
                self._call.cancel()
        except Exception:
            pass


class Client:
    """A blocking client.

    Args:
        addr: ``host:port`` (or ``https://host:port`` for TLS); default
            ``$CHATWIRE_ADDR``, else ``127.0.0.1:50051``.
        token: the bearer token sent as ``authorization: Bearer ...``; default
            ``$CHATWIRE_API_KEY``.
        tls: use TLS (default: ``https://`` in ``addr`` or ``$CHATWIRE_TLS=1``).
        root_certificates: PEM roots for TLS (default: the system's, or the file
            named by ``$CHATWIRE_TLS_CA``); giving them turns TLS on.
        private_key, certificate_chain: PEM client key and certificate (mTLS).
        server_name: the TLS name to expect when it differs from ``addr``'s host.
        timeout: default deadline in seconds for every call (``None``: none).
        metadata: extra gRPC metadata sent on every call.
        options: extra gRPC channel options.
        channel: an existing ``grpc.Channel`` to use instead (the other
            connection arguments are then ignored).
    """

    def __init__(
        self,
        addr: str | None = None,
        *,
        token: str | None = None,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        server_name: str | None = None,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.Channel | None = None,
    ) -> None:
        self._cfg = _Config(token, timeout, metadata)
        if channel is None:
            target, creds, opts = _channel_setup(
                addr, tls, root_certificates, private_key, certificate_chain, server_name, options
            )
            channel = grpc.secure_channel(target, creds, opts) if creds else grpc.insecure_channel(target, opts)
            self._owns_channel = True
        else:
            self._owns_channel = False
        self._channel = channel
        self._stub = pb_grpc.ChatModelServiceStub(channel)

    def invoke(
        self,
        request: pb.ChatRequest | None = None,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ) -> pb.ChatMessage:
        """Invoke: the final message."""
        try:
            return self._stub.Invoke(_request(request, fields), **self._cfg.call_kwargs(timeout, metadata))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def stream(
        self,
        request: pb.ChatRequest | None = None,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ) -> ChatStream[pb.MessageChunk]:
        """Stream: the answer chunk by chunk (exactly one has ``last``)."""
        call = self._stub.Stream(_request(request, fields), **self._cfg.call_kwargs(timeout, metadata))
        return ChatStream(call)

    def stream_events(
        self,
        request: pb.ChatRequest | None = None,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ) -> ChatStream[pb.ChatEvent]:
        """StreamEvents: start, one stream event per chunk, then end or error."""
        call = self._stub.StreamEvents(_request(request, fields), **self._cfg.call_kwargs(timeout, metadata))
        return ChatStream(call)

    def list_models(
        self, *, timeout: float | None = None, metadata: Sequence[tuple[str, str]] | None = None
    ) -> pb.ListModelsResponse:
        try:
            return self._stub.ListModels(pb.ListModelsRequest(), **self._cfg.call_kwargs(timeout, metadata))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient:
    """The asyncio client (``grpc.aio``); same arguments as :class:`Client`.

    Create it inside the event loop that uses it.
    """

    def __init__(
        self,
        addr: str | None = None,
        *,
        token: str | None = None,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        server_name: str | None = None,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._cfg = _Config(token, timeout, metadata)
        if channel is None:
            target, creds, opts = _channel_setup(
                addr, tls, root_certificates, private_key, certificate_chain, server_name, options
            )
            channel = (
                grpc.aio.secure_channel(target, creds, opts) if creds else grpc.aio.insecure_channel(target, opts)
            )
            self._owns_channel = True
        else:
            self._owns_channel = False
        self._channel = channel
        self._stub = pb_grpc.ChatModelServiceStub(channel)

    async def invoke(
        self,
        request: pb.ChatRequest | None = None,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ) -> pb.ChatMessage:
        try:
            return await self._stub.Invoke(_request(request, fields), **self._cfg.call_kwargs(timeout, metadata))
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None

    def stream(
        self,
        request: pb.ChatRequest | None = None,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ) -> AsyncChatStream[pb.MessageChunk]:
        call = self._stub.Stream(_request(request, fields), **self._cfg.call_kwargs(timeout, metadata))
        return AsyncChatStream(call)

    def stream_events(
        self,
        request: pb.ChatRequest | None = None,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        **fields: Any,
    ) -> AsyncChatStream[pb.ChatEvent]:
        call = self._stub.StreamEvents(_request(request, fields), **self._cfg.call_kwargs(timeout, metadata))
        return AsyncChatStream(call)

    async def list_models(
        self, *, timeout: float | None = None, metadata: Sequence[tuple[str, str]] | None = None
    ) -> pb.ListModelsResponse:
        try:
            return await self._stub.ListModels(pb.ListModelsRequest(), **self._cfg.call_kwargs(timeout, metadata))
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

