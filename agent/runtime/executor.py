"""The container executor: the agent's Executor backed by our own runtime. A controller turns a
task into a bundle (prepare), starts its supervisor (start), and reads back what the supervisor
records (inspect, wait), so a controller made after an agent restart re-adopts the container."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import psutil

from agent.exec import ContainerState, ExecError, LogEntry, logfile
from agent.exec.host import describe_host
from agent.runtime import cgroups, linux, spec
from agent.runtime.bundle import Bundle, Config, HealthSpec, State
from shoal.api import Task
from shoal.api.dispatcher_pb2 import NetworkPeers
from shoal.api.types_pb2 import NodeDescription
from shoal.log import get_logger

if TYPE_CHECKING:
    from agent.network import NetworkManager

log = get_logger("runtime")
POLL = 0.05
START_TIMEOUT = 30.0
TINI = Path("/usr/bin/tini-static")


class PulledImageLike(Protocol):
    @property
    def digest(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def layers(self) -> list[Path]: ...


class ImageStoreLike(Protocol):
    async def pull(self, ref: str) -> PulledImageLike: ...

    def gc(self, in_use: set[str]) -> list[Path]: ...


class ContainerExecutor:
    def __init__(
        self,
        root: Path,
        node_name: str,
        images: ImageStoreLike | None = None,
        cgroup_parent: str = "",
        network: NetworkManager | None = None,
    ) -> None:
        self.root = root
        self.node_name = node_name
        self.cgroup_parent = cgroup_parent or f"shoal/{node_name}"
        self.root.mkdir(parents=True, exist_ok=True)
        if images is None:
            from agent.image import ImageStore

            images = ImageStore(root / "images")
        self.images: ImageStoreLike = images
        # Without a network manager, overlay attachments are ignored: every container gets a
        # private, empty network namespace (the runtime tests, and nodes without a data plane).
        self.network = network
        self._network_restored = False
        self._network_lock = asyncio.Lock()

    async def network_ready(self) -> NetworkManager | None:
        """The network manager, once it has re-adopted the namespaces of the containers this
        node still has (bundles on disk) and removed everything else: on first use after a
        start, so that a restarted agent finds one set of devices, not two."""
        if self.network is None:
            return None
        async with self._network_lock:
            if not self._network_restored:
                known = await asyncio.to_thread(lambda: [b.path.name for b in self.bundles() if b.exists()])
                await self.network.restore(known)
                self._network_restored = True
        return self.network

    async def set_network_peers(self, tables: dict[str, NetworkPeers]) -> None:
        network = await self.network_ready()
        if network is not None:
            await network.set_network_peers(tables)

    async def describe(self) -> NodeDescription:
        return describe_host()

    def controller(self, task: Task) -> ContainerController:
        return ContainerController(self, task)

    def bundles(self) -> list[Bundle]:
        return [Bundle(p) for p in (self.root / "bundles").glob("*") if p.is_dir()]

    async def gc(self) -> int:
        """Remove the images no container on this node uses any more. Returns how many paths
        went (images, blobs, layers)."""

        def collect() -> int:
            in_use = {b.config().image_digest for b in self.bundles() if b.exists()}
            return len(self.images.gc(in_use))

        removed = await asyncio.to_thread(collect)
        if removed:
            log.info("images_collected", removed=removed)
        return removed


class ContainerController:
    def __init__(self, executor: ContainerExecutor, task: Task) -> None:
        self.task = task
        self._ex = executor
        self.bundle = Bundle(executor.root / "bundles" / task.id)

    def _cgroup(self) -> cgroups.Cgroup:
        return cgroups.for_container(self._ex.cgroup_parent, self.task.id)

    def _state(self) -> State | None:
        return self.bundle.state()

    async def inspect(self) -> ContainerState:
        if not self.bundle.exists():
            return ContainerState(exists=False)
        st = self._state()
        if st is None or st.status == "created":
            return ContainerState(exists=True)
        if st.status == "running":
            if psutil.pid_exists(st.supervisor):
                return ContainerState(exists=True, running=True, pid=st.pid)
            st = self._state() or st  # it may have just written its last state and gone
            if st.status == "running":
                # The supervisor died without recording an exit (a reboot, or it was killed).
                return ContainerState(exists=True, pid=st.pid, exit_code=255, message="container lost")
        return _final(st)

    async def prepare(self) -> None:
        if self.bundle.exists():
            return
        c = self.task.spec.container
        image = await self._ex.images.pull(c.image)
        uid, gid = spec.user(self.task, image.config, image.layers)
        res = self.task.spec.resources
        cfg = Config(
            task_id=self.task.id,
            lowerdirs=[str(p) for p in image.layers],
            image_digest=image.digest,
            argv=spec.argv(self.task, image.config),
            env=spec.env(self.task, image.config),
            cwd=c.dir or str(image.config.get("WorkingDir") or "/"),
            uid=uid,
            gid=gid,
            hostname=spec.hostname(self.task),
            cgroup_parent=self._ex.cgroup_parent,
            memory_bytes=res.limits.memory_bytes,
            nano_cpus=res.limits.nano_cpus,
            pids_limit=res.pids_limit,
            stop_signal=c.stop_signal or str(image.config.get("StopSignal") or "SIGTERM"),
            init=str(TINI) if c.init else "",
            health=health_config(self.task, image.config),
        )
        if c.init and not TINI.exists():  # noqa: ASYNC240 - one stat
            raise ExecError(f"--init needs {TINI} (Debian package tini)")
        network = await self._ex.network_ready()
        if network is not None:
            cfg.netns = await network.attach(self.task)
        try:
            if cfg.netns:
                from agent.network import resolv_conf

                cfg.resolv_conf = str(self.bundle.path / "resolv.conf")
                await asyncio.to_thread(_write, Path(cfg.resolv_conf), resolv_conf())
            await asyncio.to_thread(self.bundle.write_config, cfg)
        except BaseException:
            if network is not None:
                await network.detach(self.task.id)
            raise

    async def start(self) -> int:
        st = self._state()
        if st is not None and st.status != "created":
            if st.error:
                raise ExecError(f"container failed to start: {st.error}")
            return st.pid
        # The supervisor daemonizes (its first process exits at once), so swarmd never has
        # long-lived children to reap; never fork from swarmd itself (gRPC threads).
        err = self.bundle.path / "supervisor.err"
        with err.open("ab") as errf:
            proc = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "agent.runtime.supervisor", str(self.bundle.path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf, close_fds=True,
                start_new_session=True, timeout=START_TIMEOUT,
            )  # fmt: skip
        if proc.returncode != 0:
            raise ExecError(f"container supervisor failed: {err.read_text()[-500:].strip()}")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            st = self._state()
            if st is not None and st.status != "created":
                if st.error:
                    raise ExecError(f"container failed to start: {st.error.splitlines()[-1]}")
                return st.pid
            if time.monotonic() > deadline:
                raise ExecError("container did not start in time")
            await asyncio.sleep(POLL / 2)

    async def wait_healthy(self) -> None:
        while True:
            st = self._state()
            if st is not None and st.status != "created" and not st.error and st.health == "":
                return  # no health check: started is healthy, even if it has exited already
            if st is None or st.status != "running":
                final = await self.inspect()
                raise ExecError(f"container exited before it was healthy ({final.message})")
            if st.health in ("", "healthy"):
                return
            if st.health == "unhealthy":
                raise ExecError(f"container unhealthy: {st.health_output.strip()[-200:]}")
            await asyncio.sleep(POLL)

    async def wait(self) -> ContainerState:
        while True:
            st = await self.inspect()
            if not st.running:
                return st
            await asyncio.sleep(POLL)

    async def shutdown(self, grace_period: float) -> None:
        st = self._state()
        if st is None or st.status != "running":
            return
        try:
            await asyncio.to_thread(_ask, self.bundle.socket, f"stop {grace_period}")
        except OSError:
            await asyncio.to_thread(self._cgroup().kill_all)  # no supervisor to ask
            return
        # The supervisor records the exit in its state file; there is nothing to await but that.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_period + 10):
                await self.wait()

    async def remove(self) -> None:
        await self.shutdown(0)
        await asyncio.to_thread(self._remove_files)
        network = await self._ex.network_ready()
        if network is not None:
            await network.detach(self.task.id)

    def _remove_files(self) -> None:
        with contextlib.suppress(OSError):
            linux.umount2(str(self.bundle.rootfs), linux.MNT_DETACH)
        cg = self._cgroup()
        if cg.exists():
            cg.remove()
        shutil.rmtree(self.bundle.path, ignore_errors=True)

    def logs(self, *, follow: bool, tail: int) -> AsyncIterator[LogEntry]:
        def alive() -> bool:
            st = self._state()
            return st is not None and st.status == "running"

        return logfile.read(self.bundle.log, follow=follow, tail=tail, alive=alive)


def health_config(task: Task, image: dict[str, Any]) -> HealthSpec | None:
    """The spec's health check, else the image's HEALTHCHECK; ["NONE"] turns it off."""
    hc = task.spec.container.healthcheck
    img = image.get("Healthcheck") or {}
    test = list(hc.test) or list(img.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    argv = (
        ["/bin/sh", "-c", " ".join(test[1:])]
        if test[0] == "CMD-SHELL"
        else test[1:]
        if test[0] == "CMD"
        else test
    )

    def seconds(
        field: Literal["interval", "timeout", "start_period"], image_key: str, default: float
    ) -> float:
        if hc.HasField(field):
            return float(getattr(hc, field).ToTimedelta().total_seconds())
        return float(img.get(image_key, 0)) / 1e9 or default  # image configs count nanoseconds

    return HealthSpec(
        test=argv,
        interval=seconds("interval", "Interval", 30.0),
        timeout=seconds("timeout", "Timeout", 30.0),
        start_period=seconds("start_period", "StartPeriod", 0.0),
        retries=hc.retries or int(img.get("Retries") or 3),
    )


def _final(st: State) -> ContainerState:
    code = st.exit_code if st.exit_code is not None else 255
    if st.health == "unhealthy":
        out = st.health_output.strip()[-200:]
        return ContainerState(
            exists=True, pid=st.pid, exit_code=code, unhealthy=True, message=f"container unhealthy: {out}"
        )
    if st.oom_killed:
        message = "OOM killed"
    elif st.error:
        message = f"container failed to start: {st.error.splitlines()[-1]}"
    else:
        message = f"exit code {code}"
    return ContainerState(exists=True, pid=st.pid, exit_code=code, message=message, oom_killed=st.oom_killed)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _ask(address: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        s.sendall(command.encode())
        return s.recv(64).decode()
