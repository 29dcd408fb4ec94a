"""The role manager (leader-only loop): carries out demotions in Raft, and keeps each manager's
`manager_status` (leader flag, reachability) true to what Raft reports.

Promotion is driven by the promoted node itself (it calls Membership.JoinRaft when its session
shows desired_role MANAGER); demotion is driven here, because the node being demoted may be
the leader, which must hand leadership over before it can be removed."""

from __future__ import annotations

import asyncio
from typing import Protocol

from manager.membership.servicer import update_node
from manager.store import MemoryStore
from shoal.api import Node, NodeRole
from shoal.api.types_pb2 import RaftMemberStatus
from shoal.errors import ShoalError
from shoal.log import get_logger

log = get_logger("rolemanager")
REFRESH = 1.0


class RaftControl(Protocol):
    self_addr: str

    def is_leader(self) -> bool: ...

    def connected(self, addr: str) -> bool: ...

    async def remove_member(self, addr: str) -> None: ...

    async def transfer_leadership(self, to: str | None = None) -> None: ...


class RoleManager:
    def __init__(self, store: MemoryStore, raft: RaftControl) -> None:
        self._store = store
        self._raft = raft

    async def run(self) -> None:
        _, watch = self._store.view_and_watch()
        with watch:
            while True:
                await self._reconcile()
                try:
                    async with asyncio.timeout(REFRESH):
                        await watch.get()
                    watch.get_nowait_all()
                except TimeoutError:
                    pass

    async def _reconcile(self) -> None:
        for node in self._store.view().nodes():
            try:
                if node.role == NodeRole.MANAGER and node.spec.desired_role == NodeRole.WORKER:
                    await self._demote(node)
                elif node.role == NodeRole.MANAGER:
                    await self._refresh_status(node)
            except ShoalError as e:
                log.warning("role_reconcile_failed", node_id=node.id, error=e.message)

    async def _demote(self, node: Node) -> None:
        raft_addr = node.manager_status.raft_addr
        if raft_addr == self._raft.self_addr:
            log.info("leader_demoted_transferring_leadership", node_id=node.id)
            await self._raft.transfer_leadership()
            return
        await self._raft.remove_member(raft_addr)

        def demote(n: Node) -> None:
            n.role = NodeRole.WORKER
            n.ClearField("manager_status")

        await update_node(self._store, node.id, demote)
        log.info("node_demoted", node_id=node.id)

    async def _refresh_status(self, node: Node) -> None:
        addr = node.manager_status.raft_addr
        leader = addr == self._raft.self_addr
        reach = RaftMemberStatus.REACHABLE if self._raft.connected(addr) else RaftMemberStatus.UNREACHABLE
        st = node.manager_status
        if st.leader == leader and st.reachability == reach:
            return

        def refresh(n: Node) -> None:
            n.manager_status.leader = leader
            n.manager_status.reachability = reach

        await update_node(self._store, node.id, refresh)
