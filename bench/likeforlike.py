"""Workloads 1-3, written once for both sides: converge, rolling update, single task.

Each call measures one run on one side and cleans up after itself, so runs of shoal and of the
peer can be interleaved (they then share the machine's noise)."""

from __future__ import annotations

import secrets
import time
from typing import Protocol

from bench.poll import poll

SLEEP = ["sleep", "100000"]


class Side(Protocol):
    image: str  # repository; tags "latest" and "2" exist

    def create_service(
        self, name: str, replicas: int, image: str, args: list[str], parallelism: int = 1, monitor: float = 5
    ) -> str: ...

    def running(self, sid: str) -> int: ...

    def update_image(self, sid: str, image: str) -> None: ...

    def update_state(self, sid: str) -> str: ...

    def remove_service(self, sid: str) -> None: ...


def _name(what: str) -> str:
    return f"bench-{what}-{secrets.token_hex(3)}"


def converge(side: Side, replicas: int, timeout: float = 600) -> float:
    """Seconds from `service create` to all replicas RUNNING."""
    start = time.monotonic()
    sid = side.create_service(_name(f"c{replicas}"), replicas, f"{side.image}:latest", SLEEP)
    try:
        end = poll(lambda: side.running(sid) >= replicas, timeout, f"{replicas} replicas running")
    finally:
        side.remove_service(sid)
    return end - start


def single_task(side: Side) -> float:
    return converge(side, 1, timeout=120)


def rolling_update(side: Side, replicas: int = 20, parallelism: int = 5, monitor: float = 1) -> float:
    """Seconds from the image update to the update COMPLETED (all replicas replaced)."""
    sid = side.create_service(
        _name("upd"), replicas, f"{side.image}:latest", SLEEP, parallelism=parallelism, monitor=monitor
    )
    try:
        poll(lambda: side.running(sid) >= replicas, 600, f"{replicas} replicas running")
        start = time.monotonic()
        side.update_image(sid, f"{side.image}:2")
        end = poll(lambda: side.update_state(sid) == "completed", 600, "update completed")
    finally:
        side.remove_service(sid)
    return end - start
