"""Where tasks go: filters (node ready and active, resources, constraints, max replicas per
node, a preset node for global tasks), then spread: fewest tasks of the same service, then
fewest tasks overall. A pure function of its inputs, so it is tested without a store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from manager import constraint
from shoal.api import Node, Task
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus
from shoal.errors import InvalidSpec


@dataclass
class NodeInfo:
    """A node and what is already placed on it (tasks not yet ended)."""

    node: Node
    tasks: int = 0
    by_service: Counter[str] = field(default_factory=Counter)
    cpu: int = 0
    memory: int = 0
    ports: set[tuple[int, int]] = field(default_factory=set)  # (protocol, published port)

    def add(self, task: Task, ports: set[tuple[int, int]] | None = None) -> None:
        self.ports.update(host_ports(task) if ports is None else ports)
        self.tasks += 1
        self.by_service[task.service_id] += 1
        self.cpu += task.spec.resources.reservations.nano_cpus
        self.memory += task.spec.resources.reservations.memory_bytes


@dataclass
class Placement:
    assigned: dict[str, str] = field(default_factory=dict)  # task id -> node id
    unschedulable: dict[str, str] = field(default_factory=dict)  # task id -> reason


def host_ports(task: Task) -> set[tuple[int, int]]:
    ports = task.endpoint.spec.ports
    return {(p.protocol, p.published_port) for p in ports if p.published_port} if ports else set()


def _reason_text(failures: Counter[str]) -> str:
    parts = [f"{reason} on {n} node{'s' if n != 1 else ''}" for reason, n in sorted(failures.items())]
    return f"no suitable node ({'; '.join(parts) or 'no nodes'})"


def _rejects(
    info: NodeInfo, task: Task, cons: list[constraint.Constraint], ports: set[tuple[int, int]]
) -> str | None:
    """Why this node cannot take the task, or None if it can."""
    node = info.node
    if task.node_id and task.node_id != node.id:
        return "task is bound to another node"
    if node.status.state != NodeStatus.READY:
        return "node not ready"
    if node.spec.availability != NodeSpec.ACTIVE:
        return "node not available for new tasks"
    for c in cons:
        if not c.matches(node):
            return f"constraint {c} not satisfied"
    res = task.spec.resources.reservations
    have = node.description.resources
    if res.nano_cpus and info.cpu + res.nano_cpus > have.nano_cpus:
        return "insufficient resources (cpu)"
    if res.memory_bytes and info.memory + res.memory_bytes > have.memory_bytes:
        return "insufficient resources (memory)"
    # A published port binds the node's own address: two tasks can't share it on one node.
    taken = info.ports & ports if ports else None
    if taken:
        return f"host-mode port {sorted(taken)[0][1]} already in use"
    limit = task.spec.placement.max_replicas
    if limit and info.by_service[task.service_id] >= limit:
        return "max replicas per node limit reached"
    return None


def place(nodes: Iterable[NodeInfo], pending: Iterable[Task]) -> Placement:
    """Decide for a batch; each decision counts for the next, so a batch spreads evenly."""
    infos = list(nodes)
    out = Placement()
    for task in pending:
        try:
            cons = constraint.parse_all(list(task.spec.placement.constraints))
        except InvalidSpec as e:
            out.unschedulable[task.id] = e.message
            continue
        failures: Counter[str] = Counter()
        best: NodeInfo | None = None
        ports = host_ports(task)
        for info in infos:
            why = _rejects(info, task, cons, ports)
            if why is not None:
                failures[why] += 1
            elif best is None or (info.by_service[task.service_id], info.tasks, info.node.id) < (
                best.by_service[task.service_id],
                best.tasks,
                best.node.id,
            ):
                best = info
        if best is None:
            out.unschedulable[task.id] = _reason_text(failures)
            continue
        best.add(task, ports)
        out.assigned[task.id] = best.node.id
    return out
