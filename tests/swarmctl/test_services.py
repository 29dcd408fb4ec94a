"""swarmctl service ...: the specs it builds, its output, resolution, errors."""

from __future__ import annotations

import grpc
import pytest

from shoal.api import NodeRole, TaskState
from shoal.api.specs_pb2 import PortConfig
from shoal.api.types_pb2 import RestartPolicy
from tests.swarmctl.conftest import FakeControl, Runner


@pytest.fixture(autouse=True)
def _nodes(fake: FakeControl) -> None:
    fake.add_node("m1", role=NodeRole.MANAGER, leader=True)
    fake.add_node("w1")
    fake.add_node("w2")


def test_create_builds_the_spec(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl(
        "service", "create", "--name", "web", "--replicas", "3",
        "--constraint", "node.role==worker", "--constraint", "node.labels.zone!=b",
        "--env", "A=1", "--env", "B=x=y", "--label", "team=blue",
        "--restart-condition", "on-failure", "--restart-delay", "5s", "--restart-max-attempts", "4",
        "--reserve-cpu", "0.5", "--reserve-memory", "64m", "--limit-cpu", "2", "--limit-memory", "1g",
        "--max-replicas-per-node", "2", "--network", "front", "--publish", "8080:80/udp",
        "--command", "/bin/sh -c",
        "-d", "busybox", "sleep", "1000",
    )  # fmt: skip
    assert r.code == 0, r.err
    (req,) = fake.requests["CreateService"]
    spec = req.spec
    assert r.out.strip() == next(iter(fake.services))
    assert spec.annotations.name == "web"
    assert dict(spec.annotations.labels) == {"team": "blue"}
    c = spec.task.container
    assert c.image == "busybox"
    assert list(c.args) == ["sleep", "1000"]
    assert list(c.command) == ["/bin/sh", "-c"]
    assert list(c.env) == ["A=1", "B=x=y"]
    assert spec.WhichOneof("mode") == "replicated" and spec.replicated.replicas == 3
    assert list(spec.task.placement.constraints) == ["node.role==worker", "node.labels.zone!=b"]
    assert spec.task.placement.max_replicas == 2
    assert spec.task.restart.condition == RestartPolicy.ON_FAILURE
    assert spec.task.restart.delay.ToSeconds() == 5
    assert spec.task.restart.max_attempts == 4
    res = spec.task.resources
    assert res.reservations.nano_cpus == 500_000_000
    assert res.reservations.memory_bytes == 64 << 20
    assert res.limits.nano_cpus == 2_000_000_000
    assert res.limits.memory_bytes == 1 << 30
    assert [n.target for n in spec.task.networks] == ["front"]
    (port,) = spec.endpoint.ports
    assert (port.published_port, port.target_port, port.protocol) == (8080, 80, PortConfig.UDP)
    # Detached: it did not wait for the tasks.
    assert "ListTasks" not in fake.calls


def test_create_defaults_and_swarmkit_style_flags(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl("service", "create", "--name", "sk", "--image", "nginx", "--args", "a b", "-d")
    assert r.code == 0, r.err
    spec = fake.requests["CreateService"][0].spec
    assert spec.task.container.image == "nginx"
    assert list(spec.task.container.args) == ["a", "b"]
    assert spec.replicated.replicas == 1
    assert spec.task.restart.condition == RestartPolicy.ANY


def test_create_global(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl("service", "create", "--name", "agent", "--mode", "global", "busybox")
    assert r.code == 0, r.err
    spec = fake.requests["CreateService"][0].spec
    assert spec.WhichOneof("mode") == "global"
    assert "converged" in r.err
    ls = swarmctl("service", "ls")
    assert "3/3" in ls.out and "global" in ls.out


def test_create_waits_for_convergence(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl("service", "create", "--name", "web", "--replicas", "2", "busybox", "sleep", "9")
    assert r.code == 0, r.err
    assert "ListTasks" in fake.calls
    assert "converged" in r.err.splitlines()[-1]


def test_create_times_out(fake: FakeControl, swarmctl: Runner) -> None:
    fake.run_tasks = False
    r = swarmctl("service", "create", "--name", "web", "--replicas", "2", "--timeout", "0.5", "busybox")
    assert r.code == 1
    last = r.err.splitlines()[-1]
    assert last.startswith("Error: service web did not converge within 0.5s (0/2 running"), last
    assert "no suitable node" in last
    assert "Traceback" not in r.err


@pytest.mark.parametrize(
    "flags",
    [
        ["--replicas", "-1"],
        ["--replicas", "x"],
        ["--restart-delay", "5 parsecs"],
        ["--reserve-memory", "lots"],
        ["--reserve-cpu", "half"],
        ["--env", "NOVALUE"],
        ["--label", "=x"],
        ["--publish", "99999:80"],
        ["--mode", "global", "--replicas", "2"],
        ["--mode", "sometimes"],
    ],
)
def test_bad_values_are_refused_before_any_rpc(fake: FakeControl, swarmctl: Runner, flags: list[str]) -> None:
    r = swarmctl("service", "create", "--name", "web", *flags, "busybox")
    assert r.code in (1, 2)
    assert fake.calls == []
    assert len(r.err.splitlines()) == 1 and r.err.startswith("Error: "), r.err
    assert r.out == ""


def test_missing_image_is_refused(fake: FakeControl, swarmctl: Runner) -> None:
    r = swarmctl("service", "create", "--name", "web")
    assert r.code == 2 and "image" in r.err and fake.calls == []


def test_ls_table_json_quiet(fake: FakeControl, swarmctl: Runner) -> None:
    web = fake.add_service("web", replicas=6)
    slow = fake.add_service("slow", replicas=3)
    fake.add_task(slow, 4, desired_state=TaskState.SHUTDOWN, state=TaskState.SHUTDOWN)
    next(t for t in fake.tasks.values() if t.service_id == slow.id).status.state = TaskState.STARTING

    r = swarmctl("service", "ls")
    assert r.code == 0, r.err
    assert r.lines[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE"]
    row = next(line for line in r.lines if web.id in line).split()
    assert row == [web.id, "web", "replicated", "6/6", "busybox"]
    assert "2/3" in next(line for line in r.lines if slow.id in line)

    services = swarmctl("service", "ls", "--format", "json").json()
    assert isinstance(services, list) and len(services) == 2
    s = next(s for s in services if s["id"] == web.id)
    assert s["spec"]["annotations"]["name"] == "web"
    assert int(s["spec"]["mode"]["replicated"]["replicas"]) == 6
    assert s["spec"]["task"]["container"]["image"] == "busybox"
    assert s["update_status"]["state"] == "UNKNOWN"  # default-valued fields are printed

    q = swarmctl("service", "ls", "-q")
    assert sorted(q.lines) == sorted([web.id, slow.id])


def test_inspect_by_name_id_and_prefix(fake: FakeControl, swarmctl: Runner) -> None:
    a = fake.add_service("alpha", service_id="abc" + "1" * 22)
    fake.add_service("beta", service_id="abd" + "2" * 22)
    for ref in ("alpha", a.id, "abc", "abc1"):
        r = swarmctl("service", "inspect", ref, "--format", "json")
        assert r.code == 0, (ref, r.err)
        obj = r.json()
        assert isinstance(obj, dict) and obj["id"] == a.id
    assert swarmctl("service", "inspect", "-q", "alpha").out.strip() == a.id
    table = swarmctl("service", "inspect", "alpha")
    assert "Name:" in table.out and "alpha" in table.out and "1/1" in table.out


def test_ambiguous_prefix(fake: FakeControl, swarmctl: Runner) -> None:
    fake.add_service("alpha", service_id="abc" + "1" * 22)
    fake.add_service("beta", service_id="abd" + "2" * 22)
    r = swarmctl("service", "inspect", "ab")
    assert r.code == 1
    assert r.err.strip().startswith("Error: service ab is ambiguous")
    assert len(r.err.splitlines()) == 1


def test_not_found_is_one_line(fake: FakeControl, swarmctl: Runner) -> None:
    for cmd in (["service", "inspect", "foo"], ["service", "rm", "foo"], ["service", "ps", "foo"]):
        r = swarmctl(*cmd)
        assert r.code == 1
        assert r.err == "Error: service foo not found\n"
        assert r.out == ""


def test_ps_shows_tasks_with_hostnames(fake: FakeControl, swarmctl: Runner) -> None:
    svc = fake.add_service("web", replicas=2)
    fake.add_service("other", replicas=1)
    r = swarmctl("service", "ps", "web")
    assert r.code == 0, r.err
    assert r.lines[0].split() == [
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED",
        "STATE",
        "CURRENT",
        "STATE",
        "ERROR",
    ]
    rows = r.lines[2:]  # under the header and its rule
    assert len(rows) == 2
    assert {row.split()[1] for row in rows} == {"web.1", "web.2"}
    assert all(row.split()[3] in ("m1", "w1", "w2") for row in rows)
    tasks = swarmctl("service", "ps", "web", "--format", "json").json()
    assert {t["service_id"] for t in tasks} == {svc.id}
    assert {t["status"]["state"] for t in tasks} == {"RUNNING"}


def test_rm(fake: FakeControl, swarmctl: Runner) -> None:
    a = fake.add_service("a")
    b = fake.add_service("b")
    r = swarmctl("service", "rm", "a", b.id[:8])
    assert r.code == 0, r.err
    assert r.lines == [a.id, b.id]
    assert fake.services == {}


def test_scale(fake: FakeControl, swarmctl: Runner) -> None:
    a = fake.add_service("a", replicas=2)
    b = fake.add_service("b", replicas=2)
    r = swarmctl("service", "scale", "a=5", "b=0")
    assert r.code == 0, r.err
    assert fake.services[a.id].spec.replicated.replicas == 5
    assert fake.services[b.id].spec.replicated.replicas == 0
    reqs = fake.requests["UpdateService"]
    assert [q.service_version.index for q in reqs] == [1, 1]


def test_scale_refuses_bad_pairs(fake: FakeControl, swarmctl: Runner) -> None:
    for pair in ("a", "a=-1", "a=x"):
        r = swarmctl("service", "scale", pair)
        assert r.code in (1, 2) and r.err.startswith("Error: ") and len(r.err.splitlines()) == 1
    assert fake.calls == []


def test_update(fake: FakeControl, swarmctl: Runner) -> None:
    svc = fake.add_service("web", replicas=2)
    svc.spec.task.container.env.extend(["A=1", "B=2"])
    svc.spec.task.placement.constraints.append("node.role==worker")
    r = swarmctl(
        "service", "update", "web", "--image", "nginx:2", "--args", "x y", "--env-add", "A=9",
        "--constraint-add", "node.hostname!=w2", "--constraint-rm", "node.role==worker",
        "--replicas", "3", "--force", "-d",
    )  # fmt: skip
    assert r.code == 0, r.err
    (req,) = fake.requests["UpdateService"]
    assert req.service_id == svc.id and req.service_version.index == 1
    c = req.spec.task.container
    assert c.image == "nginx:2" and list(c.args) == ["x", "y"]
    assert list(c.env) == ["B=2", "A=9"]
    assert list(req.spec.task.placement.constraints) == ["node.hostname!=w2"]
    assert req.spec.replicated.replicas == 3
    assert req.spec.task.force_update == 1


def test_update_retries_once_on_aborted(fake: FakeControl, swarmctl: Runner) -> None:
    svc = fake.add_service("web", replicas=2)
    fake.abort_updates = 1
    r = swarmctl("service", "update", "web", "--replicas", "4")
    assert r.code == 0, r.err
    versions = [q.service_version.index for q in fake.requests["UpdateService"]]
    assert versions == [1, 2]  # the retry re-read the service
    assert fake.services[svc.id].spec.replicated.replicas == 4


def test_update_refuses_bad_values_before_any_rpc(fake: FakeControl, swarmctl: Runner) -> None:
    fake.add_service("web")
    fake.calls.clear()
    for flags in (["--replicas", "-2"], ["--env-add", "X"], ["--restart-delay", "soon"]):
        r = swarmctl("service", "update", "web", *flags)
        assert r.code in (1, 2) and len(r.err.splitlines()) == 1, r.err
    assert fake.calls == []


def test_grpc_errors_are_one_line(fake: FakeControl, swarmctl: Runner) -> None:
    fake.add_service("web")
    fake.fail["RemoveService"] = (grpc.StatusCode.FAILED_PRECONDITION, "service web is busy\nsecond line")
    r = swarmctl("service", "rm", "web")
    assert (r.code, r.err) == (1, "Error: service web is busy\n")
    r = swarmctl("service", "create", "--name", "web", "-d", "busybox")
    assert r.code == 1 and r.err.startswith("Error: service 'web' already exists")
    assert "Traceback" not in r.err


def test_unreachable_manager(swarmctl: Runner) -> None:
    r = swarmctl("service", "ls", socket="/tmp/swarmctl-nowhere/control.sock")
    assert r.code == 1
    assert r.err.startswith("Error: cannot reach a manager at /tmp/swarmctl-nowhere/control.sock")
    assert len(r.err.splitlines()) == 1
