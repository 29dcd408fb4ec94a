"""The agent: one session at a time to the leader's dispatcher, re-established with backoff
against any known manager (a follower answers UNAVAILABLE with the leader's address, which is
tried next). Task runners live in the Worker and survive sessions coming and going."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc import aio
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from agent.exec import Executor
from agent.logs import LogPublisher
from agent.reporter import StatusReporter
from agent.taskdb import TaskDB
from agent.worker import Worker
from shoal import auth, rpc
from shoal.api import Node, dispatcher_pb2, dispatcher_pb2_grpc, logs_pb2_grpc
from shoal.log import get_logger

log = get_logger("agent")
SESSION_TIMEOUT = 10.0
IMAGE_GC_INTERVAL = 300.0


class SessionFailed(Exception):
    """The session could not be established, or broke; try again (maybe elsewhere)."""


class Agent:
    def __init__(
        self,
        *,
        node_id: str,
        node_secret: str,
        managers: list[str],
        executor: Executor,
        state_dir: Path,
        hostname: str,
        on_node: Callable[[Node], Awaitable[None]],
    ) -> None:
        self.node_id = node_id
        self._metadata = auth.node_metadata(node_id, node_secret)
        self.managers = list(dict.fromkeys(managers))
        self._executor = executor
        self._hostname = hostname
        self._on_node = on_node
        self._reporter = StatusReporter()
        self.worker = Worker(executor, TaskDB(state_dir), self._reporter)
        self._next = 0
        self._preferred: str | None = None
        self.connected = asyncio.Event()

    def _pick(self) -> str:
        if self._preferred:
            addr, self._preferred = self._preferred, None
            return addr
        addr = self.managers[self._next % len(self.managers)]
        self._next += 1
        return addr

    async def run(self) -> None:
        self.worker.restore()
        gc = asyncio.ensure_future(self._collect_images()) if hasattr(self._executor, "gc") else None
        try:
            while True:
                # A fresh backoff after every session that was established.
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(SessionFailed),
                    wait=wait_exponential_jitter(multiplier=0.1, max=2.0),
                ):
                    with attempt:
                        await self._session(self._pick())
        finally:
            if gc is not None:
                gc.cancel()
            await self.worker.close()

    async def _collect_images(self) -> None:
        """Unused images go after a while (not at once: a task often comes back to its image)."""
        while True:
            await asyncio.sleep(IMAGE_GC_INTERVAL)
            try:
                await self._executor.gc()  # type: ignore[attr-defined]
            except Exception:
                log.exception("image_gc_failed")

    def _failed(self, addr: str, e: BaseException) -> SessionFailed:
        if isinstance(e, aio.AioRpcError):
            trailing = dict(e.trailing_metadata() or ())
            leader = trailing.get(rpc.LEADER_METADATA_KEY)
            if isinstance(leader, str) and leader and leader != addr:
                self._preferred = leader
            if e.code() == grpc.StatusCode.PERMISSION_DENIED:
                log.error("session_refused", manager=addr, error=e.details())
        return SessionFailed(f"{addr}: {_describe(e)}")

    async def _session(self, addr: str) -> None:
        """Returns when an established session ends; raises SessionFailed if none was set up."""
        async with rpc.channel(addr) as channel:
            stub = dispatcher_pb2_grpc.DispatcherStub(channel)
            desc = await self._executor.describe()
            desc.hostname = self._hostname
            stream = stub.Session(dispatcher_pb2.SessionRequest(description=desc), metadata=self._metadata)
            try:
                async with asyncio.timeout(SESSION_TIMEOUT):
                    first = await stream.read()
            except (aio.AioRpcError, TimeoutError) as e:
                stream.cancel()
                raise self._failed(addr, e) from None
            if first is aio.EOF:
                raise SessionFailed(f"{addr}: session stream closed")
            assert isinstance(first, dispatcher_pb2.SessionMessage)
            session_id = first.session_id
            log.info("session_established", manager=addr, session_id=session_id)
            self.connected.set()
            try:
                await self._handle_session_message(first)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._read_session(stream))
                    tg.create_task(self._heartbeats(stub, session_id, first))
                    tg.create_task(self._assignments(stub, session_id))
                    tg.create_task(self._report(stub, session_id))
                    tg.create_task(self._logs(channel, session_id))
            except* Exception as eg:
                log.warning("session_ended", manager=addr, error=_describe(eg.exceptions[0]))
            finally:
                self.connected.clear()
                stream.cancel()

    async def _handle_session_message(self, msg: dispatcher_pb2.SessionMessage) -> None:
        if msg.managers:
            addrs = [m.addr for m in msg.managers]
            self.managers = list(dict.fromkeys([*addrs, *self.managers]))
        if msg.HasField("node"):
            try:
                await self._on_node(msg.node)
            except Exception:
                log.exception("on_node_failed")

    async def _read_session(self, stream: aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
        while True:
            msg = await stream.read()
            if msg is aio.EOF:
                raise SessionFailed("session stream ended")
            await self._handle_session_message(msg)

    async def _heartbeats(
        self, stub: dispatcher_pb2_grpc.DispatcherStub, session_id: str, first: dispatcher_pb2.SessionMessage
    ) -> None:
        period = first.heartbeat_period.ToTimedelta().total_seconds() or 5.0
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # On a fixed beat, not period-after-the-last-answer: a slow leader must not stretch
            # the gaps it measures. It gives up on a node after 3 periods; so do we on it.
            due = max(due + period, loop.time())
            await asyncio.sleep(due - loop.time())
            resp = await stub.Heartbeat(
                dispatcher_pb2.HeartbeatRequest(session_id=session_id),
                metadata=self._metadata,
                timeout=period * 3,
            )
            period = resp.period.ToTimedelta().total_seconds() or period

    async def _assignments(self, stub: dispatcher_pb2_grpc.DispatcherStub, session_id: str) -> None:
        stream = stub.Assignments(
            dispatcher_pb2.AssignmentsRequest(session_id=session_id), metadata=self._metadata
        )
        try:
            async for msg in stream:
                await self.worker.apply(msg)
        finally:
            stream.cancel()
        raise SessionFailed("assignments stream ended")

    async def _logs(self, channel: aio.Channel, session_id: str) -> None:
        publisher = LogPublisher(
            logs_pb2_grpc.LogBrokerStub(channel), session_id, self._metadata, lambda: self.worker.runners
        )
        await publisher.run()
        raise SessionFailed("log subscription stream ended")

    async def _report(self, stub: dispatcher_pb2_grpc.DispatcherStub, session_id: str) -> None:
        while True:
            batch = await self._reporter.next_batch()
            if not batch:
                continue
            try:
                await stub.UpdateTaskStatus(
                    self._reporter.request(session_id, batch), metadata=self._metadata, timeout=30
                )
            except aio.AioRpcError:
                self._reporter.requeue()
                raise
            self._reporter.delivered(batch)


def _describe(e: BaseException) -> str:
    if isinstance(e, aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return str(e) or type(e).__name__


__all__ = ["Agent", "SessionFailed"]
