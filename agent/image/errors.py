"""Every image failure is an ImageError: the task ends REJECTED with its message, and the
orchestrator's restart delay is the backoff before the next try.

    ExecError (agent.exec)
    └── ImageError              bad reference, missing repository/tag, digest mismatch, bad layer
        └── RegistryUnreachable the registry could not be reached (a cached image may serve)
"""

from agent.exec import ExecError


class ImageError(ExecError):
    pass


class RegistryUnreachable(ImageError):
    pass
