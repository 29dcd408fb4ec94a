"""The worker: keeps one TaskRunner per assigned task, following the dispatcher's assignment
messages (a COMPLETE set, then INCREMENTAL changes)."""

from __future__ import annotations

import asyncio

from agent.exec import Executor
from agent.reporter import StatusReporter
from agent.runner import TaskRunner
from agent.taskdb import TaskDB
from shoal.api import Task, dispatcher_pb2
from shoal.log import get_logger

log = get_logger("agent.worker")


class Worker:
    def __init__(self, executor: Executor, db: TaskDB, reporter: StatusReporter) -> None:
        self._executor = executor
        self._db = db
        self._reporter = reporter
        self.runners: dict[str, TaskRunner] = {}
        # The overlay networks' tables (NetworkPeers by network id), as the dispatcher last sent them.
        self.peers: dict[str, dispatcher_pb2.NetworkPeers] = {}

    def restore(self) -> None:
        """Runners for what we ran before a restart; their last states are reported again."""
        for task in self._db.load():
            self._add(task)
            self._reporter.report(task.id, task.status)
        if self.runners:
            log.info("tasks_restored", count=len(self.runners))

    def _add(self, task: Task) -> None:
        runner = TaskRunner(task, self._executor.controller(task), self._reporter, self._db)
        self.runners[task.id] = runner
        self._db.save(task)
        runner.start()

    async def apply(self, msg: dispatcher_pb2.AssignmentsMessage) -> None:
        complete = msg.type == dispatcher_pb2.AssignmentsMessage.COMPLETE
        await self._apply_peers(msg, complete)
        removes: list[str] = []
        seen: set[str] = set()
        for change in msg.changes:
            if change.assignment.WhichOneof("item") != "task":
                continue
            task = change.assignment.task
            if change.action == dispatcher_pb2.AssignmentChange.REMOVE:
                removes.append(task.id)
                continue
            seen.add(task.id)
            runner = self.runners.get(task.id)
            if runner is None:
                self._add(task)
            else:
                runner.update(task)
        if complete:
            removes.extend(tid for tid in self.runners if tid not in seen)
        if removes:
            await asyncio.gather(*(self._remove(tid) for tid in removes))

    async def _apply_peers(self, msg: dispatcher_pb2.AssignmentsMessage, complete: bool) -> None:
        """Hand the data plane the whole new set of tables, before any new task prepares."""
        tables = {} if complete else dict(self.peers)
        for change in msg.changes:
            if change.assignment.WhichOneof("item") != "peers":
                continue
            table = change.assignment.peers
            if change.action == dispatcher_pb2.AssignmentChange.REMOVE:
                tables.pop(table.network.id, None)
            else:
                tables[table.network.id] = table
        if tables == self.peers and not complete:
            return
        self.peers = tables
        try:
            await self._executor.set_network_peers(dict(tables))
        except Exception:  # the data plane must not stop the agent from running its tasks
            log.exception("network_peers_failed", networks=len(tables))

    async def _remove(self, task_id: str) -> None:
        runner = self.runners.pop(task_id, None)
        if runner is not None:
            await runner.remove()

    async def close(self) -> None:
        """Stop supervising (containers keep running: a restarted agent re-adopts them)."""
        for runner in self.runners.values():
            if runner._job is not None:
                runner._job.cancel()
