"""A manager: one Raft replica of the store, the RPC surface, and — while it leads — the
control loops. Loops start in a TaskGroup when leadership is gained (after a Raft barrier, so
they see everything committed by earlier leaders) and are cancelled when it is lost."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from grpc import aio

from manager.forward import Forwarder, forwarding_handler, leader_only_handler
from manager.membership import MembershipServicer, RoleManager
from manager.raft import RaftNode
from manager.store import MemoryStore
from shoal import auth
from shoal.api import NodeRole, control_pb2, dispatcher_pb2, logs_pb2, membership_pb2
from shoal.errors import NotLeader, ShoalError
from shoal.log import get_logger

log = get_logger("manager")
LOOP_RESTART_DELAY = 1.0


class Loop(Protocol):
    async def run(self) -> None: ...


class Manager:
    def __init__(
        self,
        *,
        store: MemoryStore,
        raft: RaftNode,
        node_id: str,
        node_secret: str,
        control_servicer: Any,
        make_dispatcher: Callable[[MemoryStore], Any],
        make_loops: Callable[[MemoryStore], list[Any]],
    ) -> None:
        self.store = store
        self.raft = raft
        self.node_id = node_id
        self._secret = node_secret
        self._control = control_servicer
        self._make_dispatcher = make_dispatcher
        self._make_loops = make_loops
        self.dispatcher: Any | None = None
        self.forwarder = Forwarder(self)
        self._leadership_changed = asyncio.Event()

    # ---- LeaderInfo --------------------------------------------------------------------------
    def is_leader(self) -> bool:
        return self.raft.is_leader()

    def leader_node(self) -> tuple[str, str]:
        raft_addr = self.raft.leader_addr()
        if raft_addr is None:
            return "", ""
        for n in self.store.view().nodes():
            if n.manager_status.raft_addr == raft_addr:
                return n.id, n.manager_status.addr
        return "", ""

    def leader_api_addr(self) -> str | None:
        return self.leader_node()[1] or None

    def identity(self) -> tuple[str, str]:
        return self.node_id, self._secret

    def is_manager_identity(self, node_id: str, secret: str) -> bool:
        view = self.store.view()
        cluster, node = view.cluster(), view.get_node(node_id) if node_id else None
        if cluster is None or node is None or node.role != NodeRole.MANAGER:
            return False
        return auth.verify_node_secret(cluster.secret, node_id, secret)

    # ---- RPC surface -------------------------------------------------------------------------
    def register(self, server: aio.Server) -> None:
        """Control and Membership: forwarded to the leader; Dispatcher: leader only."""
        control = control_pb2.DESCRIPTOR.services_by_name["Control"]
        membership = membership_pb2.DESCRIPTOR.services_by_name["Membership"]
        dispatcher = dispatcher_pb2.DESCRIPTOR.services_by_name["Dispatcher"]
        logs = logs_pb2.DESCRIPTOR.services_by_name["Logs"]
        logbroker = logs_pb2.DESCRIPTOR.services_by_name["LogBroker"]
        membership_servicer = MembershipServicer(self.store, self.raft, self)
        server.add_generic_rpc_handlers(
            (
                forwarding_handler(self.forwarder, control, self._control, require_manager=True),
                forwarding_handler(self.forwarder, membership, membership_servicer, require_manager=False),
                forwarding_handler(self.forwarder, logs, _LogsServicer(self), require_manager=True),
                leader_only_handler(dispatcher, lambda: self.dispatcher, self),
                leader_only_handler(logbroker, lambda: getattr(self.dispatcher, "logs", None), self),
            )
        )

    def on_raft_state_change(self, loop: asyncio.AbstractEventLoop) -> Callable[[bool], None]:
        def changed(_leader: bool) -> None:
            loop.call_soon_threadsafe(self._leadership_changed.set)

        return changed

    # ---- leadership --------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                lead: asyncio.Task[None] | None = None
                while True:
                    leader = self.raft.is_leader()
                    if leader and (lead is None or lead.done()):
                        log.info("leadership_gained", node_id=self.node_id)
                        lead = tg.create_task(self._lead())
                    elif not leader and lead is not None:
                        log.info("leadership_lost", node_id=self.node_id)
                        await _cancel(lead)
                        lead = None
                        self.dispatcher = None
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await self._leadership_changed.wait()
                    self._leadership_changed.clear()
        finally:
            self.dispatcher = None
            await self.forwarder.close()

    async def _lead(self) -> None:
        while True:
            try:
                await self.raft.barrier()
                break
            except ShoalError as e:
                if not self.raft.is_leader():
                    return
                log.warning("leader_barrier_failed", error=e.message)
                await asyncio.sleep(0.2)
        dispatcher = self._make_dispatcher(self.store)
        loops: list[tuple[str, Any]] = [
            ("dispatcher", dispatcher),
            ("rolemanager", RoleManager(self.store, self.raft)),
            *((type(lp).__name__, lp) for lp in self._make_loops(self.store)),
        ]
        self.dispatcher = dispatcher
        try:
            async with asyncio.TaskGroup() as tg:
                for name, loop in loops:
                    tg.create_task(_supervise(name, loop))
        finally:
            self.dispatcher = None


class _LogsServicer:
    """The operator's log subscriptions, served by the leader's log broker."""

    def __init__(self, mgr: Manager) -> None:
        self._mgr = mgr

    async def SubscribeLogs(
        self, request: logs_pb2.SubscribeLogsRequest, context: aio.ServicerContext
    ) -> AsyncIterator[logs_pb2.SubscribeLogsMessage]:
        broker = getattr(self._mgr.dispatcher, "logs", None)
        if broker is None:
            raise NotLeader("this manager is not leading yet")
        async for item in broker.SubscribeLogs(request, context):
            yield item


async def _supervise(name: str, loop: Loop) -> None:
    """A crashing loop is logged and restarted; it never takes the manager down."""
    while True:
        try:
            await loop.run()
            log.warning("loop_returned", loop=name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("loop_crashed", loop=name)
        await asyncio.sleep(LOOP_RESTART_DELAY)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
