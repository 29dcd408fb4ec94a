"""The agent's side of log subscriptions: for each subscription the leader sends, publish the
lines of this node's matching tasks, in batches, until done (or told to stop when following)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable

from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from agent.exec import LogEntry
from agent.runner import TaskRunner
from shoal.api import logs_pb2, logs_pb2_grpc
from shoal.log import get_logger

log = get_logger("agent.logs")
BATCH = 200
FLUSH = 0.1
NEW_TASKS_POLL = 1.0


def _matches(sel: logs_pb2.LogSelector, runner: TaskRunner) -> bool:
    t = runner.task
    return t.service_id in sel.service_ids or t.id in sel.task_ids


class LogPublisher:
    def __init__(
        self,
        stub: logs_pb2_grpc.LogBrokerStub,
        session_id: str,
        metadata: tuple[tuple[str, str], ...],
        runners: Callable[[], dict[str, TaskRunner]],
    ) -> None:
        self._stub = stub
        self._session_id = session_id
        self._md = metadata
        self._runners = runners
        self._active: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        stream = self._stub.ListenSubscriptions(
            logs_pb2.ListenSubscriptionsRequest(session_id=self._session_id), metadata=self._md
        )
        try:
            while True:
                msg = await stream.read()
                if msg is aio.EOF:
                    return
                assert isinstance(msg, logs_pb2.SubscriptionMessage)
                if msg.close:
                    job = self._active.pop(msg.id, None)
                    if job is not None:
                        job.cancel()
                elif msg.id not in self._active:
                    job = asyncio.ensure_future(self._serve(msg))
                    self._active[msg.id] = job
                    job.add_done_callback(functools.partial(self._finished, msg.id))
        finally:
            stream.cancel()
            for job in list(self._active.values()):
                job.cancel()

    def _finished(self, sub_id: str, _job: object) -> None:
        self._active.pop(sub_id, None)

    async def _publish(self, sub_id: str, batch: list[logs_pb2.LogMessage], close: bool = False) -> None:
        req = logs_pb2.PublishLogsRequest(
            session_id=self._session_id, subscription_id=sub_id, messages=batch, close=close
        )
        await self._stub.PublishLogs(req, metadata=self._md, timeout=30)

    async def _serve(self, sub: logs_pb2.SubscriptionMessage) -> None:
        queue: asyncio.Queue[logs_pb2.LogMessage] = asyncio.Queue(maxsize=10 * BATCH)
        readers: dict[str, asyncio.Task[None]] = {}

        def start_readers() -> None:
            for task_id, runner in self._runners().items():
                if task_id not in readers and _matches(sub.selector, runner):
                    readers[task_id] = asyncio.ensure_future(self._read(runner, sub.options, queue))

        try:
            start_readers()
            if not sub.options.follow:
                done: asyncio.Future[object] = asyncio.ensure_future(_all(readers.values()))
                while not (done.done() and queue.empty()):
                    await self._flush(sub.id, queue, done)
                await self._publish(sub.id, [], close=True)
                return
            while True:
                await self._flush(sub.id, queue, None)
                start_readers()
        except aio.AioRpcError as e:
            log.debug("log_publish_failed", subscription=sub.id, error=e.details())
        finally:
            for r in readers.values():
                r.cancel()

    async def _flush(
        self, sub_id: str, queue: asyncio.Queue[logs_pb2.LogMessage], done: asyncio.Future[object] | None
    ) -> None:
        batch: list[logs_pb2.LogMessage] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH if done is None or not done.done() else 0.01):
                while len(batch) < BATCH:
                    batch.append(await queue.get())
        while len(batch) < BATCH and not queue.empty():
            batch.append(queue.get_nowait())
        if batch:
            await self._publish(sub_id, batch)
        elif done is None:
            await asyncio.sleep(0)  # following: the caller polls for new tasks

    async def _read(
        self, runner: TaskRunner, opts: logs_pb2.LogOptions, queue: asyncio.Queue[logs_pb2.LogMessage]
    ) -> None:
        t = runner.task
        ctx = logs_pb2.LogContext(service_id=t.service_id, task_id=t.id)
        try:
            async for entry in runner.controller.logs(follow=opts.follow, tail=opts.tail):
                await queue.put(_message(ctx, entry))
        except Exception as e:  # one task's unreadable log must not end the others
            log.warning("log_read_failed", task_id=t.id, error=str(e))


async def _all(jobs: Iterable[asyncio.Task[None]]) -> object:
    return await asyncio.gather(*jobs)


def _message(ctx: logs_pb2.LogContext, entry: LogEntry) -> logs_pb2.LogMessage:
    ts = Timestamp()
    ts.FromDatetime(entry.time)
    stream = logs_pb2.LogMessage.STDERR if entry.stream == "stderr" else logs_pb2.LogMessage.STDOUT
    return logs_pb2.LogMessage(context=ctx, timestamp=ts, stream=stream, data=entry.data.encode())
