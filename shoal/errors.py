"""The error tree of shoal. One server interceptor (shoal.rpc) maps it to gRPC status codes.

    ShoalError
    ├── NotFound            → NOT_FOUND
    ├── NameConflict        → ALREADY_EXISTS
    ├── InvalidSpec         → INVALID_ARGUMENT
    ├── FailedPrecondition  → FAILED_PRECONDITION
    ├── VersionConflict     → ABORTED
    ├── PermissionDenied    → PERMISSION_DENIED   (wrong join token, unknown node secret)
    └── Unavailable         → UNAVAILABLE
        ├── NotLeader       (this manager does not lead; carries the leader's address if known)
        └── NoQuorum        (the write could not be committed)

Anything else raised inside a handler becomes INTERNAL and is logged with its traceback.
Library errors (NetlinkError, OSError from syscalls, pysyncobj failures) are translated where
they are caught, so that callers only ever see this tree.
"""

from __future__ import annotations

import grpc


class ShoalError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ShoalError):
    code = grpc.StatusCode.NOT_FOUND


class NameConflict(ShoalError):
    code = grpc.StatusCode.ALREADY_EXISTS


class InvalidSpec(ShoalError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(ShoalError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class VersionConflict(ShoalError):
    code = grpc.StatusCode.ABORTED


class PermissionDenied(ShoalError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(ShoalError):
    code = grpc.StatusCode.UNAVAILABLE


class NotLeader(Unavailable):
    def __init__(self, message: str = "this manager is not the leader", leader_addr: str = "") -> None:
        super().__init__(message)
        self.leader_addr = leader_addr


class NoQuorum(Unavailable):
    pass


__all__ = [
    "FailedPrecondition",
    "InvalidSpec",
    "NameConflict",
    "NoQuorum",
    "NotFound",
    "NotLeader",
    "PermissionDenied",
    "ShoalError",
    "Unavailable",
    "VersionConflict",
]
