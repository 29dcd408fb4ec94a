"""Tasks whose service is gone get desired REMOVE; the agent stops them and the reaper deletes
them."""

from __future__ import annotations

from manager.orchestrator.tasks import stop_task
from manager.reconciler import Reconciler
from manager.store import Tx
from shoal.api import Task, TaskState


class OrphanedTasks(Reconciler):
    def reconcile(self, tx: Tx) -> None:
        services = {s.id for s in tx.services()}
        for t in tx.find(Task, lambda t: t.service_id not in services and t.desired_state < TaskState.REMOVE):
            stop_task(tx, t, TaskState.REMOVE, why="service removed")
