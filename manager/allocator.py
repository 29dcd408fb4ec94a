"""The allocator: NEW → PENDING. Network attachments (overlay IPs) are allocated here once
overlay networks land; for now it is the gate every new task passes."""

from __future__ import annotations

from manager.orchestrator.tasks import now
from manager.reconciler import Reconciler
from manager.store import Tx
from shoal.api import Task, TaskState


class Allocator(Reconciler):
    def reconcile(self, tx: Tx) -> None:
        for t in tx.find(
            Task, lambda t: t.status.state == TaskState.NEW and t.desired_state <= TaskState.RUNNING
        ):
            t.status.state = TaskState.PENDING
            t.status.message = "pending task scheduling"
            t.status.timestamp.CopyFrom(now())
            tx.update(t)
