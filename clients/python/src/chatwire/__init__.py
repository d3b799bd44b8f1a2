"""chatwire: a typed Python client for chatwire's gRPC API, and ChatChatwire for LangChain.

    from chatwire import Client, AsyncClient, ChatwireError, messages
    from chatwire.langchain import ChatChatwire      # needs the [langchain] extra

The generated protobuf / gRPC stubs are ``chatwire.v1.chatwire_pb2`` and
``chatwire.v1.chatwire_pb2_grpc`` (regenerated from proto/ by
clients/python/scripts/gen_stubs.sh).
"""

from . import messages
from .client import DEFAULT_ADDR, AsyncChatStream, AsyncClient, ChatStream, Client, resolve_target
from .errors import RETRYABLE_CODES, ChatwireError, RetryableChatwireError
from .v1 import chatwire_pb2 as pb

__all__ = [
    "AsyncChatStream",
    "AsyncClient",
    "ChatStream",
    "ChatwireError",
    "Client",
    "DEFAULT_ADDR",
    "RETRYABLE_CODES",
    "RetryableChatwireError",
    "messages",
    "pb",
    "resolve_target",
]
__version__ = "0.1.0"
