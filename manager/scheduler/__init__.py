"""The scheduler: PENDING tasks onto nodes. `placement` is the pure decision; `Scheduler` the
leader-only loop that applies it."""

from manager.scheduler.loop import Scheduler
from manager.scheduler.placement import NodeInfo, Placement, place

__all__ = ["NodeInfo", "Placement", "Scheduler", "place"]
