"""The restart policy: when a task that should be running has ended, may it be replaced, and
from when on? (SwarmKit: orchestrator/restart.)"""

from __future__ import annotations

from collections.abc import Sequence

from manager.orchestrator.tasks import epoch
from shoal.api import Task, TaskState
from shoal.api.types_pb2 import RestartPolicy

DEFAULT_DELAY = 5.0


def restart_delay(task: Task) -> float:
    policy = task.spec.restart
    if policy.HasField("delay"):
        return policy.delay.ToTimedelta().total_seconds()
    return DEFAULT_DELAY


def should_restart(task: Task, history: Sequence[Task]) -> bool:
    """task has ended; history is every task of the same slot (including task)."""
    policy = task.spec.restart
    cond = policy.condition if task.spec.HasField("restart") else RestartPolicy.ANY
    if cond == RestartPolicy.NONE:
        return False
    if cond == RestartPolicy.ON_FAILURE and task.status.state == TaskState.COMPLETE:
        return False
    if policy.max_attempts:
        window = policy.window.ToTimedelta().total_seconds() if policy.HasField("window") else 0.0
        end = epoch(task.status.timestamp)
        failures = [
            t
            for t in history
            if t.status.state > TaskState.RUNNING
            and (not window or end - epoch(t.status.timestamp) <= window)
        ]
        if len(failures) > policy.max_attempts:
            return False
    return True


def restart_due_at(task: Task) -> float:
    """Epoch seconds at which the replacement of an ended task may start."""
    return epoch(task.status.timestamp) + restart_delay(task)
