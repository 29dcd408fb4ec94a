"""Issue 2 acceptance: promote and demote keep a healthy Raft (3 → 4 → 3); the last manager can't
be demoted."""

from __future__ import annotations

import pytest

from swarmlab.testing import running_lab
from tests.integration.cli import Cli, wait_for

pytestmark = pytest.mark.lab


def _managers(cli: Cli) -> dict[str, dict]:
    names = cli.hostnames()
    return {names[n["id"]]: n for n in cli.nodes() if n["role"] == "MANAGER"}


def _healthy(cli: Cli, expected: set[str]) -> bool:
    managers = _managers(cli)
    return (
        set(managers) == expected
        and sum(bool(m["manager_status"]["leader"]) for m in managers.values()) == 1
        and all(m["manager_status"]["reachability"] == "REACHABLE" for m in managers.values())
    )


def test_promote_then_demote(cluster: Cli) -> None:
    cluster.run("node", "promote", "w1")
    wait_for(lambda: _healthy(cluster, {"m1", "m2", "m3", "w1"}), 30, "4 healthy managers")
    # The promoted node serves the control API too.
    assert len(cluster.at("w1").nodes()) == 5

    cluster.run("node", "demote", "w1")
    wait_for(lambda: _healthy(cluster, {"m1", "m2", "m3"}), 30, "back to 3 healthy managers")
    # Raft still commits: a write goes through.
    cluster.run("service", "create", "--detach", "--name", "after-demote", "--replicas", "1", "busybox")
    cluster.run("service", "rm", "after-demote")


def test_demoting_the_last_manager_is_refused() -> None:
    with running_lab(managers=1, workers=1, executor="test") as lab:
        cli = Cli(lab)
        proc = cli.run("node", "demote", "m1", check=False)
        assert proc.returncode != 0
        assert "last manager" in proc.stderr and "Traceback" not in proc.stderr
        assert set(_managers(cli)) == {"m1"}


def test_global_service_follows_a_joining_node(cluster: Cli) -> None:
    cluster.run("service", "create", "--name", "everywhere", "--mode", "global", "busybox", "sleep", "1000")
    assert len(cluster.running("everywhere")) == 5
    new_host = cluster.lab.add_worker()

    def on_new_host() -> bool:
        names = cluster.hostnames()
        return new_host in {names.get(t["node_id"]) for t in cluster.running("everywhere")}

    wait_for(on_new_host, 30, f"the global service to start a task on {new_host}")
    assert len(cluster.running("everywhere")) == 6
    cluster.run("service", "rm", "everywhere")
