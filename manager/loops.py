"""The leader-only control loops, started by the Manager while it leads."""

from __future__ import annotations

from manager.allocator import Allocator
from manager.orchestrator import GlobalOrchestrator, OrphanedTasks, ReplicatedOrchestrator, Updater
from manager.reaper import TaskReaper
from manager.reconciler import Reconciler
from manager.scheduler import Scheduler
from manager.store import MemoryStore


def control_loops(store: MemoryStore) -> list[Reconciler]:
    return [
        ReplicatedOrchestrator(store),
        GlobalOrchestrator(store),
        OrphanedTasks(store),
        Updater(store),
        Allocator(store),
        Scheduler(store),
        TaskReaper(store),
    ]
