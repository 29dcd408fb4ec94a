"""The test executor: simulates containers, as SwarmKit's integration tests do, so the control
plane can be exercised at scale without a runtime. Each simulated container is a small JSON file
in the state dir, so it survives an agent restart exactly as a real container would.

Behaviour is picked by the task's command line: `true` exits 0 and `false` exits 1 shortly after
starting; an image named `invalid*` is rejected at prepare; anything else runs until shut down."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from agent.exec import ContainerState, ExecError, logfile
from agent.exec.host import describe_host
from agent.exec.logfile import LogEntry
from shoal.api import Task
from shoal.api.dispatcher_pb2 import NetworkPeers
from shoal.api.types_pb2 import NodeDescription

_SIMULATED_EXIT_DELAY = 0.2


class TestExecutor:
    __test__ = False  # not a pytest test class

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._exited: dict[str, asyncio.Event] = {}
        # What the dispatcher last sent: simulated containers have no data plane to program.
        self.network_peers: dict[str, NetworkPeers] = {}

    async def set_network_peers(self, tables: dict[str, NetworkPeers]) -> None:
        self.network_peers = tables

    async def describe(self) -> NodeDescription:
        return describe_host()

    def controller(self, task: Task) -> TestController:
        return TestController(self, task)

    def exited(self, task_id: str) -> asyncio.Event:
        return self._exited.setdefault(task_id, asyncio.Event())


class TestController:
    __test__ = False

    def __init__(self, executor: TestExecutor, task: Task) -> None:
        self.task = task
        self._ex = executor
        self._path = executor.dir / f"{task.id}.json"
        self._log = executor.dir / f"{task.id}.log"

    def _load(self) -> dict[str, object] | None:
        try:
            data: dict[str, object] = json.loads(self._path.read_text())
            return data
        except (FileNotFoundError, ValueError):
            return None

    def _save(self, **state: object) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._path)

    def _argv(self) -> list[str]:
        c = self.task.spec.container
        return [*c.command, *c.args]

    async def inspect(self) -> ContainerState:
        st = self._load()
        if st is None:
            return ContainerState(exists=False)
        code = st.get("exit_code")
        return ContainerState(
            exists=True,
            running=bool(st.get("running")),
            pid=int(st.get("pid", 0)),  # type: ignore[call-overload]
            exit_code=None if code is None else int(code),  # type: ignore[call-overload]
        )

    async def prepare(self) -> None:
        if self.task.spec.container.image.startswith("invalid"):
            raise ExecError(f"image {self.task.spec.container.image!r} cannot be pulled (test executor)")
        if self._load() is None:
            self._save(running=False, pid=0, exit_code=None)

    async def start(self) -> int:
        st = self._load() or {}
        if st.get("running") or st.get("exit_code") is not None:
            return int(st.get("pid", 0))  # type: ignore[call-overload]
        pid = 100000 + (hash(self.task.id) % 100000)
        self._save(running=True, pid=pid, exit_code=None)
        argv = self._argv()
        with self._log.open("a") as f:  # what a container's output would be: its command line
            f.write(logfile.encode("stdout", f"test executor: {' '.join(argv)}\n"))
        if argv[:1] in (["true"], ["false"]):
            asyncio.get_running_loop().call_later(
                _SIMULATED_EXIT_DELAY, self._exit, 0 if argv[0] == "true" else 1
            )
        return pid

    def _exit(self, code: int) -> None:
        st = self._load()
        if st is None or not st.get("running"):
            return
        self._save(running=False, pid=st.get("pid", 0), exit_code=code)
        self._ex.exited(self.task.id).set()

    async def wait(self) -> ContainerState:
        st = await self.inspect()
        if st.exists and st.running:
            await self._ex.exited(self.task.id).wait()
            st = await self.inspect()
        return st

    async def shutdown(self, grace_period: float) -> None:
        self._exit(137)

    async def wait_healthy(self) -> None:
        return None  # simulated containers have no health checks

    def logs(self, *, follow: bool, tail: int) -> AsyncIterator[LogEntry]:
        return logfile.read(self._log, follow=follow, tail=tail)

    async def remove(self) -> None:
        self._exit(137)
        self._path.unlink(missing_ok=True)
        self._log.unlink(missing_ok=True)
        self._ex._exited.pop(self.task.id, None)
