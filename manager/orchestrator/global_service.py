"""The global orchestrator: one task desired RUNNING on every node that is READY, not drained
and satisfies the service's constraints. A paused node keeps its task but gets no new one."""

from __future__ import annotations

import time
from collections import defaultdict

from manager import constraint
from manager.orchestrator.slot import live_tasks, needs_new_task
from manager.orchestrator.tasks import new_task, stop_task
from manager.reconciler import Reconciler
from manager.store import Tx
from shoal.api import Node, Service, Task
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus
from shoal.errors import InvalidSpec
from shoal.log import get_logger

log = get_logger("orchestrator.global")


class GlobalOrchestrator(Reconciler):
    tick = 0.5

    def reconcile(self, tx: Tx) -> None:
        if not any(s.spec.WhichOneof("mode") == "global" for s in tx.scan(Service)):
            return
        nodes = tx.nodes()
        by_service: dict[str, list[Task]] = defaultdict(list)
        for t in tx.scan(Task):
            by_service[t.service_id].append(t)
        for svc in tx.services():
            if svc.spec.WhichOneof("mode") == "global":
                reconcile_service(tx, svc, by_service.get(svc.id, []), nodes, time.time())


def _wanted(svc: Service, node: Node) -> tuple[bool, bool]:
    """(may keep a task there, may start a new one there)"""
    try:
        cons = constraint.parse_all(list(svc.spec.task.placement.constraints))
    except InvalidSpec:
        return False, False
    ok = node.status.state != NodeStatus.DOWN and constraint.match_all(cons, node)
    avail = node.spec.availability
    keep = ok and avail != NodeSpec.DRAIN
    start = keep and node.status.state == NodeStatus.READY and avail == NodeSpec.ACTIVE
    return keep, start


def reconcile_service(tx: Tx, svc: Service, tasks: list[Task], nodes: list[Node], now: float) -> None:
    per_node: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        per_node[t.node_id].append(t)
    known = {n.id for n in nodes}
    for node_id, history in per_node.items():
        if node_id not in known:
            for t in history:
                stop_task(tx, t, why="node removed")
    created = 0
    for node in nodes:
        history = per_node.get(node.id, [])
        keep, start = _wanted(svc, node)
        if not keep:
            for t in live_tasks(history):
                stop_task(tx, t, why="node is down, drained or no longer matches")
            continue
        if needs_new_task(tx, history, now) and start:
            tx.create(new_task(svc, 0, node_id=node.id))
            created += 1
    if created:
        log.info("tasks_created", service=svc.spec.annotations.name, count=created)
