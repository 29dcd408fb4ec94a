"""Container logs on disk: JSON lines `{"time": RFC3339, "stream": "stdout"|"stderr", "log": "..."}`
(Docker's json-file format), written by whoever runs the container and read back here."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

POLL = 0.2


@dataclass(frozen=True)
class LogEntry:
    time: datetime
    stream: str  # "stdout" or "stderr"
    data: str


def encode(stream: str, data: str, when: datetime | None = None) -> str:
    ts = (when or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return json.dumps({"time": ts, "stream": stream, "log": data}) + "\n"


def _decode(line: str) -> LogEntry | None:
    try:
        rec = json.loads(line)
        when = datetime.fromisoformat(str(rec["time"]).replace("Z", "+00:00"))
        return LogEntry(when, str(rec.get("stream", "stdout")), str(rec.get("log", "")))
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line while the writer is mid-write


async def read(
    path: Path, *, follow: bool, tail: int, alive: Callable[[], bool] | None = None
) -> AsyncIterator[LogEntry]:
    """The last `tail` entries (all if negative), then new ones while following. Following ends
    when `alive()` says the writer is gone and nothing more is written."""
    while not path.exists():  # noqa: ASYNC240 - a local stat, as cheap as the sleep around it
        if not follow:
            return
        await asyncio.sleep(POLL)
    with path.open() as f:
        lines = f.readlines()
        partial = ""
        if lines and not lines[-1].endswith("\n"):
            partial = lines.pop()
        kept = lines if tail < 0 else deque(lines, maxlen=tail) if tail else []
        for line in kept:
            entry = _decode(line)
            if entry is not None:
                yield entry
        if not follow:
            return
        while True:
            chunk = f.readline()
            if not chunk:
                if alive is not None and not alive():
                    return
                await asyncio.sleep(POLL)
                continue
            partial += chunk
            if not partial.endswith("\n"):
                continue
            entry = _decode(partial)
            partial = ""
            if entry is not None:
                yield entry
