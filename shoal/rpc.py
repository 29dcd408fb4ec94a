"""Every gRPC server and channel of shoal is built here, so that mutual TLS with a cluster CA
drops in at one place. The error interceptor maps shoal.errors to gRPC status codes."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from shoal.errors import NotLeader, ShoalError
from shoal.log import get_logger

log = get_logger("rpc")

LEADER_METADATA_KEY = "x-shoal-leader-addr"

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect fast: a manager that comes back should be found within a second.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


async def _abort(context: aio.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, NotLeader) and exc.leader_addr:
        context.set_trailing_metadata(((LEADER_METADATA_KEY, exc.leader_addr),))
    if isinstance(exc, ShoalError):
        await context.abort(exc.code, exc.message)
    log.error("rpc_internal_error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")


def _wrap_unary(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(request: Any, context: aio.ServicerContext) -> Any:
        try:
            return await fn(request, context)
        except aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


def _wrap_stream(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(fn)
    async def wrapper(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in fn(request, context):
                yield item
        except aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


class ErrorInterceptor(aio.ServerInterceptor):
    """Turns ShoalError into its gRPC status; anything else into INTERNAL, logged."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def make_server() -> aio.Server:
    return aio.server(interceptors=[ErrorInterceptor()], options=_SERVER_OPTIONS)


def add_listener(server: aio.Server, addr: str) -> int:
    """addr is host:port or unix:/path. Returns the bound port (0 for unix sockets)."""
    port = server.add_insecure_port(addr)
    if port == 0 and not addr.startswith("unix:"):
        raise OSError(f"cannot listen on {addr}")
    return port


def channel(addr: str) -> aio.Channel:
    """An asyncio channel to a manager; addr is host:port or unix:/path."""
    return aio.insecure_channel(addr, options=_CHANNEL_OPTIONS)


def sync_channel(addr: str) -> grpc.Channel:
    """A blocking channel, for the CLIs."""
    return grpc.insecure_channel(addr, options=_CHANNEL_OPTIONS)


def socket_target(path: str) -> str:
    return path if path.startswith("unix:") else f"unix:{path}"
