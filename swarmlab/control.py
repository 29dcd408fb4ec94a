"""The few control-API calls the lab makes itself (join tokens, node readiness), over a
manager's unix socket. gRPC is imported lazily so `swarmlab down`/`ls` stay quick."""

from __future__ import annotations

import socket as socketlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READY = 2  # shoal.api.types_pb2.NodeStatus.READY


@dataclass(frozen=True)
class JoinTokens:
    worker: str
    manager: str


def connectable(path: Path) -> bool:
    """Whether something accepts connections on the unix socket (a stale file does not)."""
    if not path.exists():
        return False
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _call(sock: Path, method: str, request_name: str, timeout: float) -> Any:
    from shoal import rpc
    from shoal.api import control_pb2, control_pb2_grpc

    ch = rpc.sync_channel(rpc.socket_target(str(sock)))
    try:
        stub = control_pb2_grpc.ControlStub(ch)
        return getattr(stub, method)(getattr(control_pb2, request_name)(), timeout=timeout)
    finally:
        ch.close()


def join_tokens(sock: Path, timeout: float = 5.0) -> JoinTokens:
    clusters = _call(sock, "ListClusters", "ListClustersRequest", timeout).clusters
    if not clusters:
        raise LookupError("the manager lists no cluster yet")
    tokens = clusters[0].root_ca.join_tokens
    if not tokens.worker or not tokens.manager:
        raise LookupError("the cluster has no join tokens yet")
    return JoinTokens(worker=tokens.worker, manager=tokens.manager)


def node_states(sock: Path, timeout: float = 5.0) -> dict[str, int]:
    """hostname → node state; READY wins when several nodes share a hostname."""
    states: dict[str, int] = {}
    for node in _call(sock, "ListNodes", "ListNodesRequest", timeout).nodes:
        name = node.description.hostname
        state = int(node.status.state)
        if states.get(name) != READY:
            states[name] = state
    return states


def describe_error(e: BaseException) -> str:
    """A one-line account of a failed call (gRPC status details rather than a repr)."""
    code = getattr(e, "code", None)
    details = getattr(e, "details", None)
    if callable(code) and callable(details):
        try:
            return f"{code().name}: {details()}"
        except Exception:
            pass
    return f"{type(e).__name__}: {e}"
