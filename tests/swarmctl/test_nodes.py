"""swarmctl node ...: table, JSON contract, resolution by hostname, availability and role changes."""

from __future__ import annotations

import grpc
import pytest
from click.testing import CliRunner

from shoal.api import NodeRole
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus
from swarmctl.main import cli
from tests.swarmctl.conftest import FakeControl, Runner


@pytest.fixture
def nodes(fake: FakeControl) -> dict[str, str]:
    """hostname -> node id"""
    m1 = fake.add_node("m1", node_id="aaa" + "1" * 22, role=NodeRole.MANAGER, leader=True)
    m2 = fake.add_node("m2", node_id="aab" + "2" * 22, role=NodeRole.MANAGER)
    w1 = fake.add_node("w1", node_id="bbb" + "3" * 22)
    w2 = fake.add_node("w2", node_id="ccc" + "4" * 22, state=NodeStatus.DOWN)
    return {n.description.hostname: n.id for n in (m1, m2, w1, w2)}


def test_ls_table(swarmctl: Runner, nodes: dict[str, str]) -> None:
    r = swarmctl("node", "ls")
    assert r.code == 0, r.err
    assert r.lines[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS"]
    rows = {line.split()[1]: line.split() for line in r.lines[2:]}
    assert rows["m1"] == [nodes["m1"], "m1", "READY", "ACTIVE", "Leader"]
    assert rows["m2"] == [nodes["m2"], "m2", "READY", "ACTIVE", "Reachable"]
    assert rows["w1"] == [nodes["w1"], "w1", "READY", "ACTIVE"]
    assert rows["w2"] == [nodes["w2"], "w2", "DOWN", "ACTIVE"]


def test_ls_json_contract(swarmctl: Runner, nodes: dict[str, str]) -> None:
    out = swarmctl("node", "ls", "--format", "json").json()
    assert isinstance(out, list) and len(out) == 4
    by_host = {n["description"]["hostname"]: n for n in out}
    assert by_host["m1"]["manager_status"]["leader"] is True
    assert by_host["m1"]["role"] == "MANAGER"
    # A worker has no manager status, yet the path exists (default values are printed).
    assert by_host["w1"]["manager_status"]["leader"] is False
    assert by_host["w1"]["role"] == "WORKER"
    assert by_host["w1"]["status"]["state"] == "READY"
    assert by_host["w2"]["status"]["state"] == "DOWN"
    assert by_host["w1"]["spec"]["availability"] == "ACTIVE"
    assert by_host["w1"]["id"] == nodes["w1"]


def test_ls_quiet(swarmctl: Runner, nodes: dict[str, str]) -> None:
    assert sorted(swarmctl("node", "ls", "-q").lines) == sorted(nodes.values())


def test_inspect_by_hostname_and_prefix(swarmctl: Runner, nodes: dict[str, str]) -> None:
    for ref in ("w1", "bbb", nodes["w1"]):
        r = swarmctl("node", "inspect", ref, "--format", "json")
        assert r.code == 0, r.err
        assert r.json()["id"] == nodes["w1"]
    assert swarmctl("node", "inspect", "-q", "m2").out.strip() == nodes["m2"]
    table = swarmctl("node", "inspect", "m1").out
    assert "Hostname:" in table and "Leader" in table


def test_ambiguous_and_unknown(fake: FakeControl, swarmctl: Runner, nodes: dict[str, str]) -> None:
    r = swarmctl("node", "inspect", "aa")
    assert r.code == 1 and r.err.startswith("Error: node aa is ambiguous") and len(r.err.splitlines()) == 1
    r = swarmctl("node", "drain", "nope")
    assert (r.code, r.err) == (1, "Error: node nope not found\n")
    assert "UpdateNode" not in fake.calls


@pytest.mark.parametrize(
    ("command", "availability"),
    [("drain", NodeSpec.DRAIN), ("pause", NodeSpec.PAUSE), ("activate", NodeSpec.ACTIVE)],
)
def test_availability(
    fake: FakeControl, swarmctl: Runner, nodes: dict[str, str], command: str, availability: int
) -> None:
    fake.nodes[nodes["w1"]].spec.availability = NodeSpec.PAUSE if command != "pause" else NodeSpec.ACTIVE
    r = swarmctl("node", command, "w1")
    assert r.code == 0, r.err
    assert r.out.strip() == nodes["w1"]
    (req,) = fake.requests["UpdateNode"]
    assert req.node_id == nodes["w1"] and req.node_version.index == 1
    assert req.spec.availability == availability


def test_promote_demote(fake: FakeControl, swarmctl: Runner, nodes: dict[str, str]) -> None:
    assert swarmctl("node", "promote", "w1", "w2").code == 0
    assert fake.nodes[nodes["w1"]].spec.desired_role == NodeRole.MANAGER
    assert fake.nodes[nodes["w2"]].spec.desired_role == NodeRole.MANAGER
    assert swarmctl("node", "demote", "m2").code == 0
    assert fake.nodes[nodes["m2"]].spec.desired_role == NodeRole.WORKER


def test_update_labels_and_availability(fake: FakeControl, swarmctl: Runner, nodes: dict[str, str]) -> None:
    fake.nodes[nodes["w1"]].spec.annotations.labels["old"] = "x"
    r = swarmctl(
        "node", "update", "w1", "--label-add", "zone=a", "--label-add", "disk=ssd", "--label-rm", "old",
        "--availability", "drain",
    )  # fmt: skip
    assert r.code == 0, r.err
    spec = fake.nodes[nodes["w1"]].spec
    assert dict(spec.annotations.labels) == {"zone": "a", "disk": "ssd"}
    assert spec.availability == NodeSpec.DRAIN


def test_update_refuses_bad_label_before_any_rpc(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl("node", "update", "w1", "--label-add", "novalue")
    assert r.code in (1, 2) and len(r.err.splitlines()) == 1 and fake.calls == []
    r = swarmctl("node", "update", "w1", "--availability", "sometimes")
    assert r.code == 2 and fake.calls == []


def test_rm(fake: FakeControl, swarmctl: Runner, nodes: dict[str, str]) -> None:
    r = swarmctl("node", "rm", "w1")
    assert r.code == 1 and r.err == f"Error: node {nodes['w1']} is not down (use --force)\n"
    assert swarmctl("node", "rm", "w2").code == 0
    assert swarmctl("node", "rm", "--force", "w1").code == 0
    assert [q.force for q in fake.requests["RemoveNode"]] == [False, False, True]
    assert set(fake.nodes) == {nodes["m1"], nodes["m2"]}


def test_click_runner_turns_rpc_errors_into_one_line(fake: FakeControl, nodes: dict[str, str]) -> None:
    """The root group itself maps gRPC errors (so it works under CliRunner, standalone mode)."""
    fake.fail["ListNodes"] = (grpc.StatusCode.UNAVAILABLE, "no leader elected yet")
    result = CliRunner().invoke(cli, ["-s", fake.socket, "node", "ls"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "Error: no leader elected yet"


def test_socket_from_environment(
    fake: FakeControl, nodes: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_SOCKET", fake.socket)
    result = CliRunner().invoke(cli, ["node", "ls", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(result.output.split()) == sorted(nodes.values())
