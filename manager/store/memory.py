"""The store: in-memory tables whose every mutation is a StoreTransaction (protobuf bytes).

Why this way: the same `apply(bytes)` runs on every manager, from the Raft log, so it must be
deterministic. Proposers (the Raft adapter, or `LocalProposer` in unit tests) carry the bytes;
the store never knows which one it has. Optimistic concurrency is checked at apply time, so a
stale write is rejected identically on every replica. Objects held in the tables are never
mutated in place: apply swaps in new messages, so a snapshot is a shallow copy of the dicts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from manager.store.events import Action, Event, Watch, WatchHub
from manager.store.tables import BY_NAME, KINDS, StoreObj, kind_of, obj_name, unwrap, wrap
from manager.store.view import ReadView
from shoal.api import raft_pb2
from shoal.errors import FailedPrecondition, NameConflict, NotFound, ShoalError, VersionConflict

R = TypeVar("R")

# apply() returns None on success, else (error kind, message); the kinds map to our error tree.
ApplyResult = tuple[str, str] | None
_ERRORS: dict[str, type[ShoalError]] = {
    "version": VersionConflict,
    "name": NameConflict,
    "exists": NameConflict,
    "notfound": NotFound,
    "invalid": FailedPrecondition,
}


class Proposer(Protocol):
    """Carries a serialized transaction to every replica's `MemoryStore.apply`."""

    async def propose(self, data: bytes) -> ApplyResult: ...


class LocalProposer:
    """Applies directly: a store without Raft, for unit tests of one loop."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def propose(self, data: bytes) -> ApplyResult:
        return self._store.apply(data)


class Tx(ReadView):
    """A write transaction: reads see the snapshot plus this transaction's own writes."""

    def __init__(self, base: ReadView, now: Timestamp) -> None:
        tables = {name: dict(t) for name, t in base._tables.items()}
        super().__init__(tables, base.version)
        self._now = now
        self.actions: list[raft_pb2.StoreAction] = []

    def _put(self, kind: int, obj: StoreObj) -> None:
        self.actions.append(raft_pb2.StoreAction(kind=kind, object=wrap(obj)))  # type: ignore[arg-type]
        k = kind_of(obj)
        table = self._tables[k.name]
        if kind == raft_pb2.StoreAction.DELETE:
            table.pop(obj.id, None)  # type: ignore[attr-defined]
        else:
            table[obj.id] = obj  # type: ignore[index]

    def create(self, obj: StoreObj) -> None:
        if not obj.id:
            raise ValueError("object has no id")
        obj.meta.created_at.CopyFrom(self._now)
        obj.meta.updated_at.CopyFrom(self._now)
        self._put(raft_pb2.StoreAction.CREATE, obj)

    def update(self, obj: StoreObj) -> None:
        """obj carries the version it was read at; a concurrent change makes the commit fail."""
        obj.meta.updated_at.CopyFrom(self._now)
        self._put(raft_pb2.StoreAction.UPDATE, obj)

    def delete(self, obj: StoreObj) -> None:
        self._put(raft_pb2.StoreAction.DELETE, obj)


