"""Control-plane benchmarks on a 5-host lab (test executor): convergence at scale, leader
failover, node failure to rescheduled tasks, and a rolling update."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from swarmlab.lab import Lab
from swarmlab.testing import running_lab


def _ctl(lab: Lab, *args: str, host: str | None = None, timeout: float = 600) -> str:
    proc = lab.ctl(*args, host=host, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"swarmctl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _poll(cond: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(0.05)


def _running(lab: Lab, service: str, host: str | None = None) -> int:
    tasks = json.loads(_ctl(lab, "task", "ls", "--service", service, "--format", "json", host=host))
    return sum(t["desired_state"] == "RUNNING" and t["status"]["state"] == "RUNNING" for t in tasks)


def converge(lab: Lab, replicas: int) -> float:
    start = time.monotonic()
    _ctl(
        lab,
        "service",
        "create",
        "--name",
        f"c{replicas}",
        "--replicas",
        str(replicas),
        "busybox",
        "sleep",
        "1d",
    )
    took = time.monotonic() - start
    _ctl(lab, "service", "rm", f"c{replicas}")
    return took


def rolling_update(lab: Lab, replicas: int = 20, parallelism: int = 5, image: str = "busybox") -> float:
    _ctl(
        lab, "service", "create", "--name", "upd", "--replicas", str(replicas), "--stop-grace-period", "1s",
        "--update-parallelism", str(parallelism), "--update-delay", "0s", f"{image}:latest", "sleep", "1d",
    )  # fmt: skip
    start = time.monotonic()
    _ctl(lab, "service", "update", "upd", "--image", f"{image}:2")
    took = time.monotonic() - start
    _ctl(lab, "service", "rm", "upd")
    return took


def _leader(lab: Lab, host: str | None = None) -> str:
    nodes = json.loads(_ctl(lab, "node", "ls", "--format", "json", host=host))
    return next(n["description"]["hostname"] for n in nodes if n.get("manager_status", {}).get("leader"))


def failover(lab: Lab) -> float:
    old = _leader(lab)
    survivor = next(h for h in lab.managers() if h != old)
    lab.kill(old)
    start = time.monotonic()

    def created() -> bool:
        args = ("service", "create", "--detach", "--name", "fo", "--replicas", "0", "busybox")
        return lab.ctl(*args, host=survivor, timeout=10).returncode == 0

    _poll(created)
    took = time.monotonic() - start
    lab.start(old)
    _ctl(lab, "service", "rm", "fo", host=survivor)
    return took


def node_failure(lab: Lab) -> float:
    _ctl(lab, "service", "create", "--name", "nf", "--replicas", "10", "busybox", "sleep", "1d")
    manager = lab.managers()[0]
    lab.kill("w1")
    start = time.monotonic()

    def healed() -> bool:
        nodes = json.loads(_ctl(lab, "node", "ls", "--format", "json", host=manager))
        w1 = next(n for n in nodes if n["description"]["hostname"] == "w1")
        return w1["status"]["state"] == "DOWN" and _running(lab, "nf", host=manager) == 10

    _poll(healed)
    took = time.monotonic() - start
    lab.start("w1")
    _ctl(lab, "service", "rm", "nf")
    return took


def run() -> dict[str, float]:
    results: dict[str, float] = {}
    with running_lab(managers=3, workers=2, executor="test") as lab:
        for n in (100, 500):
            results[f"converge_{n}_replicas_s"] = converge(lab, n)
        results["rolling_update_20_par5_s"] = rolling_update(lab)
        results["node_failure_to_rescheduled_s"] = node_failure(lab)
        results["leader_failover_s"] = failover(lab)
    return results


def run_containers() -> dict[str, float]:
    """The same rolling update with real containers from the lab's registry."""
    with running_lab(managers=1, workers=2, executor="container") as lab:
        return {"rolling_update_20_par5_containers_s": rolling_update(lab, image=f"{lab.registry}/busybox")}
