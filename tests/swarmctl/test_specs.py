"""Flag value parsers: durations, sizes, CPUs, KEY=VALUE, ports."""

from __future__ import annotations

from datetime import timedelta

import click
import pytest

from shoal.api.specs_pb2 import PortConfig
from swarmctl import specs


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5s", timedelta(seconds=5)), ("1m30s", timedelta(seconds=90)), ("500ms", timedelta(milliseconds=500))],
)
def test_duration(value: str, expected: timedelta) -> None:
    assert specs.duration(value, "--x") == expected


@pytest.mark.parametrize("value", ["", "5", "five seconds", "-5s"])
def test_bad_duration(value: str) -> None:
    with pytest.raises(click.BadParameter):
        specs.duration(value, "--x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("64m", 64 << 20),
        ("1g", 1 << 30),
        ("1G", 1 << 30),
        ("512k", 512 << 10),
        ("100", 100),
        ("1.5g", 3 << 29),
    ],
)
def test_size(value: str, expected: int) -> None:
    assert specs.size(value, "--x") == expected


@pytest.mark.parametrize("value", ["", "m", "12q", "-1m"])
def test_bad_size(value: str) -> None:
    with pytest.raises(click.BadParameter):
        specs.size(value, "--x")


def test_cpus() -> None:
    assert specs.cpus("0.5", "--x") == 500_000_000
    assert specs.cpus("2", "--x") == 2_000_000_000
    for bad in ("half", "-1"):
        with pytest.raises(click.BadParameter):
            specs.cpus(bad, "--x")


def test_key_values() -> None:
    assert specs.key_values(("a=1", "b=x=y", "c="), "--l") == {"a": "1", "b": "x=y", "c": ""}
    for bad in ("a", "=1"):
        with pytest.raises(click.BadParameter):
            specs.key_values((bad,), "--l")


def test_ports() -> None:
    p = specs.port("8080:80")
    assert (p.published_port, p.target_port, p.protocol, p.publish_mode) == (8080, 80, PortConfig.TCP, 0)
    p = specs.port("53/udp")
    assert (p.published_port, p.target_port, p.protocol) == (0, 53, PortConfig.UDP)
    p = specs.port("mode=host,target=80,published=81,protocol=tcp")
    assert (p.published_port, p.target_port, p.publish_mode) == (81, 80, PortConfig.HOST)
    for bad in ("x", "0", "1:70000", "80/sctp", "published=80", "target=80,color=red", "mode=weird,target=1"):
        with pytest.raises(click.BadParameter):
            specs.port(bad)
