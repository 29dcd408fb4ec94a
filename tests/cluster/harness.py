"""Tier 2: an in-process cluster of real swarmd daemons (real Raft and gRPC on loopback, the
test executor), all in one event loop. No root needed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path

from shoal import rpc
from shoal.api import control_pb2, control_pb2_grpc
from swarmd.config import Config
from swarmd.daemon import Daemon


def free_port_pair() -> int:
    """A port P with P+1 also free (remote API + Raft)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


async def wait_until(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await cond() if asyncio.iscoroutinefunction(cond) else cond():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Host:
    def __init__(self, cluster: InProcessCluster, name: str, manager: bool) -> None:
        self.cluster = cluster
        self.name = name
        self.manager = manager
        port = free_port_pair()
        self.addr = f"127.0.0.1:{port}"
        self.state_dir = cluster.base / name
        self.socket = cluster.base / f"{name}.sock"
        self.task: asyncio.Task[None] | None = None
        self.stop_event = asyncio.Event()
        self.daemon: Daemon | None = None

    def config(self, join_addr: str = "", join_token: str = "") -> Config:
        return Config(
            state_dir=self.state_dir,
            hostname=self.name,
            listen_remote_api=self.addr,
            advertise_remote_api=self.addr,
            control_socket=self.socket,
            join_addr=join_addr,
            join_token=join_token,
            executor="test",
        )

    def start(self, join_addr: str = "", join_token: str = "") -> None:
        self.stop_event = asyncio.Event()
        self.daemon = Daemon(self.config(join_addr, join_token))
        self.task = asyncio.ensure_future(self.daemon.run(self.stop_event))

    async def stop(self) -> None:
        """Graceful stop (SIGTERM-like)."""
        if self.task is None:
            return
        self.stop_event.set()
        try:
            async with asyncio.timeout(15):
                await self.task
        except BaseException:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        self.task = None

    async def kill(self) -> None:
        """Abrupt stop: cancel everything (the closest to SIGKILL in one process)."""
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        self.task = None


class InProcessCluster:
    def __init__(self, base: Path, managers: int = 3, workers: int = 2) -> None:
        self.base = base
        self.hosts: dict[str, Host] = {}
        for i in range(1, managers + 1):
            self.hosts[f"m{i}"] = Host(self, f"m{i}", True)
        for i in range(1, workers + 1):
            self.hosts[f"w{i}"] = Host(self, f"w{i}", False)
        self._channels: dict[str, object] = {}

    def control(self, host: str = "") -> control_pb2_grpc.ControlStub:
        """A Control stub on a live manager's socket (host's if given)."""
        name = host or next(h.name for h in self.hosts.values() if h.manager and h.task is not None)
        ch = rpc.channel(rpc.socket_target(str(self.hosts[name].socket)))
        self._channels[name + str(len(self._channels))] = ch
        return control_pb2_grpc.ControlStub(ch)

    async def nodes(self, host: str = "") -> list:  # type: ignore[type-arg]
        resp = await self.control(host).ListNodes(control_pb2.ListNodesRequest(), timeout=5)
        return list(resp.nodes)

    async def start(self) -> None:
        m1 = self.hosts["m1"]
        m1.start()
        await wait_until(lambda: m1.socket.exists(), what="m1 control socket")
        clusters: list = []  # type: ignore[type-arg]

        async def have_cluster() -> bool:
            resp = await self.control("m1").ListClusters(control_pb2.ListClustersRequest(), timeout=5)
            clusters[:] = resp.clusters
            return bool(clusters)

        await wait_until(have_cluster, what="cluster initialised")
        tokens = clusters[0].root_ca.join_tokens
        for h in self.hosts.values():
            if h.name == "m1":
                continue
            h.start(join_addr=m1.addr, join_token=tokens.manager if h.manager else tokens.worker)
            if h.manager:
                # One membership change at a time, as Raft requires.
                await wait_until(lambda h=h: h.socket.exists(), what=f"{h.name} manager up")
        await self.wait_ready(len(self.hosts))

    async def wait_ready(self, n: int, timeout: float = 30.0) -> None:
        async def ready() -> bool:
            nodes = await self.nodes()
            return sum(1 for x in nodes if x.status.state == 2) == n

        await wait_until(ready, timeout=timeout, what=f"{n} nodes READY")

    async def close(self) -> None:
        for h in self.hosts.values():
            await h.stop()
        for ch in self._channels.values():
            await ch.close()  # type: ignore[attr-defined]
