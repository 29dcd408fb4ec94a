"""The container log line format (Docker's json-file): one JSON object per line,
`{"time": RFC3339, "stream": "stdout"|"stderr", "log": "..."}`. Kept apart from the readers so
the container supervisor can write it without importing asyncio."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class LogEntry:
    time: datetime
    stream: str  # "stdout" or "stderr"
    data: str


def encode(stream: str, data: str, when: datetime | None = None) -> str:
    ts = (when or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return json.dumps({"time": ts, "stream": stream, "log": data}) + "\n"


def decode(line: str) -> LogEntry | None:
    try:
        rec = json.loads(line)
        when = datetime.fromisoformat(str(rec["time"]).replace("Z", "+00:00"))
        return LogEntry(when, str(rec.get("stream", "stdout")), str(rec.get("log", "")))
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line while the writer is mid-write
