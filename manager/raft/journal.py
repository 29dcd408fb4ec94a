"""A manager's Raft files are checked before pysyncobj opens them.

Why: pysyncobj trusts its journal. A journal cut short (a copy that stopped half way, a disk that
filled, a truncated file) makes it crash with a bare `struct.error`; garbage where entries should
be is worse — it is read as entries with made-up indexes and terms, and that manager then serves
(and may even lead with) a state no other replica has. So at startup we walk the journal's
structure and refuse to start with one clear message instead.

pysyncobj 0.3.17's journal (pysyncobj/journal.py, FileJournal) is an mmap'd file:

    name (24 bytes, b"PYSYNCOBJ" NUL-padded) · version (8) · format (u32 LE, 1) ·
    end offset (u32 LE: where the last entry ends) · entries from offset 40, each
    len (u32) · index (u64) · term (u64) · command (len - 16 bytes) · len (u32)

Bytes after the end offset are unused (the file grows by doubling and never shrinks). A command
is a type byte (0 regular, 1 no-op, 2 membership, 3 version) followed, except for a no-op, by a
pickle, whose opcodes we parse without running them. Next to the journal, `journal.meta` (a
pickled dict: current term, vote, commit index) and the snapshot (a gzip'd pickle, whose CRC we
check) must be readable too: pysyncobj silently ignores a meta file it cannot read, which would
forget this replica's vote.

Not detectable: a flipped byte inside a command's arguments that still parses (pysyncobj keeps no
checksums). Disk full: pysyncobj writes the journal through mmap, so a full disk kills swarmd
with SIGBUS on the write; the end offset is written after the entry, so what is left is
consistent and this check passes, while `journal.meta` is written to a temporary file first.
"""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import struct
import zlib
from pathlib import Path

from shoal.errors import FailedPrecondition

NAME = b"PYSYNCOBJ"
HEADER_SIZE = 40  # name 24 + version 8 + format 4 + end offset 4
_FORMAT = 1
_END_OFFSET_AT = 36
_ENTRY_FIXED = 16  # index u64 + term u64
_NO_OP, _MAX_COMMAND_TYPE = 1, 3


class CorruptJournal(FailedPrecondition):
    """A manager's Raft state cannot be trusted: it must not start on it."""

    def __init__(self, path: Path, reason: str, what: str = "raft journal") -> None:
        super().__init__(
            f"{what} {path} is corrupt ({reason}): refusing to start; restore it from a backup, "
            "or remove this manager's state dir and join the cluster again"
        )
        self.path = path
        self.reason = reason


def check_journal(path: Path) -> int:
    """Raise CorruptJournal unless `path` is a well-formed pysyncobj journal; return its number of
    entries. A missing file is fine (a new replica)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise CorruptJournal(path, f"unreadable: {e.strerror or e}") from None
    size = len(data)
    if size < HEADER_SIZE:
        raise CorruptJournal(path, f"truncated header: {size} bytes, need {HEADER_SIZE}")
    if data[:24].rstrip(b"\0") != NAME:
        raise CorruptJournal(path, "not a pysyncobj journal (bad header)")
    (fmt,) = struct.unpack_from("<I", data, 32)
    if fmt != _FORMAT:
        raise CorruptJournal(path, f"unknown journal format {fmt}")
    (end,) = struct.unpack_from("<I", data, _END_OFFSET_AT)
    if end < HEADER_SIZE:
        raise CorruptJournal(path, f"bad end offset {end}")
    # A file cut short is reported at the first entry it cuts (or after the last whole one).
    limit = min(end, size)
    cut = "" if end <= size else f"; entries end at offset {end}, the file has {size} bytes"
    offset, count, prev_index, prev_term = HEADER_SIZE, 0, -1, 0
    while offset < limit:
        if offset + 4 > limit:
            raise CorruptJournal(path, f"truncated entry at offset {offset}{cut}")
        (length,) = struct.unpack_from("<I", data, offset)
        if length <= _ENTRY_FIXED or offset + 8 + length > limit:
            if cut:
                raise CorruptJournal(path, f"truncated entry at offset {offset} of length {length}{cut}")
            raise CorruptJournal(path, f"damaged entry at offset {offset}: length {length} runs past the end")
        (trailer,) = struct.unpack_from("<I", data, offset + 4 + length)
        if trailer != length:
            raise CorruptJournal(
                path, f"damaged entry at offset {offset}: length {length}, trailer {trailer}"
            )
        index, term = struct.unpack_from("<QQ", data, offset + 4)
        if prev_index >= 0 and index != prev_index + 1:
            raise CorruptJournal(path, f"entry at offset {offset} has index {index} after {prev_index}")
        if term < prev_term:
            raise CorruptJournal(path, f"entry {index} at offset {offset} has term {term} after {prev_term}")
        _check_command(path, offset, data[offset + 4 + _ENTRY_FIXED : offset + 4 + length])
        offset += length + 8
        count += 1
        prev_index, prev_term = index, term
    if cut:
        raise CorruptJournal(path, f"truncated after entry {prev_index} at offset {offset}{cut}")
    return count


def _check_command(path: Path, offset: int, command: bytes) -> None:
    kind = command[0]
    if kind > _MAX_COMMAND_TYPE:
        raise CorruptJournal(path, f"entry at offset {offset} has unknown command type {kind}")
    if kind == _NO_OP:
        return
    if not _is_pickle(command[1:]):
        raise CorruptJournal(path, f"entry at offset {offset} holds a damaged command")


def _is_pickle(data: bytes) -> bool:
    """The opcodes parse and end in STOP exactly at the end (nothing is executed)."""
    try:
        ops = list(pickletools.genops(data))
    except Exception:  # genops raises ValueError and others on garbage
        return False
    if not ops or ops[-1][0].name != "STOP":
        return False
    return ops[-1][2] == len(data) - 1


class _PlainUnpickler(pickle.Unpickler):
    """journal.meta holds ints, strings and None: refuse anything that names a global."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")


def check_meta(path: Path) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as e:
        raise CorruptJournal(path, f"unreadable: {e.strerror or e}", "raft state") from None
    try:
        meta = _PlainUnpickler(io.BytesIO(data)).load()
    except Exception:
        raise CorruptJournal(path, "the term/vote file does not parse", "raft state") from None
    if not isinstance(meta, dict):
        raise CorruptJournal(path, "the term/vote file does not hold a dict", "raft state")


def check_snapshot(path: Path) -> None:
    """The snapshot is a gzip stream: reading it to the end checks its CRC and length."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except FileNotFoundError:
        return
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptJournal(path, f"does not decompress: {e}", "raft snapshot") from None


def check_raft_files(journal: Path, snapshot: Path) -> None:
    """Everything pysyncobj will load at startup; raises CorruptJournal."""
    check_journal(journal)
    check_meta(journal.with_name(journal.name + ".meta"))
    check_snapshot(snapshot)
