"""Orchestrators: turn services into tasks (replicated slots, one task per node for global),
restart tasks that end, replace tasks on DOWN or drained nodes."""

from manager.orchestrator.global_service import GlobalOrchestrator
from manager.orchestrator.orphans import OrphanedTasks
from manager.orchestrator.replicated import ReplicatedOrchestrator
from manager.orchestrator.updater import Updater

__all__ = ["GlobalOrchestrator", "OrphanedTasks", "ReplicatedOrchestrator", "Updater"]
