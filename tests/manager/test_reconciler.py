"""Which commits wake the control loops."""

from __future__ import annotations

from manager.reconciler import worth_a_pass
from manager.store import Action, Event
from shoal.api import Task, TaskState


def _step(old_state: int, new_state: int, **changed: object) -> Event:
    old = Task(id="t", node_id="n", desired_state=TaskState.RUNNING)
    old.status.state = old_state  # type: ignore[assignment]
    new = Task()
    new.CopyFrom(old)
    new.status.state = new_state  # type: ignore[assignment]
    for field, value in changed.items():
        setattr(new, field, value)
    return Event(Action.UPDATE, new, old)


def test_only_steps_towards_running_are_skipped() -> None:
    assert not worth_a_pass([_step(TaskState.ASSIGNED, TaskState.ACCEPTED)])
    assert not worth_a_pass([_step(TaskState.READY, TaskState.STARTING)] * 3)
    assert worth_a_pass([_step(TaskState.STARTING, TaskState.RUNNING)])  # the updater counts these
    assert worth_a_pass([_step(TaskState.RUNNING, TaskState.FAILED)])
    assert worth_a_pass([_step(TaskState.ASSIGNED, TaskState.ACCEPTED, desired_state=TaskState.SHUTDOWN)])
    assert worth_a_pass([_step(TaskState.READY, TaskState.STARTING), Event(Action.CREATE, Task(id="u"))])
