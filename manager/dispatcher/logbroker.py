"""The log broker (leader only), after SwarmKit's manager/logbroker.

A subscriber (swarmctl, through the Logs service) gets an id; the subscription is sent to every
agent that has a session, and each agent publishes the lines of its matching tasks. Without
`follow`, the subscription ends when every agent it was sent to has said it is done (or has
gone away); with `follow` it lasts until the subscriber leaves, and agents are told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from grpc import aio

from shoal import ids
from shoal.api import logs_pb2
from shoal.errors import InvalidSpec
from shoal.log import get_logger

log = get_logger("logbroker")
# An agent that neither publishes nor closes within this time is skipped (non-follow only).
NODE_TIMEOUT = 15.0


@dataclass
class _Subscription:
    msg: logs_pb2.SubscriptionMessage
    out: asyncio.Queue[logs_pb2.SubscribeLogsMessage | None] = field(default_factory=asyncio.Queue)
    waiting: set[str] = field(default_factory=set)  # nodes that have not closed yet

    def node_done(self, node_id: str) -> None:
        self.waiting.discard(node_id)
        if not self.waiting and not self.msg.options.follow:
            self.out.put_nowait(None)


class LogBroker:
    def __init__(self, session_of: Callable[[aio.ServicerContext, str], str]) -> None:
        """session_of(context, session_id) -> node id, or raises (the dispatcher's check)."""
        self._session_of = session_of
        self._listeners: dict[str, asyncio.Queue[logs_pb2.SubscriptionMessage]] = {}
        self._subs: dict[str, _Subscription] = {}

    # ---- operator side -----------------------------------------------------------------------
    async def SubscribeLogs(
        self, request: logs_pb2.SubscribeLogsRequest, context: aio.ServicerContext
    ) -> AsyncIterator[logs_pb2.SubscribeLogsMessage]:
        sel = request.selector
        if not sel.service_ids and not sel.task_ids:
            raise InvalidSpec("a log subscription needs a service or a task")
        sub = _Subscription(
            logs_pb2.SubscriptionMessage(id=ids.new_id(), selector=sel, options=request.options)
        )
        self._subs[sub.msg.id] = sub
        sub.waiting = set(self._listeners)
        for queue in self._listeners.values():
            queue.put_nowait(sub.msg)
        if not sub.waiting and not request.options.follow:
            sub.out.put_nowait(None)
        try:
            while True:
                try:
                    async with asyncio.timeout(None if request.options.follow else NODE_TIMEOUT):
                        item = await sub.out.get()
                except TimeoutError:
                    log.warning("log_subscription_timed_out", nodes=sorted(sub.waiting))
                    return
                if item is None:
                    return
                yield item
        finally:
            self._subs.pop(sub.msg.id, None)
            closing = logs_pb2.SubscriptionMessage(id=sub.msg.id, close=True)
            for node_id in sub.waiting:
                listener = self._listeners.get(node_id)
                if listener is not None:
                    listener.put_nowait(closing)

    # ---- agent side --------------------------------------------------------------------------
    async def ListenSubscriptions(
        self, request: logs_pb2.ListenSubscriptionsRequest, context: aio.ServicerContext
    ) -> AsyncIterator[logs_pb2.SubscriptionMessage]:
        node_id = self._session_of(context, request.session_id)
        queue: asyncio.Queue[logs_pb2.SubscriptionMessage] = asyncio.Queue()
        old = self._listeners.get(node_id)
        self._listeners[node_id] = queue
        for sub in self._subs.values():  # a node that (re)connects joins followers in progress
            if sub.msg.options.follow:
                sub.waiting.add(node_id)
                queue.put_nowait(sub.msg)
        if old is not None:
            old.put_nowait(logs_pb2.SubscriptionMessage(close=True))  # wakes the stale stream
        try:
            while True:
                msg = await queue.get()
                if not msg.id:
                    return  # replaced by a newer stream of the same node
                yield msg
        finally:
            if self._listeners.get(node_id) is queue:
                del self._listeners[node_id]
                for sub in list(self._subs.values()):
                    if node_id in sub.waiting:
                        sub.node_done(node_id)

    async def PublishLogs(
        self, request: logs_pb2.PublishLogsRequest, context: aio.ServicerContext
    ) -> logs_pb2.PublishLogsResponse:
        node_id = self._session_of(context, request.session_id)
        sub = self._subs.get(request.subscription_id)
        if sub is None:
            return logs_pb2.PublishLogsResponse()  # the subscriber left; the agent hears close
        if request.messages:
            out = logs_pb2.SubscribeLogsMessage()
            for m in request.messages:
                msg = out.messages.add()
                msg.CopyFrom(m)
                msg.context.node_id = node_id  # the agent only speaks for itself
            sub.out.put_nowait(out)
        if request.close:
            sub.node_done(node_id)
        return logs_pb2.PublishLogsResponse()
