"""swarmctl cluster ... and network ..."""

from __future__ import annotations

import pytest

from shoal.api import Cluster
from tests.swarmctl.conftest import FakeControl, Runner

SECRET = "very-secret-cluster-key"


@pytest.fixture
def cluster(fake: FakeControl) -> Cluster:
    c = Cluster(id="cl" + "0" * 23, secret=SECRET)
    c.meta.version.index = 7
    c.spec.annotations.name = "default"
    c.spec.dispatcher.heartbeat_period.FromSeconds(1)
    c.spec.orchestration.task_history_retention_limit = 5
    c.root_ca.join_tokens.worker = "SWMTKN-1-worker"
    c.root_ca.join_tokens.manager = "SWMTKN-1-manager"
    fake.clusters[c.id] = c
    return c


def test_inspect(swarmctl: Runner, cluster: Cluster) -> None:
    r = swarmctl("cluster", "inspect", "--format", "json")
    assert r.code == 0, r.err
    c = r.json()
    assert c["id"] == cluster.id
    assert c["root_ca"]["join_tokens"] == {"worker": "SWMTKN-1-worker", "manager": "SWMTKN-1-manager"}
    assert c["spec"]["dispatcher"]["heartbeat_period"] == "1s"
    assert "secret" not in c and SECRET not in r.out
    table = swarmctl("cluster", "inspect")
    assert "SWMTKN-1-worker" in table.out and SECRET not in table.out
    assert swarmctl("cluster", "inspect", "default", "-q").out.strip() == cluster.id
    r = swarmctl("cluster", "inspect", "other")
    assert (r.code, r.err) == (1, "Error: cluster other not found\n")


def test_ls(swarmctl: Runner, cluster: Cluster) -> None:
    r = swarmctl("cluster", "ls")
    assert cluster.id in r.out and "default" in r.out and SECRET not in r.out
    out = swarmctl("cluster", "ls", "--format", "json")
    assert [c["id"] for c in out.json()] == [cluster.id] and SECRET not in out.out
    assert swarmctl("cluster", "ls", "-q").lines == [cluster.id]


def test_update(fake: FakeControl, swarmctl: Runner, cluster: Cluster) -> None:
    r = swarmctl(
        "cluster",
        "update",
        "--heartbeat-period",
        "2500ms",
        "--task-history-limit",
        "3",
        "--rotate-worker-token",
    )
    assert r.code == 0, r.err
    (req,) = fake.requests["UpdateCluster"]
    assert req.cluster_id == cluster.id and req.cluster_version.index == 7
    assert req.spec.dispatcher.heartbeat_period.ToMilliseconds() == 2500
    assert req.spec.orchestration.task_history_retention_limit == 3
    assert req.rotate_worker_token and not req.rotate_manager_token
    assert fake.clusters[cluster.id].root_ca.join_tokens.worker == "SWMTKN-1-rotated-worker"


@pytest.mark.parametrize(
    "flags", [["--heartbeat-period", "often"], ["--heartbeat-period", "0s"], ["--task-history-limit", "-1"]]
)
def test_update_refuses_bad_values(
    fake: FakeControl, swarmctl: Runner, cluster: Cluster, flags: list[str]
) -> None:
    r = swarmctl("cluster", "update", *flags)
    assert r.code in (1, 2) and r.err.startswith("Error: ") and len(r.err.splitlines()) == 1
    assert fake.calls == []


def test_networks(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl("network", "create", "--subnet", "10.20.0.0/24", "front")
    assert r.code == 0, r.err
    net_id = r.out.strip()
    spec = fake.requests["CreateNetwork"][0].spec
    assert (spec.annotations.name, spec.driver, spec.ipam[0].subnet) == ("front", "overlay", "10.20.0.0/24")
    assert swarmctl("network", "create", "--name", "back").code == 0

    ls = swarmctl("network", "ls")
    assert ls.lines[0].split()[:3] == ["ID", "NAME", "DRIVER"]
    assert any(line.split()[:2] == [net_id, "front"] for line in ls.lines)
    assert len(swarmctl("network", "ls", "-q").lines) == 2
    assert {
        n["spec"]["annotations"]["name"] for n in swarmctl("network", "ls", "--format", "json").json()
    } == {
        "front",
        "back",
    }
    n = swarmctl("network", "inspect", "front", "--format", "json").json()
    assert n["id"] == net_id and n["spec"]["driver"] == "overlay"

    assert swarmctl("network", "rm", "front").out.strip() == net_id
    r = swarmctl("network", "inspect", "front")
    assert (r.code, r.err) == (1, "Error: network front not found\n")


def test_network_create_needs_a_name(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl("network", "create")
    assert r.code == 2 and "name" in r.err and fake.calls == []
