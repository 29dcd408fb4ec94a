"""Container logs on disk (agent.logformat), read back: the tail, then following."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from agent.logformat import LogEntry, decode, encode

POLL = 0.2


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
            entry = decode(line)
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
            entry = decode(partial)
            partial = ""
            if entry is not None:
                yield entry


__all__ = ["LogEntry", "encode", "read"]
