"""The store: transactions, optimistic concurrency, name uniqueness, watch, snapshots."""

import asyncio

import pytest

from manager.store import Action, MemoryStore
from shoal.api import Service, Task
from shoal.errors import NameConflict, NotFound, VersionConflict


def svc(sid: str, name: str) -> Service:
    s = Service(id=sid)
    s.spec.annotations.name = name
    return s


async def test_transaction_is_atomic_and_published_once() -> None:
    store = MemoryStore()
    _, watch = store.view_and_watch()

    def create(tx):  # type: ignore[no-untyped-def]
        tx.create(svc("s1", "web"))
        for i in range(3):
            tx.create(Task(id=f"t{i}", service_id="s1", slot=i + 1))

    await store.update(create)
    events = await asyncio.wait_for(watch.get(), 1)
    assert [e.action for e in events] == [Action.CREATE] * 4
    assert all(e.obj.meta.version.index == 1 for e in events)
    assert len(store.view().tasks(service_id="s1")) == 3


async def test_stale_version_is_rejected_and_changes_nothing() -> None:
    store = MemoryStore()
    await store.update(lambda tx: tx.create(svc("s1", "web")))
    a, b = store.view().get_service("s1"), store.view().get_service("s1")
    assert a is not None and b is not None
    a.spec.annotations.labels["x"] = "1"
    await store.update(lambda tx: tx.update(a))
    b.spec.annotations.labels["x"] = "2"
    with pytest.raises(VersionConflict):
        await store.update(lambda tx: tx.update(b))
    after = store.view().get_service("s1")
    assert after is not None and after.spec.annotations.labels["x"] == "1"


async def test_names_are_unique_case_insensitively_and_failed_txn_applies_nothing() -> None:
    store = MemoryStore()
    await store.update(lambda tx: tx.create(svc("s1", "web")))

    def two(tx):  # type: ignore[no-untyped-def]
        tx.create(svc("s2", "api"))
        tx.create(svc("s3", "WEB"))

    with pytest.raises(NameConflict):
        await store.update(two)
    assert [s.id for s in store.view().services()] == ["s1"]


async def test_update_of_missing_object_is_not_found() -> None:
    store = MemoryStore()
    with pytest.raises(NotFound):
        await store.update(lambda tx: tx.update(svc("nope", "x")))


async def test_reads_are_copies() -> None:
    store = MemoryStore()
    await store.update(lambda tx: tx.create(svc("s1", "web")))
    got = store.view().get_service("s1")
    assert got is not None
    got.spec.annotations.name = "changed"
    again = store.view().get_service("s1")
    assert again is not None and again.spec.annotations.name == "web"


async def test_snapshot_roundtrip() -> None:
    store = MemoryStore()
    await store.update(lambda tx: tx.create(svc("s1", "web")))
    copy = MemoryStore()
    copy.restore(store.snapshot_bytes())
    assert copy.view().version == store.view().version
    restored = copy.view().get_service("s1")
    assert restored is not None and restored.spec.annotations.name == "web"
