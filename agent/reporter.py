"""Task status reports on their way to the dispatcher: the latest status per task, kept until a
session has delivered it (and acknowledged it, which means it is committed)."""

from __future__ import annotations

import asyncio

from shoal.api import dispatcher_pb2
from shoal.api.types_pb2 import TaskStatus


class StatusReporter:
    def __init__(self) -> None:
        self._pending: dict[str, TaskStatus] = {}
        self._ready = asyncio.Event()

    def report(self, task_id: str, status: TaskStatus) -> None:
        prev = self._pending.get(task_id)
        if prev is None or status.state >= prev.state:
            copy = TaskStatus()
            copy.CopyFrom(status)
            self._pending[task_id] = copy
            self._ready.set()

    def forget(self, task_id: str) -> None:
        self._pending.pop(task_id, None)

    async def next_batch(self, max_size: int = 500) -> dict[str, TaskStatus]:
        await self._ready.wait()
        self._ready.clear()
        await asyncio.sleep(0.02)  # let a burst of reports share one RPC
        return dict(list(self._pending.items())[:max_size])

    def requeue(self) -> None:
        """Nothing was delivered: the next session sends it all again."""
        if self._pending:
            self._ready.set()

    def delivered(self, batch: dict[str, TaskStatus]) -> None:
        for task_id, status in batch.items():
            if self._pending.get(task_id) == status:
                del self._pending[task_id]
        if self._pending:
            self._ready.set()

    def request(
        self, session_id: str, batch: dict[str, TaskStatus]
    ) -> dispatcher_pb2.UpdateTaskStatusRequest:
        req = dispatcher_pb2.UpdateTaskStatusRequest(session_id=session_id)
        for task_id, status in batch.items():
            req.updates.add(task_id=task_id, status=status)
        return req
