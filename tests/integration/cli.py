"""swarmctl as the tests drive it: subprocesses against a lab manager's control socket."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

from swarmlab.lab import Lab

T = TypeVar("T")


class CliError(AssertionError):
    pass


class Cli:
    def __init__(self, lab: Lab, host: str | None = None) -> None:
        self.lab = lab
        self.host = host

    def at(self, host: str) -> Cli:
        """The same CLI pointed at another manager's control socket."""
        return Cli(self.lab, host)

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = self.lab.ctl(*args, host=self.host, timeout=timeout)
        if check and proc.returncode != 0:
            raise CliError(f"swarmctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--format", "json").stdout)

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.json("node", "ls"))

    def tasks(self, service: str | None = None) -> list[dict[str, Any]]:
        return list(self.json("task", "ls", *(["--service", service] if service else [])))

    def services(self) -> list[dict[str, Any]]:
        return list(self.json("service", "ls"))

    def hostnames(self) -> dict[str, str]:
        """node id -> lab host name"""
        return {n["id"]: n["description"]["hostname"] for n in self.nodes()}

    def running(self, service: str) -> list[dict[str, Any]]:
        return [
            t
            for t in self.tasks(service)
            if t["desired_state"] == "RUNNING" and t["status"]["state"] == "RUNNING"
        ]


def wait_for(cond: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll until cond() returns something truthy; errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = cond()
            if value:
                return value
            last = value
        except Exception as e:  # the cluster may be between states
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
