"""One exception type for every failed chatwire call.

chatwire ends a failed call with a gRPC status that carries a
``google.rpc.ErrorInfo`` (domain ``chatwire``, an UPPER_SNAKE ``reason``,
``metadata`` such as ``provider`` and ``upstream_status``) and, when the
upstream said when to retry, a ``google.rpc.RetryInfo``. :class:`ChatwireError`
holds all of it; :class:`RetryableChatwireError` is the subclass raised when
the status code says a retry may succeed, so LangChain's
``with_retry(retry_if_exception_type=(RetryableChatwireError,))`` retries
exactly those.
"""

from __future__ import annotations

from typing import Any, Mapping

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = ["ChatwireError", "RetryableChatwireError", "RETRYABLE_CODES", "from_rpc_error"]

#: Codes a retry may fix: the server or its upstream was unavailable or
#: overloaded (rate limits included), or the call was aborted.
RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}
)
#: Reasons that make a retryable code final: the same request fails again.
_FINAL_REASONS = frozenset({"ANSWER_TOO_LARGE"})


class ChatwireError(Exception):
    """A chatwire call failed.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode``).
        message: the status message.
        reason: ``ErrorInfo.reason`` (e.g. ``UPSTREAM_RATE_LIMITED``), or ``""``.
        domain: ``ErrorInfo.domain`` (``chatwire``), or ``""``.
        metadata: ``ErrorInfo.metadata`` (``provider``, ``upstream_status``...).
        retry_delay: ``RetryInfo.retry_delay`` in seconds, or ``None``.
        retryable: whether a retry may succeed (from the code, see ``RETRYABLE_CODES``).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.retry_delay = retry_delay

    @property
    def retryable(self) -> bool:
        return is_retryable(self.code, self.reason)

    def __reduce__(self) -> Any:  # picklable (LangChain copies exceptions around)
        return (
            _rebuild,
            (self.code.name, self.message, self.reason, self.domain, self.metadata, self.retry_delay),
        )


class RetryableChatwireError(ChatwireError):
    """A :class:`ChatwireError` whose code says a retry may succeed."""


def is_retryable(code: grpc.StatusCode, reason: str = "") -> bool:
    return code in RETRYABLE_CODES and reason not in _FINAL_REASONS


def make_error(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str = "",
    domain: str = "",
    metadata: Mapping[str, str] | None = None,
    retry_delay: float | None = None,
) -> ChatwireError:
    cls = RetryableChatwireError if is_retryable(code, reason) else ChatwireError
    return cls(code, message, reason=reason, domain=domain, metadata=metadata, retry_delay=retry_delay)


def _rebuild(code_name: str, message: str, reason: str, domain: str, metadata: dict, delay: Any) -> ChatwireError:
    return make_error(
        grpc.StatusCode[code_name], message, reason=reason, domain=domain, metadata=metadata, retry_delay=delay
    )


def _details_bin(trailing: Any) -> bytes | None:
    for key, value in trailing or ():
        if key == "grpc-status-details-bin":
            return value if isinstance(value, bytes) else str(value).encode("latin-1")
    return None


def from_status(code: grpc.StatusCode, message: str, trailing_metadata: Any) -> ChatwireError:
    """Builds the error from a status code, message and trailing metadata."""
    reason = domain = ""
    metadata: dict[str, str] = {}
    delay: float | None = None
    raw = _details_bin(trailing_metadata)
    if raw:
        status = status_pb2.Status()
        try:
            status.ParseFromString(raw)
        except Exception:  # a malformed detail never hides the status itself
            status = status_pb2.Status()
        for any_ in status.details:
            if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif any_.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                any_.Unpack(retry)
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return make_error(code, message, reason=reason, domain=domain, metadata=metadata, retry_delay=delay)


def from_rpc_error(err: grpc.RpcError) -> ChatwireError:
    """Converts a grpc (sync or aio) RpcError into a :class:`ChatwireError`."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    return from_status(code or grpc.StatusCode.UNKNOWN, details or "", trailing)
