"""The agent: a session to the dispatcher, and task controllers that run assignments."""

from agent.agent import Agent

__all__ = ["Agent"]
