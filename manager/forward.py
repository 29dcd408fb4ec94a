"""Routing of RPCs to the leader.

Any manager accepts Control and Membership calls: the leader serves them, a follower forwards
them to the leader's remote API, so the CLI never needs to know who leads. Dispatcher calls are
only served by the leader (agents reconnect there, told by trailing metadata). Calls that arrive
over TCP (not the local control socket) must come from a manager node: the follower that forwards
attaches its node identity.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from grpc import aio

from shoal import auth, rpc
from shoal.errors import NotLeader, PermissionDenied

FORWARD_TIMEOUT = 30.0
# How often a forwarded call checks that the leader it went to is still this follower's leader.
LEADER_CHECK = 0.1


class LeaderInfo(Protocol):
    def is_leader(self) -> bool: ...

    def leader_api_addr(self) -> str | None:
        """The remote API address (host:port) of the current leader, if known."""

    def identity(self) -> tuple[str, str]:
        """This node's (node id, node secret), attached to forwarded calls."""

    def is_manager_identity(self, node_id: str, secret: str) -> bool: ...


class Forwarder:
    """Builds generic handlers that serve locally on the leader or forward to it."""

    def __init__(self, leader: LeaderInfo) -> None:
        self._leader = leader
        self._channels: dict[str, aio.Channel] = {}

    def _channel(self, addr: str) -> aio.Channel:
        if addr not in self._channels:
            self._channels[addr] = rpc.channel(addr)
        return self._channels[addr]

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    def _check_caller(self, context: aio.ServicerContext, require_manager: bool) -> None:
        if not require_manager or context.peer().startswith("unix:"):
            return
        node_id, secret = auth.metadata_identity(context.invocation_metadata())
        if not self._leader.is_manager_identity(node_id, secret):
            raise PermissionDenied("this call is only accepted from managers or the local control socket")

    def _leader_addr(self) -> str:
        addr = self._leader.leader_api_addr()
        if not addr:
            raise NotLeader("no leader elected (no quorum?)")
        return addr

    async def _answer_unless_leader_lost(self, pending: Any, addr: str) -> Any:
        """The forwarded call's answer; NotLeader if this follower's leader changes first (a
        link cut under an established connection would otherwise hang until the kernel gives up
        on it, while Raft notices within its election timeout)."""
        answer = asyncio.ensure_future(pending)
        try:
            while True:
                done, _ = await asyncio.wait({answer}, timeout=LEADER_CHECK)
                if done:
                    return answer.result()
                if self._leader.is_leader() or self._leader.leader_api_addr() != addr:
                    raise NotLeader(
                        f"lost the leader ({addr}) while forwarding: the change may or may not be applied"
                    )
        finally:
            if not answer.done():  # given up, or our own caller went away
                pending.cancel()
                answer.cancel()

    def unary(
        self, full: str, req_cls: Any, resp_cls: Any, local: Callable[..., Any], require_manager: bool
    ) -> grpc.RpcMethodHandler:
        async def handle(request: Any, context: aio.ServicerContext) -> Any:
            self._check_caller(context, require_manager)
            if self._leader.is_leader():
                return await local(request, context)
            addr = self._leader_addr()
            call = self._channel(addr).unary_unary(
                full, request_serializer=req_cls.SerializeToString, response_deserializer=resp_cls.FromString
            )
            pending = call(
                request, metadata=auth.node_metadata(*self._leader.identity()), timeout=FORWARD_TIMEOUT
            )
            try:
                return await self._answer_unless_leader_lost(pending, addr)
            except aio.AioRpcError as e:
                await context.abort(e.code(), e.details() or "")

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=req_cls.FromString, response_serializer=resp_cls.SerializeToString
        )

    def stream(
        self, full: str, req_cls: Any, resp_cls: Any, local: Callable[..., Any], require_manager: bool
    ) -> grpc.RpcMethodHandler:
        """A server-streaming method: served here on the leader, else relayed from the leader."""

        async def handle(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            self._check_caller(context, require_manager)
            if self._leader.is_leader():
                async for item in local(request, context):
                    yield item
                return
            call = self._channel(self._leader_addr()).unary_stream(
                full, request_serializer=req_cls.SerializeToString, response_deserializer=resp_cls.FromString
            )
            try:
                async for item in call(request, metadata=auth.node_metadata(*self._leader.identity())):
                    yield item
            except aio.AioRpcError as e:
                await context.abort(e.code(), e.details() or "")

        return grpc.unary_stream_rpc_method_handler(
            handle, request_deserializer=req_cls.FromString, response_serializer=resp_cls.SerializeToString
        )


def forwarding_handler(
    forwarder: Forwarder, service: ServiceDescriptor, servicer: Any, *, require_manager: bool
) -> grpc.GenericRpcHandler:
    """Every method of `service`: served by `servicer` on the leader, else forwarded."""
    handlers = {}
    for m in service.methods:
        req = message_factory.GetMessageClass(m.input_type)
        resp = message_factory.GetMessageClass(m.output_type)
        full = f"/{service.full_name}/{m.name}"
        make = forwarder.stream if m.server_streaming else forwarder.unary
        handlers[m.name] = make(full, req, resp, getattr(servicer, m.name), require_manager)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def leader_only_handler(
    service: ServiceDescriptor, target: Callable[[], Any | None], leader: LeaderInfo
) -> grpc.GenericRpcHandler:
    """Every method of `service` served by target() while this manager leads; otherwise
    UNAVAILABLE with the leader's address in trailing metadata, so agents go there."""

    def current() -> Any:
        obj = target()
        if obj is None or not leader.is_leader():
            raise NotLeader("this manager is not the leader", leader_addr=leader.leader_api_addr() or "")
        return obj

    handlers = {}
    for m in service.methods:
        req = message_factory.GetMessageClass(m.input_type)
        resp = message_factory.GetMessageClass(m.output_type)
        name = m.name
        if m.server_streaming:

            def make_stream(name: str) -> Callable[..., AsyncIterator[Any]]:
                async def handle(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                    async for item in getattr(current(), name)(request, context):
                        yield item

                return handle

            handlers[name] = grpc.unary_stream_rpc_method_handler(
                make_stream(name),
                request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString,
            )
        else:

            def make_unary(name: str) -> Callable[..., Any]:
                async def handle(request: Any, context: aio.ServicerContext) -> Any:
                    return await getattr(current(), name)(request, context)

                return handle

            handlers[name] = grpc.unary_unary_rpc_method_handler(
                make_unary(name),
                request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
