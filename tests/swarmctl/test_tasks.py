"""swarmctl task ...: ls with filters, the error column, JSON contract, inspect by ID prefix."""

from __future__ import annotations

import pytest

from shoal.api import Service, TaskState
from tests.swarmctl.conftest import FakeControl, Runner


@pytest.fixture
def web(fake: FakeControl) -> Service:
    fake.add_node("w1", node_id="n1" + "0" * 23)
    fake.add_node("w2", node_id="n2" + "0" * 23)
    return fake.add_service("web", replicas=2)


def test_ls_table_shows_service_node_and_error(fake: FakeControl, swarmctl: Runner, web: Service) -> None:
    err = (
        "no suitable node (scheduling constraints not satisfied on 2 nodes; insufficient resources on 1 node)"
    )
    stuck = fake.add_task(web, 3, state=TaskState.PENDING, err=err)
    r = swarmctl("task", "ls")
    assert r.code == 0, r.err
    assert r.lines[0].split() == ["ID", "NAME", "SERVICE", "NODE", "DESIRED", "STATE", "ERROR"]
    row = next(line for line in r.lines if stuck.id in line)
    assert err in row  # never cut, however long
    assert row.split()[:6] == [stuck.id, "web.3", "web", "RUNNING", "PENDING", "no"]
    running = [line for line in r.lines if " RUNNING " in line and "PENDING" not in line]
    assert {line.split()[3] for line in running} == {"w1", "w2"}


def test_ls_filters(fake: FakeControl, swarmctl: Runner, web: Service) -> None:
    other = fake.add_service("other", replicas=1)
    gone = fake.add_task(web, 9, desired_state=TaskState.SHUTDOWN, state=TaskState.SHUTDOWN)

    ids = set(swarmctl("task", "ls", "-q", "--service", "web").lines)
    assert ids == {t.id for t in fake.tasks.values() if t.service_id == web.id}
    assert gone.id in ids
    assert not ids & {t.id for t in fake.tasks.values() if t.service_id == other.id}

    on_w1 = set(swarmctl("task", "ls", "-q", "--node", "w1").lines)
    assert on_w1 and all(fake.tasks[t].node_id == "n1" + "0" * 23 for t in on_w1)

    shut = swarmctl("task", "ls", "-q", "--desired-state", "shutdown").lines
    assert shut == [gone.id]

    r = swarmctl("task", "ls", "--service", "nope")
    assert (r.code, r.err) == (1, "Error: service nope not found\n")


def test_ls_json_contract(fake: FakeControl, swarmctl: Runner, web: Service) -> None:
    tasks = swarmctl("task", "ls", "--format", "json", "--service", "web").json()
    assert len(tasks) == 2
    for t in tasks:
        assert t["service_id"] == web.id
        assert t["desired_state"] == "RUNNING"
        assert t["status"]["state"] == "RUNNING"
        assert t["status"]["err"] == ""
        assert t["spec"]["container"]["image"] == "busybox"
        assert t["spec"]["container"]["env"] == []
        assert t["status"]["container_status"]["pid"] == 0
        assert t["networks_attachments"] == []
        assert isinstance(t["slot"], int)


def test_inspect_by_prefix_only(fake: FakeControl, swarmctl: Runner, web: Service) -> None:
    t = fake.add_task(web, 5, task_id="zz1" + "0" * 22)
    fake.add_task(web, 6, task_id="zz2" + "0" * 22)
    r = swarmctl("task", "inspect", "zz1", "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["id"] == t.id
    assert swarmctl("task", "inspect", "-q", t.id).out.strip() == t.id
    assert "Desired state:" in swarmctl("task", "inspect", "zz1").out
    r = swarmctl("task", "inspect", "zz")
    assert r.code == 1 and r.err.startswith("Error: task zz is ambiguous")
    # Tasks are not resolved by name.
    r = swarmctl("task", "inspect", "web.5")
    assert (r.code, r.err) == (1, "Error: task web.5 not found\n")
