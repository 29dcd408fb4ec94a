"""Three real Raft replicas on loopback: replication, failover, restart from the journal,
membership changes. (Tier 2: real Raft, no root.)"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from manager.raft import RaftNode
from manager.store import MemoryStore
from shoal.api import Service
from shoal.errors import FailedPrecondition, NotLeader


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def svc(name: str) -> Service:
    s = Service(id=name)
    s.spec.annotations.name = name
    return s


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Cluster:
    def __init__(self, base: Path, n: int) -> None:
        self.base = base
        self.addrs = [f"127.0.0.1:{free_port()}" for _ in range(n)]
        self.stores: dict[str, MemoryStore] = {}
        self.nodes: dict[str, RaftNode] = {}

    def start(self, addr: str, peers: list[str] | None = None) -> RaftNode:
        store = MemoryStore()
        peers = [a for a in (self.addrs if peers is None else peers) if a != addr]
        node = RaftNode(store, self_addr=addr, peers=peers, state_dir=self.base / addr, password="pw")
        self.stores[addr], self.nodes[addr] = store, node
        return node

    def stop(self, addr: str) -> None:
        self.nodes.pop(addr).destroy()

    def leader(self) -> str | None:
        leaders = [a for a, n in self.nodes.items() if n.is_leader()]
        return leaders[0] if len(leaders) == 1 else None


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, 3)
    for a in c.addrs:
        c.start(a)
    try:
        yield c
    finally:
        for a in list(c.nodes):
            c.stop(a)


async def test_writes_replicate_and_survive_leader_kill(cluster: Cluster) -> None:
    await wait_for(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    for i in range(10):
        await cluster.stores[leader].update(lambda tx, i=i: tx.create(svc(f"s{i}")))
    await wait_for(lambda: all(len(s.view().services()) == 10 for s in cluster.stores.values()))

    cluster.stop(leader)
    cluster.stores.pop(leader)
    await wait_for(lambda: cluster.leader() is not None, timeout=10)
    new = cluster.leader()
    assert new is not None and new != leader
    await cluster.stores[new].update(lambda tx: tx.create(svc("after")))
    assert len(cluster.stores[new].view().services()) == 11


async def test_follower_refuses_writes(cluster: Cluster) -> None:
    await wait_for(lambda: cluster.leader() is not None)
    follower = next(a for a, n in cluster.nodes.items() if not n.is_leader())
    with pytest.raises(NotLeader):
        await cluster.stores[follower].update(lambda tx: tx.create(svc("x")))
    assert cluster.stores[follower].view().services() == []


async def test_full_restart_keeps_state(cluster: Cluster) -> None:
    await wait_for(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    await cluster.stores[leader].update(lambda tx: tx.create(svc("kept")))
    await wait_for(lambda: all(len(s.view().services()) == 1 for s in cluster.stores.values()))
    for a in list(cluster.nodes):
        cluster.stop(a)
    for a in cluster.addrs:
        cluster.start(a)
    await wait_for(lambda: cluster.leader() is not None)
    await wait_for(lambda: all(len(s.view().services()) == 1 for s in cluster.stores.values()))


async def test_membership_add_and_remove(cluster: Cluster) -> None:
    await wait_for(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None
    node = cluster.nodes[leader]
    new_addr = f"127.0.0.1:{free_port()}"
    await node.add_member(new_addr)
    cluster.start(new_addr, peers=cluster.addrs)
    await cluster.stores[leader].update(lambda tx: tx.create(svc("four")))
    await wait_for(lambda: len(cluster.stores[new_addr].view().services()) == 1)
    assert len(node.members()) == 4

    with pytest.raises(FailedPrecondition):
        await node.remove_member(leader)
    await node.remove_member(new_addr)
    cluster.stop(new_addr)
    assert len(node.members()) == 3
    await cluster.stores[leader].update(lambda tx: tx.create(svc("three")))
