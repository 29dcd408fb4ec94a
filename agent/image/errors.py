"""Every image failure is an ImageError: the task ends REJECTED with its message, and the
orchestrator's restart delay is the backoff before the next try."""

from agent.exec import ExecError


class ImageError(ExecError):
    pass
