"""One slot's tasks (one node's, for a global service), as both orchestrators settle them:
duplicates from a start-first update, a node gone, the restart policy."""

from __future__ import annotations

from collections.abc import Callable

from manager.orchestrator.restart import restart_due_at, should_restart
from manager.orchestrator.tasks import settle_duplicates, stop_task, task_is_live
from manager.store import Tx, is_terminal
from shoal.api import Task


def live_tasks(history: list[Task]) -> list[Task]:
    """The slot's tasks desired to run, oldest first."""
    live = [t for t in history if task_is_live(t)]
    if len(live) > 1:  # the usual slot has one: no need to read timestamps
        live.sort(key=lambda t: t.meta.created_at.ToNanoseconds())
    return live


def needs_new_task(
    tx: Tx, history: list[Task], now: float, gone: Callable[[Task], bool] | None = None
) -> bool:
    """Settle the slot; True when it needs a new task (its live one, if any, has been stopped)."""
    settled = settle_duplicates(tx, live_tasks(history))
    if settled is None:
        return False  # a start-first replacement is on its way
    if not settled:
        return True
    current = settled[-1]
    if gone is not None and current.node_id and gone(current):
        stop_task(tx, current, why="node is down or drained")
        return True
    if is_terminal(current.status.state):
        if not should_restart(current, history) or now < restart_due_at(current):
            return False  # the policy keeps the ended task, or its delay has not passed yet
        stop_task(tx, current, why="restarting")
        return True
    return False
