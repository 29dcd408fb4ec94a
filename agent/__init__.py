"""The agent: a session to the dispatcher, and task controllers that run assignments.

`Agent` is imported lazily: the container supervisor (`python -m agent.runtime.supervisor`) is
a fresh, single-threaded process that must not pull in gRPC on its way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.agent import Agent


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from agent.agent import Agent

        return Agent
    raise AttributeError(name)


__all__ = ["Agent"]
