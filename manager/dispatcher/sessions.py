"""Session bookkeeping: one live session per node, and when each was last heard from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shoal import ids
from shoal.errors import NotFound


@dataclass
class Session:
    node_id: str
    session_id: str = field(default_factory=ids.new_id)
    last_seen: float = field(default_factory=time.monotonic)
    closed: bool = False


class Sessions:
    def __init__(self) -> None:
        self._by_node: dict[str, Session] = {}
        # Nodes known before this dispatcher started get a grace period from this moment.
        self.started = time.monotonic()

    def open(self, node_id: str) -> Session:
        old = self._by_node.get(node_id)
        if old is not None:
            old.closed = True
        s = Session(node_id)
        self._by_node[node_id] = s
        return s

    def check(self, node_id: str, session_id: str) -> Session:
        s = self._by_node.get(node_id)
        if s is None or s.closed or s.session_id != session_id:
            raise NotFound("session is not valid (a new session is needed)")
        return s

    def last_seen(self, node_id: str) -> float:
        s = self._by_node.get(node_id)
        return s.last_seen if s is not None else self.started

    def forgive(self, seconds: float) -> None:
        """This process was starved for `seconds`: heartbeats may sit unread in its queues, so
        nobody's silence during that time counts."""
        self.started += seconds
        for s in self._by_node.values():
            s.last_seen += seconds

    def expire(self, node_id: str) -> None:
        s = self._by_node.pop(node_id, None)
        if s is not None:
            s.closed = True
