"""Issue 2 acceptance: leader failure, worker failure, full restart. Each test kills things, so
they share one lab in the order written and each leaves the cluster whole again."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.integration.cli import Cli, wait_for

pytestmark = pytest.mark.lab
IMAGE = "busybox:latest"


def _leader(cli: Cli) -> str:
    names = cli.hostnames()
    leaders = [names[n["id"]] for n in cli.nodes() if n.get("manager_status", {}).get("leader")]
    assert len(leaders) == 1
    return leaders[0]


def test_leader_failure(cluster: Cli) -> None:
    cluster.run("service", "create", "--name", "before", "--replicas", "3", IMAGE, "sleep", "1000")
    old = _leader(cluster)
    survivors = [h for h in ("m1", "m2", "m3") if h != old]
    cluster.lab.kill(old)
    killed_at = time.monotonic()

    via = cluster.at(survivors[0])

    def created() -> bool:
        return (
            via.run(
                "service",
                "create",
                "--detach",
                "--name",
                "after",
                "--replicas",
                "1",
                IMAGE,
                check=False,
                timeout=10,
            ).returncode
            == 0
        )

    wait_for(created, 10, "a new leader to accept service create", interval=0.05)
    failover = time.monotonic() - killed_at
    print(f"\nleader_failover_seconds={failover:.2f}")
    assert failover < 5.0
    for host in survivors:
        names = {s["spec"]["annotations"]["name"] for s in cluster.at(host).services()}
        assert {"before", "after"} <= names
    assert _leader(via) in survivors

    cluster.lab.start(old)
    wait_for(lambda: all(n["status"]["state"] == "READY" for n in via.nodes()), 30, "old leader back")
    for name in ("before", "after"):
        via.run("service", "rm", name)


def test_worker_failure(cluster: Cli) -> None:
    cli = cluster.at(_leader(cluster))
    cli.run("service", "create", "--name", "heal", "--replicas", "6", IMAGE, "sleep", "1000")
    names = cli.hostnames()
    on_w1 = {t["id"] for t in cli.running("heal") if names[t["node_id"]] == "w1"}
    assert on_w1, "the spread put no task on w1"

    cluster.lab.kill("w1")
    killed_at = time.monotonic()

    def healed() -> bool:
        w1 = next(n for n in cli.nodes() if n["description"]["hostname"] == "w1")
        running = cli.running("heal")
        return (
            w1["status"]["state"] == "DOWN"
            and len(running) == 6
            and all(names[t["node_id"]] != "w1" for t in running)
        )

    wait_for(healed, 10, "w1 DOWN and its tasks RUNNING elsewhere", interval=0.1)
    print(f"\nnode_failure_reschedule_seconds={time.monotonic() - killed_at:.2f}")

    cluster.lab.start("w1")
    wait_for(
        lambda: (
            next(n for n in cli.nodes() if n["description"]["hostname"] == "w1")["status"]["state"] == "READY"
        ),
        30,
        "w1 READY again",
    )

    def stale_ended() -> bool:
        tasks = {t["id"]: t for t in cli.tasks("heal")}
        return all(tasks[i]["status"]["state"] in ("SHUTDOWN", "ORPHANED") for i in on_w1 if i in tasks)

    wait_for(stale_ended, 20, "w1's stale tasks to end SHUTDOWN or ORPHANED")
    running = cli.running("heal")
    assert len(running) == 6
    slots = Counter(t["slot"] for t in running)
    assert all(c == 1 for c in slots.values()), f"duplicate slots: {slots}"
    cli.run("service", "rm", "heal")


def test_full_restart_keeps_everything(cluster: Cli) -> None:
    cluster.run("service", "create", "--name", "durable", "--replicas", "4", IMAGE, "sleep", "1000")
    nodes = {n["id"] for n in cluster.nodes()}
    services = {s["id"] for s in cluster.services()}
    tasks = {t["id"] for t in cluster.running("durable")}

    for host in ("m1", "m2", "m3"):
        cluster.lab.stop(host)
    for host in ("m1", "m2", "m3"):
        cluster.lab.start(host)

    def back() -> bool:
        ns = cluster.nodes()
        return {n["id"] for n in ns} == nodes and all(n["status"]["state"] == "READY" for n in ns)

    wait_for(back, 60, "all nodes READY after a full manager restart")
    assert {s["id"] for s in cluster.services()} == services
    wait_for(lambda: {t["id"] for t in cluster.running("durable")} == tasks, 30, "the same 4 tasks running")
