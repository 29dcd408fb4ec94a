"""The replicated orchestrator: slots 1..replicas, each with exactly one task desired RUNNING.

Per slot it keeps the newest live task; a task on a DOWN or drained node is stopped and
replaced at once; an ended task is replaced when its restart policy allows, after its delay.
Slots above `replicas` are stopped (scale down)."""

from __future__ import annotations

import time
from collections import defaultdict

from manager.orchestrator.slot import live_tasks, needs_new_task
from manager.orchestrator.tasks import new_task, node_gone, stop_task
from manager.reconciler import Reconciler
from manager.store import Tx
from shoal.api import Node, Service, Task
from shoal.log import get_logger

log = get_logger("orchestrator.replicated")


class ReplicatedOrchestrator(Reconciler):
    tick = 0.5  # restart delays are honoured to within this

    def reconcile(self, tx: Tx) -> None:
        nodes = {n.id: n for n in tx.nodes()}
        by_service: dict[str, list[Task]] = defaultdict(list)
        for t in tx.scan(Task):
            by_service[t.service_id].append(t)
        for svc in tx.services():
            if svc.spec.WhichOneof("mode") == "global":
                continue
            reconcile_service(tx, svc, by_service.get(svc.id, []), nodes, time.time())


def reconcile_service(tx: Tx, svc: Service, tasks: list[Task], nodes: dict[str, Node], now: float) -> None:
    replicas = svc.spec.replicated.replicas
    slots: dict[int, list[Task]] = defaultdict(list)
    for t in tasks:
        slots[t.slot].append(t)
    created = 0

    def gone(t: Task) -> bool:
        return node_gone(nodes.get(t.node_id))

    for slot in range(1, max([replicas, *slots.keys()]) + 1):
        history = slots.get(slot, [])
        if slot > replicas:
            for t in live_tasks(history):
                stop_task(tx, t, why="service scaled down")
            continue
        if needs_new_task(tx, history, now, gone=gone):
            tx.create(new_task(svc, slot))
            created += 1
    if created:
        log.info("tasks_created", service=svc.spec.annotations.name, count=created)


__all__ = ["ReplicatedOrchestrator"]
