"""The placement decision: filters, spread, and the reasons a task stays PENDING."""

from __future__ import annotations

from manager.scheduler import NodeInfo, place
from shoal.api import Node, NodeRole, Task
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus


def node(
    node_id: str, *, ready: bool = True, avail: int = NodeSpec.ACTIVE, labels: dict[str, str] | None = None
) -> Node:
    n = Node(id=node_id, role=NodeRole.WORKER)
    n.description.hostname = node_id
    n.status.state = NodeStatus.READY if ready else NodeStatus.DOWN
    n.spec.availability = avail  # type: ignore[assignment]
    n.spec.annotations.labels.update(labels or {})
    n.description.resources.nano_cpus = 2_000_000_000
    n.description.resources.memory_bytes = 1 << 30
    return n


def task(task_id: str, service: str = "s", *, constraints: tuple[str, ...] = (), cpu: int = 0) -> Task:
    t = Task(id=task_id, service_id=service)
    t.spec.placement.constraints.extend(constraints)
    t.spec.resources.reservations.nano_cpus = cpu
    return t


def test_spreads_by_service_then_total() -> None:
    infos = [NodeInfo(node("a")), NodeInfo(node("b")), NodeInfo(node("c"))]
    infos[0].add(task("x", "other"))
    out = place(infos, [task(f"t{i}") for i in range(6)])
    per_node = sorted(list(out.assigned.values()).count(n) for n in "abc")
    assert per_node == [2, 2, 2]
    assert out.assigned["t0"] != "a"  # a already runs another service's task


def test_only_ready_active_nodes() -> None:
    infos = [
        NodeInfo(node("down", ready=False)),
        NodeInfo(node("paused", avail=NodeSpec.PAUSE)),
        NodeInfo(node("drained", avail=NodeSpec.DRAIN)),
        NodeInfo(node("ok")),
    ]
    out = place(infos, [task("t1"), task("t2")])
    assert set(out.assigned.values()) == {"ok"}


def test_constraints_and_reason() -> None:
    infos = [NodeInfo(node("a", labels={"zone": "x"})), NodeInfo(node("b"))]
    out = place(infos, [task("t1", constraints=("node.labels.zone==x",))])
    assert out.assigned == {"t1": "a"}
    out = place(infos, [task("t2", constraints=("node.labels.zone==nowhere",))])
    assert out.assigned == {}
    assert (
        out.unschedulable["t2"]
        == "no suitable node (constraint node.labels.zone==nowhere not satisfied on 2 nodes)"
    )


def test_resources_and_max_replicas() -> None:
    infos = [NodeInfo(node("a"))]
    out = place(infos, [task(f"t{i}", cpu=1_000_000_000) for i in range(3)])
    assert len(out.assigned) == 2
    assert "insufficient resources (cpu) on 1 node" in out.unschedulable["t2"]
    limited = [task(f"m{i}") for i in range(3)]
    for t in limited:
        t.spec.placement.max_replicas = 1
    out = place([NodeInfo(node("a")), NodeInfo(node("b"))], limited)
    assert len(out.assigned) == 2 and "max replicas per node" in out.unschedulable["m2"]


def test_preset_node_for_global_tasks() -> None:
    t = task("g")
    t.node_id = "b"
    out = place([NodeInfo(node("a")), NodeInfo(node("b"))], [t])
    assert out.assigned == {"g": "b"}
