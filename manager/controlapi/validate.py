"""Spec validation at the API edge. Every check raises InvalidSpec with a message a user can act
on; nothing invalid is ever proposed to Raft."""

from __future__ import annotations

import ipaddress
import re

from google.protobuf.duration_pb2 import Duration

from manager import constraint
from shoal.api import NetworkSpec, NodeRole, ServiceSpec, TaskState, control_pb2
from shoal.api.specs_pb2 import ClusterSpec
from shoal.errors import InvalidSpec

# Docker's rule for service names: DNS labels, at most 63 characters.
_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_.\-]{0,61}[a-zA-Z0-9])?$")
_ENV = re.compile(r"^[^=\s]+=")


def name(kind: str, value: str) -> None:
    if not value:
        raise InvalidSpec(f"{kind} name is required")
    if not _NAME.match(value):
        raise InvalidSpec(f"invalid {kind} name {value!r}: letters, digits, '-', '_' and '.', at most 63")


_MAX_NANOS = 999_999_999


def _non_negative_duration(what: str, d: Duration) -> None:
    """Also a well-formed one: a Duration whose nanos are out of range (or of the other sign
    than its seconds) is stored fine but cannot be encoded as JSON, which would break every
    `ls`/`inspect --format json` of the object."""
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidSpec(f"{what} must not be negative")
    if d.nanos > _MAX_NANOS:
        raise InvalidSpec(f"invalid {what}: nanos must be at most {_MAX_NANOS} (got {d.nanos})")


def service_spec(spec: ServiceSpec) -> None:
    name("service", spec.annotations.name)
    task = spec.task
    c = task.container
    if not c.image.strip():
        raise InvalidSpec("an image is required (service create IMAGE [ARG...])")
    if any(ch.isspace() for ch in c.image):
        raise InvalidSpec(f"invalid image reference {c.image!r}")
    for e in c.env:
        if not _ENV.match(e):
            raise InvalidSpec(f"invalid environment variable {e!r}: expected KEY=VALUE")
    mode = spec.WhichOneof("mode")
    if mode == "replicated" and spec.replicated.replicas < 0:
        raise InvalidSpec(f"replicas must be 0 or more (got {spec.replicated.replicas})")
    constraint.parse_all(list(task.placement.constraints))
    for what, r in (("limits", task.resources.limits), ("reservations", task.resources.reservations)):
        if r.nano_cpus < 0 or r.memory_bytes < 0:
            raise InvalidSpec(f"resource {what} must not be negative")
    if task.resources.pids_limit < 0:
        raise InvalidSpec("pids limit must not be negative")
    _non_negative_duration("restart delay", task.restart.delay)
    _non_negative_duration("restart window", task.restart.window)
    _non_negative_duration("stop grace period", c.stop_grace_period)
    _ports(spec)
    for cfg in (spec.update, spec.rollback):
        _non_negative_duration("update delay", cfg.delay)
        if not 0.0 <= cfg.max_failure_ratio <= 1.0:
            raise InvalidSpec("max failure ratio must be between 0 and 1")


def network_spec(spec: NetworkSpec) -> None:
    name("network", spec.annotations.name)
    if spec.driver not in ("", "overlay"):
        raise InvalidSpec(f"unsupported network driver {spec.driver!r} (overlay)")
    for cfg in spec.ipam:
        if cfg.gateway and not cfg.subnet:
            raise InvalidSpec(f"gateway {cfg.gateway} given without a subnet")
        if cfg.gateway:
            _gateway(cfg.subnet, cfg.gateway)


def _gateway(subnet: str, gateway: str) -> None:
    """The gateway is a host address of its subnet (the subnet itself is checked by ipam)."""
    try:
        gw = ipaddress.IPv4Address(gateway)
        net = ipaddress.IPv4Network(subnet, strict=False)
    except ValueError:
        raise InvalidSpec(f"invalid gateway {gateway!r} for subnet {subnet!r}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidSpec(f"gateway {gateway} is not a host address of subnet {subnet}")


def list_filters(f: control_pb2.ListFilters) -> None:
    for state in f.desired_states:
        if state not in TaskState.values():
            raise InvalidSpec(f"unknown task state {state} in filter")
    for role in f.roles:
        if role not in NodeRole.values():
            raise InvalidSpec(f"unknown node role {role} in filter")


def cluster_spec(spec: ClusterSpec) -> None:
    if spec.orchestration.task_history_retention_limit < 0:
        raise InvalidSpec("task history retention limit must not be negative")
    hb = spec.dispatcher.heartbeat_period
    _non_negative_duration("heartbeat period", hb)
    if hb.seconds < 0 or (
        spec.dispatcher.HasField("heartbeat_period") and hb.seconds == 0 and hb.nanos < 100_000_000
    ):
        raise InvalidSpec("heartbeat period must be at least 100ms")


def _ports(spec: ServiceSpec) -> None:
    seen: set[tuple[int, int]] = set()
    for p in spec.endpoint.ports:
        if not 1 <= p.target_port <= 65535:
            raise InvalidSpec(f"invalid target port {p.target_port}: must be 1-65535")
        if not 1 <= p.published_port <= 65535:
            raise InvalidSpec(
                f"port {p.target_port}: a published port (1-65535) is required, as PUBLISHED:TARGET"
            )
        if (p.protocol, p.published_port) in seen:
            raise InvalidSpec(f"published port {p.published_port} is given twice")
        seen.add((p.protocol, p.published_port))
    if spec.endpoint.ports and not spec.task.networks:
        # Published ports are forwarded to the task's overlay address; without one there is
        # nothing to forward to.
        raise InvalidSpec("published ports need an overlay network (--network NAME)")
