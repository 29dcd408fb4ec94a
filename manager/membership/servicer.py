"""Membership RPCs: joining with a token, and promoted workers joining Raft.

Join order matters: the Node object is written *before* a new manager enters the Raft
membership, because from that moment the quorum counts a replica that is not running yet (with
one manager, a second member makes every later write wait for it). So the answer does not wait
for the membership change to commit: the new replica starts once it has the answer."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Protocol

from grpc import aio

from manager.membership.bootstrap import new_node
from manager.store import MemoryStore, Tx
from shoal import auth, ids
from shoal.api import Cluster, Node, NodeRole, membership_pb2, membership_pb2_grpc
from shoal.errors import FailedPrecondition, InvalidSpec, NotFound, PermissionDenied, VersionConflict
from shoal.log import get_logger

log = get_logger("membership")


class RaftMembers(Protocol):
    def members(self) -> list[str]: ...

    async def add_member(self, addr: str) -> None: ...

    async def remove_member(self, addr: str) -> None: ...


class MembershipServicer(membership_pb2_grpc.MembershipServicer):
    def __init__(self, store: MemoryStore, raft: RaftMembers, leader: LeaderLookup) -> None:
        self._store = store
        self._raft = raft
        self._leader = leader
        self._adding: set[asyncio.Future[None]] = set()

    def _cluster(self) -> Cluster:
        cluster = self._store.view().cluster()
        if cluster is None:
            raise FailedPrecondition("cluster is not initialised yet")
        return cluster

    def _managers(self) -> list[str]:
        view = self._store.view()
        return sorted(n.manager_status.addr for n in view.nodes() if n.role == NodeRole.MANAGER)

    def _response(
        self, cluster: Cluster, node_id: str, role: int, raft_addr: str
    ) -> membership_pb2.JoinResponse:
        resp = membership_pb2.JoinResponse(
            node_id=node_id,
            role=role,  # type: ignore[arg-type]
            cluster_id=cluster.id,
            managers=self._managers(),
            node_secret=auth.node_secret(cluster.secret, node_id),
        )
        if role == NodeRole.MANAGER:
            resp.raft_peers.extend(m for m in self._raft.members() if m != raft_addr)
            resp.raft_password = cluster.secret
        return resp

    def _add_to_raft(self, raft_addr: str) -> None:
        """Start the membership change without waiting for its commit: with one manager, the
        change only commits once the new replica runs, and it starts after we answer."""
        if raft_addr in self._raft.members():
            return

        async def add() -> None:
            try:
                await self._raft.add_member(raft_addr)
                log.info("raft_member_added", raft_addr=raft_addr)
            except Exception as e:
                log.warning("raft_member_add_failed", raft_addr=raft_addr, error=str(e))

        task = asyncio.ensure_future(add())
        self._adding.add(task)
        task.add_done_callback(self._adding.discard)

    async def Join(
        self, request: membership_pb2.JoinRequest, context: aio.ServicerContext
    ) -> membership_pb2.JoinResponse:
        cluster = self._cluster()
        tokens = cluster.root_ca.join_tokens
        if request.token and hmac.compare_digest(request.token, tokens.manager):
            role = NodeRole.MANAGER
        elif request.token and hmac.compare_digest(request.token, tokens.worker):
            role = NodeRole.WORKER
        else:
            raise PermissionDenied("invalid join token")
        if not request.hostname or not request.advertise_addr:
            raise InvalidSpec("join needs a hostname and an advertise address")
        if role == NodeRole.MANAGER and not request.raft_addr:
            raise InvalidSpec("a manager join needs a raft address")
        node_id = ids.new_id()
        node = new_node(node_id, request.hostname, role, request.advertise_addr, request.raft_addr)
        await self._store.update(lambda tx: tx.create(node))
        if role == NodeRole.MANAGER:
            self._add_to_raft(request.raft_addr)
        log.info("node_joined", node_id=node_id, hostname=request.hostname, role=NodeRole.Name(role))
        return self._response(cluster, node_id, role, request.raft_addr)

    async def JoinRaft(
        self, request: membership_pb2.JoinRaftRequest, context: aio.ServicerContext
    ) -> membership_pb2.JoinResponse:
        cluster = self._cluster()
        if not auth.verify_node_secret(cluster.secret, request.node_id, request.node_secret):
            raise PermissionDenied("unknown node identity")
        node = self._store.view().get_node(request.node_id)
        if node is None:
            raise NotFound(f"node {request.node_id} not found")
        if node.spec.desired_role != NodeRole.MANAGER:
            raise FailedPrecondition(f"node {request.node_id} is not being promoted")

        def promote(n: Node) -> None:
            n.role = NodeRole.MANAGER
            n.manager_status.addr = request.advertise_addr
            n.manager_status.raft_addr = request.raft_addr

        await update_node(self._store, request.node_id, promote)
        self._add_to_raft(request.raft_addr)
        log.info("node_promoted", node_id=request.node_id, raft_addr=request.raft_addr)
        return self._response(cluster, node.id, NodeRole.MANAGER, request.raft_addr)

    async def Leader(
        self, request: membership_pb2.LeaderRequest, context: aio.ServicerContext
    ) -> membership_pb2.LeaderResponse:
        node_id, addr = self._leader.leader_node()
        if not addr:
            raise NotFound("no leader elected")
        return membership_pb2.LeaderResponse(node_id=node_id, addr=addr)


class LeaderLookup(Protocol):
    def leader_node(self) -> tuple[str, str]:
        """(node id, remote API addr) of the leader, or ("", "")."""


async def update_node(store: MemoryStore, node_id: str, change: Callable[[Node], None]) -> None:
    """Read-modify-write of one node, retried on version conflicts."""
    for _ in range(10):
        try:

            def write(tx: Tx) -> None:
                n = tx.get_node(node_id)
                if n is None:
                    raise NotFound(f"node {node_id} not found")
                change(n)
                tx.update(n)

            await store.update(write)
            return
        except VersionConflict:
            continue
    raise FailedPrecondition(f"node {node_id} keeps changing; try again")
