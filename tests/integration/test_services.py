"""Issue 2 acceptance: the cluster forms; replicated and global services; node availability;
constraints; bad input; convergence of 500 replicas."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.integration.cli import Cli, wait_for

pytestmark = pytest.mark.lab
IMAGE = "busybox:latest"


def test_cluster_forms(cluster: Cli) -> None:
    nodes = cluster.nodes()
    assert len(nodes) == 5
    assert all(n["status"]["state"] == "READY" for n in nodes)
    assert all(n["spec"]["availability"] == "ACTIVE" for n in nodes)
    assert sum(n["role"] == "MANAGER" for n in nodes) == 3
    assert sum(bool(n.get("manager_status", {}).get("leader")) for n in nodes) == 1
    assert {n["description"]["hostname"] for n in nodes} == {"m1", "m2", "m3", "w1", "w2"}
    info = cluster.json("cluster", "inspect")
    tokens = info["root_ca"]["join_tokens"]
    assert tokens["worker"].startswith("SWMTKN-1-") and tokens["manager"].startswith("SWMTKN-1-")
    assert tokens["worker"] != tokens["manager"]
    assert not info.get("secret"), "the cluster secret must never leave the managers"
    # -q prints IDs only
    ids = cluster.run("node", "ls", "-q").stdout.split()
    assert sorted(ids) == sorted(n["id"] for n in nodes)


def test_replicated_service_scales(cluster: Cli) -> None:
    cluster.run("service", "create", "--name", "web", "--replicas", "6", IMAGE, "sleep", "1000")
    running = cluster.running("web")
    assert len(running) == 6
    assert len({t["node_id"] for t in running}) >= 3
    assert sorted(t["slot"] for t in running) == [1, 2, 3, 4, 5, 6]
    assert running[0]["spec"]["container"]["args"] == ["sleep", "1000"]
    table = cluster.run("service", "ls").stdout
    assert "web" in table and "6/6" in table

    cluster.run("service", "scale", "web=10")
    assert len(cluster.running("web")) == 10

    cluster.run("service", "scale", "web=2")
    assert len(cluster.running("web")) == 2

    def scaled_down_are_shutdown() -> bool:
        gone = [t for t in cluster.tasks("web") if t["desired_state"] != "RUNNING"]
        return len(gone) == 8 and all(t["status"]["state"] == "SHUTDOWN" for t in gone)

    wait_for(scaled_down_are_shutdown, 20, "8 scaled-down tasks to end SHUTDOWN")
    web_id = cluster.json("service", "inspect", "web")["id"]
    cluster.run("service", "rm", "web")
    wait_for(lambda: all(t["service_id"] != web_id for t in cluster.tasks()), 30, "web's tasks removed")


def test_global_service_follows_availability(cluster: Cli) -> None:
    names = cluster.hostnames()
    cluster.run("service", "create", "--name", "agent", "--mode", "global", IMAGE, "sleep", "1000")

    def per_host() -> Counter[str]:
        return Counter(names[t["node_id"]] for t in cluster.running("agent"))

    assert per_host() == Counter({"m1": 1, "m2": 1, "m3": 1, "w1": 1, "w2": 1})
    cluster.run("node", "drain", "w2")
    wait_for(lambda: per_host() == Counter({"m1": 1, "m2": 1, "m3": 1, "w1": 1}), 20, "global off w2")
    cluster.run("node", "activate", "w2")
    wait_for(lambda: per_host().get("w2") == 1 and len(per_host()) == 5, 20, "global back on w2")
    cluster.run("service", "rm", "agent")


def test_drain_pause_and_constraints(cluster: Cli) -> None:
    names = cluster.hostnames()
    cluster.run("service", "create", "--name", "spread", "--replicas", "5", IMAGE, "sleep", "1000")
    assert "w1" in {names[t["node_id"]] for t in cluster.running("spread")}

    cluster.run("node", "drain", "w1")

    def moved_off_w1() -> bool:
        running = cluster.running("spread")
        return len(running) == 5 and "w1" not in {names[t["node_id"]] for t in running}

    wait_for(moved_off_w1, 20, "drain to move spread's tasks off w1")
    cluster.run("node", "activate", "w1")

    cluster.run("node", "pause", "w2")
    before = sorted(t["id"] for t in cluster.running("spread") if names[t["node_id"]] == "w2")
    cluster.run("service", "scale", "spread=9")
    running = cluster.running("spread")
    assert len(running) == 9
    after = sorted(t["id"] for t in running if names[t["node_id"]] == "w2")
    assert after == before, "a paused node keeps its tasks and gets no new ones"
    cluster.run("node", "activate", "w2")
    cluster.run("service", "rm", "spread")

    cluster.run(
        "service",
        "create",
        "--name",
        "pinned",
        "--replicas",
        "3",
        "--constraint",
        "node.hostname==w1",
        IMAGE,
        "sleep",
        "1000",
    )
    assert {names[t["node_id"]] for t in cluster.running("pinned")} == {"w1"}
    cluster.run("service", "rm", "pinned")

    cluster.run(
        "service",
        "create",
        "--detach",
        "--name",
        "nowhere",
        "--replicas",
        "2",
        "--constraint",
        "node.labels.zone==mars",
        IMAGE,
        "sleep",
        "1000",
    )

    def pending_with_reason() -> bool:
        tasks = cluster.tasks("nowhere")
        return len(tasks) == 2 and all(
            t["status"]["state"] == "PENDING" and "node.labels.zone==mars" in t["status"]["err"]
            for t in tasks
        )

    wait_for(pending_with_reason, 20, "impossible constraint to leave tasks PENDING with a reason")
    assert "no suitable node" in cluster.run("task", "ls", "--service", "nowhere").stdout
    cluster.run("service", "rm", "nowhere")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["service", "create", "--name", "neg", "--replicas", "-1", IMAGE], "replicas"),
        (["service", "create", "--name", "noimage"], "image"),
        (["service", "inspect", "no-such-service"], "no-such-service"),
        (["node", "inspect", "no-such-node"], "no-such-node"),
        (["service", "create", "--name", "badc", "--constraint", "node.hostname=~x", IMAGE], "constraint"),
    ],
)
def test_bad_input_changes_nothing(cluster: Cli, args: list[str], message: str) -> None:
    before = cluster.services()
    proc = cluster.run(*args, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert cluster.services() == before


def test_duplicate_service_name_refused(cluster: Cli) -> None:
    cluster.run("service", "create", "--detach", "--name", "dup", "--replicas", "0", IMAGE)
    before = cluster.services()
    proc = cluster.run("service", "create", "--name", "dup", "--replicas", "1", IMAGE, check=False)
    assert proc.returncode != 0
    assert "dup" in proc.stderr and "exists" in proc.stderr and "Traceback" not in proc.stderr
    assert cluster.services() == before
    cluster.run("service", "rm", "dup")


def test_wrong_join_token_refused(cluster: Cli) -> None:
    proc = cluster.lab.join_attempt("w1", token="SWMTKN-1-" + "0" * 50 + "-" + "0" * 25)
    assert proc.returncode != 0
    assert "token" in proc.stderr.lower() and "Traceback" not in proc.stderr, proc.stderr
    assert len(cluster.nodes()) == 5


def test_converge_500_replicas(cluster: Cli) -> None:
    start = time.monotonic()
    cluster.run(
        "service", "create", "--name", "big", "--replicas", "500", IMAGE, "sleep", "1000", timeout=300
    )
    elapsed = time.monotonic() - start
    running = cluster.running("big")
    assert len(running) == 500
    per_node = Counter(t["node_id"] for t in running)
    assert len(per_node) == 5 and max(per_node.values()) - min(per_node.values()) <= 1
    print(f"\nconverge_500_replicas_seconds={elapsed:.2f}")
    cluster.run("service", "rm", "big")
