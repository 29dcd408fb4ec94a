"""The dispatcher: the leader's side of agent sessions (heartbeats, assignments, task status)."""

from manager.dispatcher.assignments import assignment_set, in_assignment_set
from manager.dispatcher.dispatcher import Dispatcher

__all__ = ["Dispatcher", "assignment_set", "in_assignment_set"]
