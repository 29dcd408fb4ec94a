"""The scheduling loop: every pass places all PENDING tasks in one batch and one transaction."""

from __future__ import annotations

from manager.orchestrator.tasks import now
from manager.reconciler import Reconciler
from manager.scheduler.placement import NodeInfo, place
from manager.store import Tx, copy_of, is_terminal
from shoal.api import Task, TaskState
from shoal.log import get_logger

log = get_logger("scheduler")


class Scheduler(Reconciler):
    tick = 2.0  # a node becoming ready also arrives as a store event; this is a safety net

    def reconcile(self, tx: Tx) -> None:
        tasks = tx.scan(Task)
        pending = [
            copy_of(t)
            for t in tasks
            if t.status.state == TaskState.PENDING and t.desired_state <= TaskState.RUNNING
        ]
        if not pending:
            return  # the usual pass: nothing to place, so no need to know what nodes hold
        infos = {n.id: NodeInfo(n) for n in tx.nodes()}
        for t in tasks:
            if (
                t.node_id in infos
                and t.status.state >= TaskState.ASSIGNED
                and not is_terminal(t.status.state)
            ):
                infos[t.node_id].add(t)
        pending.sort(key=lambda t: (t.meta.created_at.ToNanoseconds(), t.slot))
        decision = place(infos.values(), pending)
        ts = now()
        for t in pending:
            node_id = decision.assigned.get(t.id)
            if node_id is not None:
                t.node_id = node_id
                t.status.state = TaskState.ASSIGNED
                t.status.message = "scheduler assigned task to node"
                t.status.err = ""
                t.status.timestamp.CopyFrom(ts)
                tx.update(t)
            elif t.status.err != decision.unschedulable[t.id]:
                t.status.err = decision.unschedulable[t.id]
                t.status.timestamp.CopyFrom(ts)
                tx.update(t)
        if decision.assigned:
            log.info(
                "tasks_assigned", count=len(decision.assigned), unschedulable=len(decision.unschedulable)
            )
