"""Helpers shared by the failure-suite modules (test_linearizable, test_partition, test_faults,
test_bad_input): who leads, timed CLI writes, a raw Control stub on a manager's socket."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import grpc

from shoal import rpc
from shoal.api import control_pb2_grpc
from swarmlab.lab import Lab
from tests.integration.cli import Cli, wait_for

IMAGE = "busybox:latest"
MANAGERS = ("m1", "m2", "m3")


def leader(cli: Cli) -> str:
    """The lab host that leads, as the manager behind `cli` reports it."""
    names = cli.hostnames()
    leaders = [names[n["id"]] for n in cli.nodes() if n.get("manager_status", {}).get("leader")]
    assert len(leaders) == 1, f"leaders: {leaders}"
    return leaders[0]


def wait_leader(lab: Lab, among: list[str], timeout: float = 20.0) -> str:
    """Poll the given managers until one of them reports a leader that is among them."""

    def found() -> str | None:
        for host in among:
            try:
                h = leader(Cli(lab, host))
            except Exception:
                continue
            if h in among:
                return h
        return None

    return wait_for(found, timeout, f"a leader among {among}", interval=0.1)


def all_ready(cli: Cli) -> bool:
    return all(n["status"]["state"] == "READY" for n in cli.nodes())


def create(
    cli: Cli, name: str, *extra: str, timeout: float = 40.0
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`service create --detach NAME` through `cli`; returns the process and its duration. A CLI
    that outlives `timeout` counts as failed (exit status -9)."""
    args = (
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        name,
        *extra,
        IMAGE,
        "sleep",
        "1d",
    )
    return timed(cli, args, timeout)


def timed(cli: Cli, args: tuple[str, ...], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    try:
        proc = cli.run(*args, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc = subprocess.CompletedProcess(list(args), -9, "", f"timed out after {timeout}s")
    return proc, time.monotonic() - start


def service_names(cli: Cli) -> set[str]:
    return {s["spec"]["annotations"]["name"] for s in cli.services()}


@contextlib.contextmanager
def control_stub(lab: Lab, host: str) -> Iterator[control_pb2_grpc.ControlStub]:
    """A Control stub on the host's control socket (the CLI's way in, without the CLI)."""
    ch = rpc.sync_channel(rpc.socket_target(str(lab.socket(host))))
    try:
        yield control_pb2_grpc.ControlStub(ch)
    finally:
        ch.close()


def rpc_code(call: object, request: object, timeout: float = 20.0) -> grpc.StatusCode:
    """The status code `call(request)` ends with (OK when it succeeds)."""
    try:
        call(request, timeout=timeout)  # type: ignore[operator]
    except grpc.RpcError as e:
        return e.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK
