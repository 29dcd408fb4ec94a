"""The executor interface between the agent and a runtime, after SwarmKit's agent/exec.

An Executor describes the node and makes one Controller per task. Controllers are idempotent:
the agent may call prepare/start again after a restart, and they must recognise a container
that already exists (re-adoption) instead of creating a second one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from agent.exec.logfile import LogEntry

if TYPE_CHECKING:  # the container supervisor imports this package and must start fast
    from shoal.api import Task
    from shoal.api.dispatcher_pb2 import NetworkPeers
    from shoal.api.types_pb2 import NodeDescription


class ExecError(Exception):
    """A task cannot run (bad image, bad spec): the task ends REJECTED with this message."""


class TemporaryError(ExecError):
    """Worth retrying with backoff (registry unreachable, ...)."""


@dataclass(frozen=True)
class ContainerState:
    """What the runtime knows about a task's container right now."""

    exists: bool
    running: bool = False
    pid: int = 0
    exit_code: int | None = None
    # "OOM killed", "exit code 1", ... for a container that ended.
    message: str = ""
    oom_killed: bool = False
    unhealthy: bool = False


class Controller(Protocol):
    task: Task

    async def inspect(self) -> ContainerState: ...

    async def prepare(self) -> None:
        """Pull the image and create the container (idempotent)."""

    async def start(self) -> int:
        """Start the container (idempotent: a running container is left as it is). Returns its pid."""

    async def wait(self) -> ContainerState:
        """Return when the container has exited, with its final state."""

    async def shutdown(self, grace_period: float) -> None:
        """Stop signal, grace period, then SIGKILL."""

    async def remove(self) -> None:
        """Remove everything the container used (rootfs, cgroups, logs). Idempotent."""

    async def wait_healthy(self) -> None:
        """Return once the container's health check passed (at once if it has none); raise
        ExecError if it turned unhealthy or exited first."""

    def logs(self, *, follow: bool, tail: int) -> AsyncIterator[LogEntry]:
        """The container's output: the last `tail` lines (all if negative), then new ones."""


class Executor(Protocol):
    async def describe(self) -> NodeDescription: ...

    def controller(self, task: Task) -> Controller: ...

    async def set_network_peers(self, tables: dict[str, NetworkPeers]) -> None:
        """The overlay networks this node's tasks use, each with every endpoint on it cluster-wide
        (the dispatcher's NetworkPeers by network id): the whole current set on every call."""


__all__ = ["ContainerState", "Controller", "ExecError", "Executor", "LogEntry", "TemporaryError"]
