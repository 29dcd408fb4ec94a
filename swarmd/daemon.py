"""swarmd: one process per host. Manager (Raft replica + control loops when leading) and/or
worker (the agent). Identity lives in the state dir, so a restart rejoins as the same node."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import grpc
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from shoal import auth, ids, rpc
from shoal.api import Node, NodeRole, membership_pb2, membership_pb2_grpc
from shoal.errors import FailedPrecondition, PermissionDenied, Unavailable
from shoal.log import get_logger
from swarmd.config import Config
from swarmd.manager_role import ManagerRole, forget_raft
from swarmd.state import NodeState

log = get_logger("swarmd")
JOIN_TIMEOUT = 60.0


def make_executor(cfg: Config) -> Any:
    if cfg.executor == "test":
        from agent.exec.testing import TestExecutor

        return TestExecutor(cfg.state_dir / "testexec")
    if cfg.executor == "container":
        from agent.network import NetworkManager
        from agent.runtime.executor import ContainerExecutor

        # The overlay's underlay address is the one we advertise (VXLAN's local end).
        underlay = cfg.advertise_remote_api.rsplit(":", 1)[0].strip("[]")
        network = NetworkManager(cfg.hostname, underlay, cfg.state_dir / "network")
        return ContainerExecutor(
            root=cfg.state_dir / "containers", node_name=cfg.hostname, cgroup_parent=cfg.cgroup_parent,
            network=network,
        )  # fmt: skip
    raise FailedPrecondition(f"unknown executor {cfg.executor!r} (test or container)")


def _transient(e: BaseException) -> bool:
    return isinstance(e, grpc.aio.AioRpcError) and e.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def _membership_call(addrs: list[str], method: str, request: Any) -> membership_pb2.JoinResponse:
    """Call a Membership method on the first manager that answers, with backoff."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_transient),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
        stop=stop_after_delay(JOIN_TIMEOUT),
        reraise=True,
    ):
        with attempt:
            last: Exception | None = None
            for addr in addrs:
                async with rpc.channel(addr) as ch:
                    try:
                        resp: membership_pb2.JoinResponse = await getattr(
                            membership_pb2_grpc.MembershipStub(ch), method
                        )(request, timeout=10)
                        return resp
                    except grpc.aio.AioRpcError as e:
                        if not _transient(e):
                            raise
                        last = e
            assert last is not None
            raise last
    raise Unavailable("no manager answered")  # unreachable: tenacity reraises


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state: NodeState | None = None
        self._manager_task: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._role_lock = asyncio.Lock()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT, or until `stop` is set when one is given (in-process tests)."""
        cfg = self.cfg
        state = NodeState.load(cfg.state_dir)
        init = False
        if state is None:
            state, init = await self._first_start()
        self.state = state
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            if state.is_manager:
                role = await self._start_manager(init_cluster=init)
                await role.ready.wait()
            agent_task = tg.create_task(self._run_agent())
            await stop.wait()
            log.info("swarmd_stopping")
            agent_task.cancel()
            await self._stop_manager()

    async def _first_start(self) -> tuple[NodeState, bool]:
        cfg = self.cfg
        if not cfg.join_addr:
            secret = ids.new_secret()
            node_id = ids.new_id()
            state = NodeState(
                node_id=node_id,
                node_secret=auth.node_secret(secret, node_id),
                cluster_id=ids.new_id(),
                role="manager",
                managers=[cfg.advertise_remote_api],
                raft_password=secret,
            )
            state.save(cfg.state_dir)
            return state, True
        req = membership_pb2.JoinRequest(
            token=cfg.join_token,
            hostname=cfg.hostname,
            advertise_addr=cfg.advertise_remote_api,
            raft_addr=cfg.raft_addr,
        )
        try:
            resp = await _membership_call([cfg.join_addr], "Join", req)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied(f"join refused by {cfg.join_addr}: {e.details()}") from None
            raise Unavailable(f"cannot join via {cfg.join_addr}: {e.details()}") from None
        state = NodeState(
            node_id=resp.node_id,
            node_secret=resp.node_secret,
            cluster_id=resp.cluster_id,
            role="manager" if resp.role == NodeRole.MANAGER else "worker",
            managers=list(resp.managers),
            raft_peers=list(resp.raft_peers),
            raft_password=resp.raft_password,
        )
        state.save(cfg.state_dir)
        log.info("joined_cluster", node_id=state.node_id, role=state.role, cluster_id=state.cluster_id)
        return state, False

    async def _start_manager(self, *, init_cluster: bool = False) -> ManagerRole:
        assert self._tg is not None and self.state is not None
        role = ManagerRole(self.cfg, self.state)
        self._manager_task = self._tg.create_task(role.run(init_cluster=init_cluster))
        return role

    async def _stop_manager(self) -> None:
        task, self._manager_task = self._manager_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_agent(self) -> None:
        from agent import Agent

        assert self.state is not None
        managers = list(
            dict.fromkeys([*self.state.managers, *([self.cfg.join_addr] if self.cfg.join_addr else [])])
        )
        if self.state.is_manager and self.cfg.advertise_remote_api not in managers:
            managers.insert(0, self.cfg.advertise_remote_api)
        agent = Agent(
            node_id=self.state.node_id,
            node_secret=self.state.node_secret,
            managers=managers,
            executor=make_executor(self.cfg),
            state_dir=self.cfg.state_dir / "agent",
            hostname=self.cfg.hostname,
            on_node=self._on_node,
        )
        await agent.run()

    async def _on_node(self, node: Node) -> None:
        """Promotion and demotion, as the session reports them."""
        assert self.state is not None
        async with self._role_lock:
            running = self._manager_task is not None and not self._manager_task.done()
            if node.spec.desired_role == NodeRole.MANAGER and not running:
                await self._promote()
            elif node.role == NodeRole.WORKER and node.spec.desired_role == NodeRole.WORKER and running:
                log.info("demoted_stopping_manager", node_id=node.id)
                await self._stop_manager()
                forget_raft(self.cfg)
                self.state.role = "worker"
                self.state.raft_peers = []
                self.state.save(self.cfg.state_dir)

    async def _promote(self) -> None:
        assert self.state is not None
        req = membership_pb2.JoinRaftRequest(
            node_id=self.state.node_id,
            node_secret=self.state.node_secret,
            raft_addr=self.cfg.raft_addr,
            advertise_addr=self.cfg.advertise_remote_api,
        )
        forget_raft(self.cfg)  # a fresh replica: it catches up from the leader
        resp = await _membership_call(self.state.managers or [self.cfg.join_addr], "JoinRaft", req)
        self.state.role = "manager"
        self.state.raft_peers = list(resp.raft_peers)
        self.state.raft_password = resp.raft_password
        self.state.managers = list(resp.managers)
        self.state.save(self.cfg.state_dir)
        log.info("promoted_starting_manager", node_id=self.state.node_id)
        await self._start_manager()


def default_state_dir() -> Path:
    return Path("/var/lib/swarmd")
