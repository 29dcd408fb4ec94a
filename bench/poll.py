"""One polling helper and interval for every measurement, shoal's and the peer's alike."""

from __future__ import annotations

import time
from collections.abc import Callable

INTERVAL = 0.05


def poll(
    cond: Callable[[], object], timeout: float = 120, what: str = "condition", interval: float = INTERVAL
) -> float:
    """Call cond() every interval until truthy; return the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
