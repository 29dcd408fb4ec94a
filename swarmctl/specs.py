"""Flag values → protobuf fields: durations, sizes, CPUs, KEY=VALUE lists, restart conditions.
Bad values are click.BadParameter: reported before any RPC is made."""

from __future__ import annotations

import re
from datetime import timedelta

import click
import durationpy

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
