"""The shape every leader-only control loop shares: reconcile the whole store in one
transaction, then sleep until the store changes (or a tick passes, for time-based work).

Why whole-store passes instead of per-event handlers: a pass is idempotent, so a lost event,
a crash or a leader change can never leave work half done; at our scale (thousands of tasks)
a pass costs a few milliseconds. What keeps that cheap at 5,000 tasks: a batch of nothing but
tasks advancing on their way to RUNNING (ACCEPTED ... STARTING: four of every task's five status
commits) wakes no loop, since none of them decides anything on those states."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from manager.store import Event, MemoryStore, Tx
from shoal.api import Task, TaskState
from shoal.errors import VersionConflict
from shoal.log import get_logger

log = get_logger("reconciler")
# Bursts of commits (an agent reporting many tasks) are coalesced into one pass.
COALESCE = 0.02
# After a pass that took d seconds of CPU, the loop waits at least PACE * d before the next, so
# that under a storm of commits each loop holds the event loop at most 1/(1+PACE) of the time
# and heartbeats and API calls still get through (passes grow instead: they cost the same).
PACE = 4.0
_ON_THE_WAY = (TaskState.ACCEPTED, TaskState.PREPARING, TaskState.READY, TaskState.STARTING)


def is_progress(ev: Event) -> bool:
    """A task's agent reported it a step further towards RUNNING, and nothing else changed."""
    new, old = ev.obj, ev.old
    return (
        isinstance(new, Task)
        and isinstance(old, Task)
        and new.status.state in _ON_THE_WAY
        and new.desired_state == old.desired_state
        and new.node_id == old.node_id
        and new.spec_version == old.spec_version
    )


def worth_a_pass(events: Iterable[Event]) -> bool:
    return not all(is_progress(ev) for ev in events)


class Reconciler:
    """Subclasses implement `reconcile(tx)`; it reads through tx and writes through it."""

    tick: float = 1.0

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.last_cost = 0.0  # seconds the last reconcile() took

    def reconcile(self, tx: Tx) -> None:
        raise NotImplementedError

    async def pass_once(self) -> None:
        """One pass; a conflicting concurrent write means: re-read and go again."""
        for _ in range(20):
            try:
                await self.store.update(self._timed_reconcile)
                return
            except VersionConflict:
                await asyncio.sleep(0)
        log.warning("reconcile_gave_up", loop=type(self).__name__, reason="version conflicts")

    def _timed_reconcile(self, tx: Tx) -> None:
        start = time.perf_counter()
        try:
            self.reconcile(tx)
        finally:
            self.last_cost = time.perf_counter() - start

    async def run(self) -> None:
        watch = self.store.watch()
        with watch:
            while True:
                await self.pass_once()
                try:
                    async with asyncio.timeout(self.tick):
                        while not worth_a_pass(await watch.get()):
                            pass
                    await asyncio.sleep(max(COALESCE, PACE * self.last_cost))
                    watch.get_nowait_all()
                except TimeoutError:
                    pass
