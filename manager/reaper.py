"""The task reaper: keeps `task_history_retention_limit` ended tasks per slot (per node for
global services) and deletes tasks marked REMOVE once nothing runs them."""

from __future__ import annotations

from collections import defaultdict

from manager.membership.bootstrap import DEFAULT_HISTORY
from manager.reconciler import Reconciler
from manager.store import Tx, is_terminal
from shoal.api import Task, TaskState
from shoal.api.types_pb2 import NodeStatus


class TaskReaper(Reconciler):
    tick = 2.0

    def reconcile(self, tx: Tx) -> None:
        cluster = tx.cluster()
        limit = cluster.spec.orchestration.task_history_retention_limit if cluster else DEFAULT_HISTORY
        nodes = {n.id: n for n in tx.nodes()}
        history: dict[tuple[str, object], list[Task]] = defaultdict(list)
        for t in tx.scan(Task):
            if t.desired_state == TaskState.REMOVE:
                node = nodes.get(t.node_id)
                unattended = node is None or node.status.state == NodeStatus.DOWN
                if is_terminal(t.status.state) or t.status.state < TaskState.ASSIGNED or unattended:
                    tx.delete(t)
                continue
            if t.desired_state > TaskState.RUNNING and is_terminal(t.status.state):
                history[(t.service_id, t.slot or t.node_id)].append(t)
        for old in history.values():
            if len(old) <= max(limit, 0):
                continue
            old.sort(key=lambda t: t.status.timestamp.ToNanoseconds())
            for t in old[: len(old) - max(limit, 0)]:
                tx.delete(t)
