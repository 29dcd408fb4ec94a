"""The shape every leader-only control loop shares: reconcile the whole store in one
transaction, then sleep until the store changes (or a tick passes, for time-based work).

Why whole-store passes instead of per-event handlers: a pass is idempotent, so a lost event,
a crash or a leader change can never leave work half done; at our scale (thousands of tasks)
a pass costs a few milliseconds."""

from __future__ import annotations

import asyncio

from manager.store import MemoryStore, Tx
from shoal.errors import VersionConflict
from shoal.log import get_logger

log = get_logger("reconciler")
# Bursts of commits (an agent reporting many tasks) are coalesced into one pass.
COALESCE = 0.02


class Reconciler:
    """Subclasses implement `reconcile(tx)`; it reads through tx and writes through it."""

    tick: float = 1.0

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def reconcile(self, tx: Tx) -> None:
        raise NotImplementedError

    async def pass_once(self) -> None:
        """One pass; a conflicting concurrent write means: re-read and go again."""
        for _ in range(20):
            try:
                await self.store.update(self.reconcile)
                return
            except VersionConflict:
                await asyncio.sleep(0)
        log.warning("reconcile_gave_up", loop=type(self).__name__, reason="version conflicts")

    async def run(self) -> None:
        watch = self.store.watch()
        with watch:
            while True:
                await self.pass_once()
                try:
                    async with asyncio.timeout(self.tick):
                        await watch.get()
                    await asyncio.sleep(COALESCE)
                    watch.get_nowait_all()
                except TimeoutError:
                    pass
