"""The startup check of a manager's Raft files (manager/raft/journal.py): a real journal written
by a one-node RaftNode passes; every way of cutting it short, and garbage where entries are,
is refused with a message naming the file; RaftNode refuses to start on such a journal."""

from __future__ import annotations

import asyncio
import gzip
import random
import shutil
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from manager.raft import RaftNode
from manager.raft.journal import HEADER_SIZE, CorruptJournal, check_journal, check_meta, check_snapshot
from manager.store import MemoryStore
from shoal.api import Service


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _write_some(node: RaftNode, store: MemoryStore, n: int) -> None:
    deadline = time.monotonic() + 10
    while not node.is_leader():
        assert time.monotonic() < deadline, "a one-node raft never led"
        await asyncio.sleep(0.02)
    for i in range(n):
        svc = Service(id=f"s{i}")
        svc.spec.annotations.name = f"svc-{i}"
        await store.update(lambda tx, svc=svc: tx.create(svc))


@pytest.fixture(scope="module")
def real_raft_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Raft dir of a one-node replica that committed a few transactions, then stopped."""
    base = tmp_path_factory.mktemp("raft")
    store = MemoryStore()
    node = RaftNode(store, self_addr=f"127.0.0.1:{_free_port()}", peers=[], state_dir=base, password="pw")
    try:
        asyncio.run(_write_some(node, store, 8))
    finally:
        node.destroy()
    yield base


@pytest.fixture
def raft_dir(real_raft_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "raft"
    shutil.copytree(real_raft_dir, copy)
    return copy


def _end(journal: Path) -> int:
    return int(struct.unpack_from("<I", journal.read_bytes(), 36)[0])


def test_a_real_journal_passes(raft_dir: Path) -> None:
    journal = raft_dir / "journal"
    assert check_journal(journal) >= 9  # the no-op, the barrier-free creates
    check_meta(raft_dir / "journal.meta")
    assert (raft_dir / "journal.meta").exists()


def test_missing_files_are_a_new_replica(tmp_path: Path) -> None:
    assert check_journal(tmp_path / "journal") == 0
    check_meta(tmp_path / "journal.meta")
    check_snapshot(tmp_path / "snapshot")


def test_every_cut_inside_the_entries_is_refused(raft_dir: Path) -> None:
    journal = raft_dir / "journal"
    data = journal.read_bytes()
    end = _end(journal)
    cuts = [*range(0, end, 3), end - 1]
    for cut in cuts:
        journal.write_bytes(data[:cut])
        with pytest.raises(CorruptJournal) as err:
            check_journal(journal)
        assert str(journal) in err.value.message
        assert "truncated" in err.value.message, err.value.message
        assert "refusing to start" in err.value.message


def test_space_after_the_last_entry_is_unused(raft_dir: Path) -> None:
    journal = raft_dir / "journal"
    data = journal.read_bytes()
    end = _end(journal)
    journal.write_bytes(data[:end])
    check_journal(journal)
    journal.write_bytes(data[:end] + bytes(random.Random(1).randbytes(5000)))
    check_journal(journal)


@pytest.mark.parametrize("fill", [b"\xee", b"\x00", b"\xff"])
def test_garbage_in_the_entries_is_refused(raft_dir: Path, fill: bytes) -> None:
    journal = raft_dir / "journal"
    data = journal.read_bytes()
    end = _end(journal)
    for start in range(HEADER_SIZE, end, 11):
        if data[start:end] == fill * (end - start):
            continue  # e.g. zeros over a trailer's high bytes, which are zeros already
        journal.write_bytes(data[:start] + fill * (end - start) + data[end:])
        with pytest.raises(CorruptJournal):
            check_journal(journal)


def test_random_garbage_tails_are_refused(raft_dir: Path) -> None:
    journal = raft_dir / "journal"
    data = journal.read_bytes()
    end = _end(journal)
    rnd = random.Random(7)
    for _ in range(200):
        start = rnd.randrange(HEADER_SIZE, end - 4)
        journal.write_bytes(data[:start] + rnd.randbytes(end - start) + data[end:])
        with pytest.raises(CorruptJournal):
            check_journal(journal)


def test_a_damaged_header_is_refused(raft_dir: Path) -> None:
    journal = raft_dir / "journal"
    data = bytearray(journal.read_bytes())
    journal.write_bytes(b"NOTAJOURNAL" + bytes(data[11:]))
    with pytest.raises(CorruptJournal, match="bad header"):
        check_journal(journal)
    data[36:40] = struct.pack("<I", 7)
    journal.write_bytes(bytes(data))
    with pytest.raises(CorruptJournal, match="bad end offset"):
        check_journal(journal)


def test_a_damaged_meta_file_is_refused(raft_dir: Path) -> None:
    meta = raft_dir / "journal.meta"
    meta.write_bytes(meta.read_bytes()[:-3])
    with pytest.raises(CorruptJournal, match="term/vote"):
        check_meta(meta)
    meta.write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # a pickle naming a global is never loaded
    with pytest.raises(CorruptJournal, match="term/vote"):
        check_meta(meta)


def test_a_truncated_snapshot_is_refused(tmp_path: Path) -> None:
    snap = tmp_path / "snapshot"
    snap.write_bytes(gzip.compress(random.Random(3).randbytes(20000)))
    check_snapshot(snap)
    snap.write_bytes(snap.read_bytes()[:-100])
    with pytest.raises(CorruptJournal, match="raft snapshot"):
        check_snapshot(snap)


def test_raft_node_refuses_to_start_on_a_truncated_journal(raft_dir: Path) -> None:
    journal = raft_dir / "journal"
    journal.write_bytes(journal.read_bytes()[: _end(journal) - 10])
    with pytest.raises(CorruptJournal, match="truncated entry at offset"):
        RaftNode(
            MemoryStore(), self_addr=f"127.0.0.1:{_free_port()}", peers=[], state_dir=raft_dir, password="pw"
        )
