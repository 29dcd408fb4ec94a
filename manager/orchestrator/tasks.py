"""Creating and stopping tasks: the writes every orchestrator makes, in one place."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from manager.store import Tx, copy_of
from shoal import ids
from shoal.api import Node, Service, Task, TaskState
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus


def now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def epoch(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def new_task(service: Service, slot: int, node_id: str = "") -> Task:
    t = Task(id=ids.new_id(), service_id=service.id, slot=slot, node_id=node_id)
    t.spec.CopyFrom(service.spec.task)
    t.spec_version.CopyFrom(service.spec_version)
    t.service_annotations.CopyFrom(service.spec.annotations)
    suffix = node_id if node_id else str(slot)
    t.annotations.name = f"{service.spec.annotations.name}.{suffix}"
    t.desired_state = TaskState.RUNNING
    t.status.state = TaskState.NEW
    t.status.message = "created"
    t.status.timestamp.CopyFrom(now())
    return t


def stop_task(tx: Tx, task: Task, desired: int = TaskState.SHUTDOWN, why: str = "") -> None:
    """Ask for a task to stop. A task no agent ever received ends here and now. `task` may be
    the store's own object (from a scan): it is copied before it is changed."""
    if task.desired_state >= desired:
        return
    task = copy_of(task)
    task.desired_state = desired  # type: ignore[assignment]
    if task.status.state < TaskState.ASSIGNED:
        task.status.state = TaskState.SHUTDOWN
        task.status.message = why or "shut down before it was assigned"
        task.status.timestamp.CopyFrom(now())
    tx.update(task)


def node_gone(node: Node | None) -> bool:
    """Tasks on this node must be replaced: the node is missing, DOWN, or drained."""
    return node is None or node.status.state == NodeStatus.DOWN or node.spec.availability == NodeSpec.DRAIN


def task_is_live(task: Task) -> bool:
    """Desired to run (it may have ended: the restart policy decides what comes next)."""
    return task.desired_state <= TaskState.RUNNING


def settle_duplicates(tx: Tx, live: list[Task]) -> list[Task] | None:
    """A slot (or a global service's node) with several live tasks, oldest first: a start-first
    update put a replacement next to the old task. Once the newest runs, the older ones stop; if
    the newest ended, it is the one stopped. Returns the live tasks left, or None while the
    replacement is still starting (the slot is then left alone)."""
    if len(live) <= 1:
        return live
    newest = live[-1]
    if newest.status.state == TaskState.RUNNING:
        for t in live[:-1]:
            stop_task(tx, t, why="replaced by a newer task")
        return [newest]
    if newest.status.state > TaskState.RUNNING:
        stop_task(tx, newest, why="replacement task ended")
        return settle_duplicates(tx, live[:-1])
    return None
