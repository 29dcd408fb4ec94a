"""Issue 4, control-plane part (on the lab): overlay networks' address management through Raft
and bad network input. (The data plane is tested in test_overlay.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from swarmlab.testing import running_lab
from tests.integration.cli import Cli, wait_for

pytestmark = pytest.mark.lab
IMAGE = "busybox:latest"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cli]:
    with running_lab(managers=3, workers=2, executor="test") as lab:
        yield Cli(lab)


def addresses(tasks: list[dict[str, Any]]) -> list[str]:
    return [a for t in tasks for att in t.get("networks_attachments", []) for a in att["addresses"]]


def test_bad_network_input_changes_nothing(cluster: Cli) -> None:
    cluster.run("network", "create", "--subnet", "10.20.0.0/24", "app")
    before = (cluster.json("network", "ls"), cluster.services())
    for args, message in [
        (["service", "create", "--name", "lost", "--network", "nowhere", IMAGE], "network nowhere not found"),
        (["network", "create", "--subnet", "10.20.0.128/25", "clash"], "overlaps"),
        (["network", "create", "--subnet", "10.20.0.1/24", "hostbits"], "invalid subnet"),
    ]:
        proc = cluster.run(*args, check=False)
        err = proc.stderr.strip()
        assert proc.returncode != 0 and message in err and len(err.splitlines()) == 1, err
    assert (cluster.json("network", "ls"), cluster.services()) == before

    cluster.run("service", "create", "--detach", "--name", "user", "--network", "app", IMAGE, "sleep", "1000")
    proc = cluster.run("network", "rm", "app", check=False)
    assert proc.returncode != 0 and "in use" in proc.stderr
    assert len(cluster.json("network", "ls")) == len(before[0])
    cluster.run("service", "rm", "user")
    cluster.run("network", "rm", "app")


def test_leader_change_never_hands_out_an_address_twice(cluster: Cli) -> None:
    cluster.run("network", "create", "ipnet")
    cluster.run(
        "service", "create", "--name", "many", "--replicas", "2", "--network", "ipnet", IMAGE, "sleep", "1000"
    )
    names = cluster.hostnames()
    leader = next(names[n["id"]] for n in cluster.nodes() if n.get("manager_status", {}).get("leader"))
    via = cluster.at(next(h for h in ("m1", "m2", "m3") if h != leader))
    via.run("service", "scale", "--detach", "many=20")
    time.sleep(0.3)  # the scale-up is under way
    cluster.lab.kill(leader)
    wait_for(lambda: len(via.running("many")) == 20, 60, "20 tasks running after the leader change")
    live = [t for t in via.tasks("many") if t["status"]["state"] not in ("SHUTDOWN", "FAILED", "COMPLETE")]
    addrs = addresses(live)
    assert len(addrs) == len(live) == 20 and len(set(addrs)) == 20, addrs
    svc = via.json("service", "inspect", "many")
    (vip,) = svc["endpoint"]["virtual_ips"]
    assert vip["addr"] not in addrs
    cluster.lab.start(leader)
    via.run("service", "rm", "many")
    wait_for(lambda: via.run("network", "rm", "ipnet", check=False).returncode == 0, 30, "ipnet removed")
