"""Flag values → protobuf fields: durations, sizes, CPUs, KEY=VALUE lists, restart conditions.
Bad values are click.BadParameter: reported before any RPC is made."""

from __future__ import annotations

import re
from datetime import timedelta

import click
import durationpy

from shoal.api.specs_pb2 import PortConfig
from shoal.api.types_pb2 import RestartPolicy

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def duration(value: str, what: str) -> timedelta:
    try:
        d: timedelta = durationpy.from_str(value)
    except Exception:
        raise click.BadParameter(
            f"invalid duration {value!r} (like 10s, 1m30s, 500ms)", param_hint=what
        ) from None
    if d < timedelta(0):
        raise click.BadParameter(f"{value!r} is negative", param_hint=what)
    return d


def size(value: str, what: str) -> int:
    m = _SIZE.match(value.strip())
    if not m:
        raise click.BadParameter(f"invalid size {value!r} (like 64m, 1g)", param_hint=what)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def cpus(value: str, what: str) -> int:
    try:
        n = float(value)
    except ValueError:
        raise click.BadParameter(f"invalid CPU count {value!r} (like 0.5)", param_hint=what) from None
    if n < 0:
        raise click.BadParameter(f"{value!r} is negative", param_hint=what)
    return int(n * 1_000_000_000)


def key_values(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not key or not sep:
            raise click.BadParameter(f"{v!r}: expected KEY=VALUE", param_hint=what)
        out[key] = val
    return out


def env_list(values: tuple[str, ...]) -> list[str]:
    key_values(values, "--env")
    return list(values)


RESTART_CONDITIONS = {
    "none": RestartPolicy.NONE,
    "on-failure": RestartPolicy.ON_FAILURE,
    "any": RestartPolicy.ANY,
}


_PROTOCOLS = {"tcp": PortConfig.TCP, "udp": PortConfig.UDP}
_PUBLISH_MODES = {"ingress": PortConfig.INGRESS, "host": PortConfig.HOST}


def _port_number(value: str, what: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise click.BadParameter(f"invalid port {value!r}", param_hint=what)
    return int(value)


def port(value: str, what: str = "--publish") -> PortConfig:
    """`PUBLISHED:TARGET[/PROTO]`, `TARGET[/PROTO]`, or docker's long form
    `mode=host,target=80,published=8080,protocol=udp`."""
    p = PortConfig()
    if "=" in value:
        fields = key_values(tuple(value.split(",")), what)
        unknown = set(fields) - {"mode", "target", "published", "protocol", "name"}
        if unknown:
            raise click.BadParameter(f"{value!r}: unknown field {sorted(unknown)[0]!r}", param_hint=what)
        if "target" not in fields:
            raise click.BadParameter(f"{value!r}: target= is required", param_hint=what)
        p.target_port = _port_number(fields["target"], what)
        if fields.get("published"):
            p.published_port = _port_number(fields["published"], what)
        proto, mode = fields.get("protocol", "tcp").lower(), fields.get("mode", "ingress").lower()
        p.name = fields.get("name", "")
    else:
        ports, _, proto = value.partition("/")
        published, sep, target = ports.rpartition(":")
        p.target_port = _port_number(target, what)
        if sep:
            p.published_port = _port_number(published, what)
        proto, mode = (proto or "tcp").lower(), "ingress"
    if proto not in _PROTOCOLS:
        raise click.BadParameter(f"{value!r}: protocol must be tcp or udp", param_hint=what)
    if mode not in _PUBLISH_MODES:
        raise click.BadParameter(f"{value!r}: mode must be ingress or host", param_hint=what)
    p.protocol = _PROTOCOLS[proto]  # type: ignore[assignment]
    p.publish_mode = _PUBLISH_MODES[mode]  # type: ignore[assignment]
    return p
