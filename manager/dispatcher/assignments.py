"""Which tasks a node's agent must know about (docs/dev/contracts.md, "assignment set")."""

from __future__ import annotations

from manager.store import ReadView, is_terminal
from shoal.api import Task, TaskState


def in_assignment_set(task: Task | None, node_id: str) -> bool:
    return (
        task is not None
        and task.node_id == node_id
        and task.status.state >= TaskState.ASSIGNED
        and not (is_terminal(task.status.state) and task.desired_state > TaskState.RUNNING)
    )


def assignment_set(view: ReadView, node_id: str) -> list[Task]:
    return [t for t in view.tasks(node_id=node_id) if in_assignment_set(t, node_id)]


def changed_for_agent(old: Task, new: Task) -> bool:
    """Status changes come from the agent itself; it only needs to hear about the rest."""
    return (
        old.desired_state != new.desired_state or old.spec_version != new.spec_version or old.spec != new.spec
    )