class MemoryStore:
    def __init__(self, proposer: Proposer | None = None) -> None:
        self._lock = threading.RLock()
        self._tables: dict[str, dict[str, StoreObj]] = {k.name: {} for k in KINDS.values()}
        self._version = 0
        self._hub = WatchHub()
        self.proposer: Proposer = proposer or LocalProposer(self)

    # ---- reads -------------------------------------------------------------------------------
    def view(self) -> ReadView:
        with self._lock:
            return ReadView({n: dict(t) for n, t in self._tables.items()}, self._version)

    def watch(self) -> Watch:
        return self._hub.subscribe()

    def view_and_watch(self) -> tuple[ReadView, Watch]:
        """Subscribe and snapshot atomically: no event is missed between the two."""
        with self._lock:
            return self.view(), self.watch()

    # ---- writes ------------------------------------------------------------------------------
    async def update(self, fn: Callable[[Tx], R]) -> R:
        """Run fn against a fresh snapshot and commit what it wrote, as one transaction."""
        now = Timestamp()
        now.GetCurrentTime()
        tx = Tx(self.view(), now)
        result = fn(tx)
        if tx.actions:
            txn = raft_pb2.StoreTransaction(actions=tx.actions)
            err = await self.proposer.propose(txn.SerializeToString())
            if err is not None:
                raise _ERRORS.get(err[0], ShoalError)(err[1])
        return result

    def apply(self, data: bytes) -> ApplyResult:
        """Deterministic: validate the whole transaction, then apply it. Runs on every replica."""
        txn = raft_pb2.StoreTransaction.FromString(data)
        if not txn.actions:  # a barrier: nothing to apply
            return None
        with self._lock:
            err = self._check(txn)
            if err is not None:
                return err
            self._version += 1
            events: list[Event] = []
            for action in txn.actions:
                obj = unwrap(action.object)
                table = self._tables[kind_of(obj).name]
                old = table.get(obj.id)  # type: ignore[union-attr]
                if action.kind == raft_pb2.StoreAction.DELETE:
                    del table[obj.id]  # type: ignore[union-attr]
                    events.append(Event(Action.DELETE, old))  # type: ignore[arg-type]
                    continue
                new = type(obj)()
                new.CopyFrom(obj)  # type: ignore[arg-type]
                new.meta.version.index = self._version
                if old is not None and action.kind == raft_pb2.StoreAction.UPDATE:
                    new.meta.created_at.CopyFrom(old.meta.created_at)
                table[new.id] = new
                kind = Action.CREATE if action.kind == raft_pb2.StoreAction.CREATE else Action.UPDATE
                events.append(Event(kind, new, old))
            self._hub.publish(events)
        return None

    def _check(self, txn: raft_pb2.StoreTransaction) -> ApplyResult:
        # Simulate the transaction on overlays so that later actions see earlier ones.
        overlay: dict[str, dict[str, StoreObj | None]] = {}

        def current(kind: str, obj_id: str) -> StoreObj | None:
            if obj_id in overlay.get(kind, {}):
                return overlay[kind][obj_id]
            return self._tables[kind].get(obj_id)

        for action in txn.actions:
            obj = unwrap(action.object)
            k = kind_of(obj)
            oid: str = obj.id  # type: ignore[union-attr]
            existing = current(k.name, oid)
            if action.kind == raft_pb2.StoreAction.CREATE:
                if existing is not None:
                    return ("exists", f"{k.name} {oid} already exists")
            else:
                if existing is None:
                    return ("notfound", f"{k.name} {oid} not found")
                want = obj.meta.version.index
                if want and want != existing.meta.version.index:
                    return ("version", f"{k.name} {oid}: update out of sequence")
            if k.unique_names and action.kind != raft_pb2.StoreAction.DELETE:
                name = obj_name(obj).lower()
                for other_id, other in {**self._tables[k.name], **overlay.get(k.name, {})}.items():
                    if other is not None and other_id != oid and obj_name(other).lower() == name:
                        return ("name", f"{k.name} {obj_name(obj)!r} already exists (names are unique)")
            overlay.setdefault(k.name, {})[oid] = None if action.kind == raft_pb2.StoreAction.DELETE else obj
        return None

    # ---- snapshots ---------------------------------------------------------------------------
    def snapshot_bytes(self) -> bytes:
        with self._lock:
            snap = raft_pb2.StoreSnapshot(version=self._version)
            for kind in KINDS.values():
                getattr(snap, kind.name + "s").extend(self._tables[kind.name].values())
            return snap.SerializeToString()

    def restore(self, data: bytes) -> None:
        snap = raft_pb2.StoreSnapshot.FromString(data)
        with self._lock:
            self._version = snap.version
            for name in BY_NAME:
                self._tables[name] = {o.id: o for o in getattr(snap, name + "s")}
