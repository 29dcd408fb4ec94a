"""Orchestrators, allocator, scheduler and reaper on a store without Raft (LocalProposer)."""

from __future__ import annotations

from manager.loops import control_loops
from manager.store import MemoryStore, Tx
from shoal import ids
from shoal.api import Node, NodeRole, Service, ServiceSpec, Task, TaskState
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus


async def settle(store: MemoryStore, rounds: int = 6) -> None:
    for _ in range(rounds):
        for loop in control_loops(store):
            await loop.pass_once()


async def add_node(store: MemoryStore, name: str) -> str:
    n = Node(id=ids.new_id(), role=NodeRole.WORKER)
    n.description.hostname = name
    n.status.state = NodeStatus.READY
    await store.update(lambda tx: tx.create(n))
    return n.id


async def add_service(store: MemoryStore, name: str, replicas: int | None) -> Service:
    spec = ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox"
    if replicas is None:
        spec.__getattribute__("global").SetInParent()
    else:
        spec.replicated.replicas = replicas
    svc = Service(id=ids.new_id(), spec=spec)
    await store.update(lambda tx: tx.create(svc))
    return svc


async def run_all(store: MemoryStore) -> None:
    """What agents would do: every assigned task that should run is RUNNING; stopped ones SHUTDOWN."""

    def write(tx: Tx) -> None:
        for t in tx.find(Task):
            if t.status.state >= TaskState.ASSIGNED and t.status.state < TaskState.RUNNING:
                if t.desired_state == TaskState.RUNNING:
                    t.status.state = TaskState.RUNNING
                    tx.update(t)
            if t.status.state == TaskState.RUNNING and t.desired_state > TaskState.RUNNING:
                t.status.state = TaskState.SHUTDOWN
                tx.update(t)

    await store.update(write)


def live(store: MemoryStore, svc: Service) -> list[Task]:
    return [t for t in store.view().tasks(service_id=svc.id) if t.desired_state == TaskState.RUNNING]


async def set_node(
    store: MemoryStore, node_id: str, *, down: bool = False, avail: int = NodeSpec.ACTIVE
) -> None:
    def write(tx: Tx) -> None:
        n = tx.get_node(node_id)
        assert n is not None
        n.status.state = NodeStatus.DOWN if down else NodeStatus.READY
        n.spec.availability = avail  # type: ignore[assignment]
        tx.update(n)

    await store.update(write)


async def test_replicated_scale_and_node_failure() -> None:
    store = MemoryStore()
    a, b, c = [await add_node(store, h) for h in ("a", "b", "c")]
    svc = await add_service(store, "web", 6)
    await settle(store)
    await run_all(store)
    tasks = live(store, svc)
    assert sorted(t.slot for t in tasks) == [1, 2, 3, 4, 5, 6]
    assert {t.node_id for t in tasks} == {a, b, c}
    assert all(t.annotations.name == f"web.{t.slot}" for t in tasks)

    await set_node(store, a, down=True)
    await settle(store)
    await run_all(store)
    tasks = live(store, svc)
    assert len(tasks) == 6 and a not in {t.node_id for t in tasks}
    assert len({t.slot for t in tasks}) == 6, "one live task per slot, never duplicates"

    def scale(tx: Tx) -> None:
        s = tx.get_service(svc.id)
        assert s is not None
        s.spec.replicated.replicas = 2
        tx.update(s)

    await store.update(scale)
    await settle(store)
    await run_all(store)
    assert sorted(t.slot for t in live(store, svc)) == [1, 2]


async def test_global_follows_nodes_and_drain() -> None:
    store = MemoryStore()
    a, b = [await add_node(store, h) for h in ("a", "b")]
    svc = await add_service(store, "agent", None)
    await settle(store)
    assert sorted(t.node_id for t in live(store, svc)) == sorted([a, b])
    c = await add_node(store, "c")
    await settle(store)
    assert {t.node_id for t in live(store, svc)} == {a, b, c}
    await set_node(store, b, avail=NodeSpec.DRAIN)
    await settle(store)
    assert {t.node_id for t in live(store, svc)} == {a, c}
    await set_node(store, b, avail=NodeSpec.PAUSE)
    await settle(store)
    assert {t.node_id for t in live(store, svc)} == {a, c}, "a paused node gets no new task"
    await set_node(store, b)
    await settle(store)
    assert {t.node_id for t in live(store, svc)} == {a, b, c}


async def test_unschedulable_stays_pending_with_reason() -> None:
    store = MemoryStore()
    await add_node(store, "a")
    svc = await add_service(store, "picky", 2)

    def constrain(tx: Tx) -> None:
        s = tx.get_service(svc.id)
        assert s is not None
        s.spec.task.placement.constraints.append("node.hostname==nowhere")
        tx.update(s)

    await store.update(constrain)
    await settle(store)
    tasks = live(store, svc)
    assert len(tasks) == 2
    assert all(t.status.state == TaskState.PENDING for t in tasks)
    assert all("node.hostname==nowhere not satisfied" in t.status.err for t in tasks)


async def test_removed_service_tasks_are_reaped() -> None:
    store = MemoryStore()
    await add_node(store, "a")
    svc = await add_service(store, "gone", 3)
    await settle(store)
    await run_all(store)
    await store.update(lambda tx: tx.delete(tx.get_service(svc.id)))  # type: ignore[arg-type]
    await settle(store)
    await run_all(store)
    await settle(store)
    assert store.view().tasks(service_id=svc.id) == []
