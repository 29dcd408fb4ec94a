"""One task's life on this node, after SwarmKit's agent/exec controller loop: from ASSIGNED to
RUNNING by the executor's controller, then to a terminal state; shut down when the manager's
desired state says so. Every state reached is persisted and reported."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from agent.exec import Controller, ExecError, TemporaryError
from agent.reporter import StatusReporter
from agent.taskdb import TaskDB
from shoal.api import Task, TaskState
from shoal.log import get_logger

log = get_logger("agent.runner")
T = TypeVar("T")
DEFAULT_GRACE = 10.0
TEMPORARY_RETRY = 1.0


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class TaskRunner:
    def __init__(self, task: Task, controller: Controller, reporter: StatusReporter, db: TaskDB) -> None:
        self.task = task
        self.controller = controller
        self._ctlr = controller
        self._reporter = reporter
        self._db = db
        self._changed = asyncio.Event()
        self._job: asyncio.Task[None] | None = None

    @property
    def state(self) -> int:
        return self.task.status.state

    def start(self) -> None:
        self._job = asyncio.get_running_loop().create_task(self._run(), name=f"task-{self.task.id}")

    def update(self, task: Task) -> None:
        """A newer copy from the manager. Our own status wins when it is further along."""
        merged = Task()
        merged.CopyFrom(task)
        if self.task.status.state >= task.status.state:
            merged.status.CopyFrom(self.task.status)
        self.task = merged
        self._db.save(merged)
        self._changed.set()

    def _set(self, state: int, message: str, err: str = "", pid: int = 0, exit_code: int = 0) -> None:
        if state < self.state:
            return
        st = self.task.status
        st.state = state  # type: ignore[assignment]
        st.message = message
        st.err = err
        st.timestamp.CopyFrom(_now())
        if pid:
            st.container_status.pid = pid
        if state > TaskState.RUNNING:
            st.container_status.exit_code = exit_code
        self._db.save(self.task)
        self._reporter.report(self.task.id, st)

    def _shutdown_wanted(self) -> bool:
        return self.task.desired_state > TaskState.RUNNING

    async def _run(self) -> None:
        try:
            while True:
                if self.state > TaskState.RUNNING:
                    await self._idle()
                elif self._shutdown_wanted():
                    await self._shutdown()
                else:
                    await self._step()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in a controller must not take the agent down
            log.exception("task_runner_crashed", task_id=self.task.id)
            self._set(TaskState.FAILED, "agent error", err=str(e))

    async def _idle(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def _shutdown(self) -> None:
        if self.state >= TaskState.STARTING:
            grace = DEFAULT_GRACE
            spec = self.task.spec.container
            if spec.HasField("stop_grace_period"):
                grace = spec.stop_grace_period.ToTimedelta().total_seconds()
            await self._ctlr.shutdown(grace)
            final = await self._ctlr.inspect()
            self._set(TaskState.SHUTDOWN, "shutdown", exit_code=final.exit_code or 0)
        else:
            self._set(TaskState.SHUTDOWN, "shutdown before start")

    async def _step(self) -> None:
        state = self.state
        try:
            if state < TaskState.ACCEPTED:
                self._set(TaskState.ACCEPTED, "accepted")
            elif state == TaskState.ACCEPTED:
                self._set(TaskState.PREPARING, "preparing")
            elif state == TaskState.PREPARING:
                await self._ctlr.prepare()
                self._set(TaskState.READY, "prepared")
            elif state == TaskState.READY:
                self._set(TaskState.STARTING, "starting")
            elif state == TaskState.STARTING:
                pid = await self._ctlr.start()
                # With a health check, RUNNING means healthy (as SwarmKit's container adapter
                # does): the updater and the load balancer then count only healthy tasks.
                healthy, _ = await self._until_changed(self._ctlr.wait_healthy())
                if healthy:
                    self._set(TaskState.RUNNING, "started", pid=pid)
            else:
                await self._watch_running()
        except TemporaryError as e:
            log.warning("task_temporary_error", task_id=self.task.id, error=str(e))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TEMPORARY_RETRY):
                    await self._changed.wait()
        except ExecError as e:
            terminal = TaskState.REJECTED if state < TaskState.STARTING else TaskState.FAILED
            self._set(terminal, "rejected" if terminal == TaskState.REJECTED else "failed", err=str(e))

    async def _until_changed(self, work: Awaitable[T]) -> tuple[bool, T | None]:
        """Await work unless the manager changes the task first: (finished, its result)."""
        self._changed.clear()
        job = asyncio.ensure_future(work)
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({job, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            return False, None
        return True, job.result()  # raises what the work raised

    async def _watch_running(self) -> None:
        st = await self._ctlr.inspect()
        if not st.exists:
            self._set(TaskState.FAILED, "failed", err="container is gone")
            return
        done, final = await self._until_changed(self._ctlr.wait())
        if not done or final is None:
            return  # the manager changed something: the loop re-evaluates
        if self._shutdown_wanted():
            return
        code = final.exit_code or 0
        if final.unhealthy:
            self._set(TaskState.FAILED, "failed", err=final.message, exit_code=code)
        elif code == 0 and not final.oom_killed:
            self._set(TaskState.COMPLETE, "finished", exit_code=0)
        else:
            err = final.message or f"task: non-zero exit ({code})"
            self._set(TaskState.FAILED, "failed", err=err, exit_code=code)

    async def remove(self) -> None:
        """Stop, remove the container and forget the task (it left the assignment set)."""
        if self._job is not None:
            self._job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._job
        with contextlib.suppress(Exception):
            await self._ctlr.shutdown(0 if self.state > TaskState.RUNNING else DEFAULT_GRACE)
        try:
            await self._ctlr.remove()
        except Exception:
            log.exception("task_remove_failed", task_id=self.task.id)
        self._db.delete(self.task.id)
        self._reporter.forget(self.task.id)
