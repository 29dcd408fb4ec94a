"""Watch events: one list of Events per committed transaction, delivered to asyncio queues."""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from manager.store.tables import StoreObj


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    action: Action
    obj: StoreObj  # the object after the change (for DELETE: as it was)
    old: StoreObj | None = None  # the object before an UPDATE

    @property
    def kind(self) -> type:
        return type(self.obj)


class Watch:
    """An asyncio-side subscription. Iterate it to get one list[Event] per committed batch.

    Objects in events are the store's own (shared) messages: treat them as read-only."""

    def __init__(self, hub: WatchHub, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self._loop = loop
        self.queue: asyncio.Queue[list[Event]] = asyncio.Queue()

    def _deliver(self, events: list[Event]) -> None:
        if threading.get_ident() == self._hub.loop_thread.get(self._loop):
            self.queue.put_nowait(events)
        else:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, events)

    async def get(self) -> list[Event]:
        return await self.queue.get()

    def get_nowait_all(self) -> list[Event]:
        """Drain whatever is queued now (coalesce bursts of batches into one reaction)."""
        out: list[Event] = []
        while True:
            try:
                out.extend(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                return out

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[list[Event]]:
        while True:
            yield await self.queue.get()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WatchHub:
    def __init__(self) -> None:
        self._watches: list[Watch] = []
        self._lock = threading.Lock()
        self.loop_thread: dict[asyncio.AbstractEventLoop, int] = {}

    def subscribe(self) -> Watch:
        loop = asyncio.get_running_loop()
        self.loop_thread[loop] = threading.get_ident()
        w = Watch(self, loop)
        with self._lock:
            self._watches.append(w)
        return w

    def unsubscribe(self, w: Watch) -> None:
        with self._lock:
            if w in self._watches:
                self._watches.remove(w)

    def publish(self, events: list[Event]) -> None:
        if not events:
            return
        with self._lock:
            watches = list(self._watches)
        for w in watches:
            try:
                w._deliver(events)
            except RuntimeError:  # its loop is closed
                self.unsubscribe(w)
