"""The lab's operations on a small real cluster: addresses and isolation, kill/start/stop,
partition/heal, add-worker, a refused join, and the CLI's view."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmlab import control, net
from swarmlab.lab import Lab
from swarmlab.testing import running_lab

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(managers=1, workers=2, executor="test") as lab:
        yield lab


def connect(lab: Lab, src: str, dst_addr: str, port: int = 4242) -> subprocess.CompletedProcess[str]:
    code = f"import socket; socket.create_connection(({dst_addr!r}, {port}), timeout=2).close()"
    return lab.exec(src, PY, "-c", code, timeout=30)


def wait_ready(lab: Lab, host: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if control.node_states(lab.manager_socket()).get(host) == control.READY:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{host} not READY after {timeout}s")


def test_hosts_and_addresses(lab: Lab) -> None:
    assert lab.hosts == ["m1", "w1", "w2"]
    assert [lab.role(h) for h in lab.hosts] == ["manager", "worker", "worker"]
    assert len({lab.addr(h) for h in lab.hosts}) == 3
    assert lab.manager_socket() == lab.socket("m1")
    out = lab.exec("w1", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert f"{lab.addr('w1')}/24" in out
    states = control.node_states(lab.manager_socket())
    assert {h: states.get(h) for h in lab.hosts} == dict.fromkeys(lab.hosts, control.READY)


def test_underlay_is_isolated(lab: Lab) -> None:
    assert connect(lab, "w1", lab.addr("m1")).returncode == 0
    proc = connect(lab, "w1", "192.0.2.1", 80)  # TEST-NET-1: must not even be routable
    assert proc.returncode != 0 and "unreachable" in proc.stderr


def test_partition_and_heal(lab: Lab) -> None:
    lab.partition("w2")
    try:
        assert lab.is_partitioned("w2")
        assert connect(lab, "w2", lab.addr("m1")).returncode != 0
    finally:
        lab.heal("w2")
    assert not lab.is_partitioned("w2")
    assert connect(lab, "w2", lab.addr("m1")).returncode == 0


def test_kill_start_stop(lab: Lab) -> None:
    pid = lab.pid("w1")
    lab.kill("w1")
    assert not lab.is_running("w1")
    lab.start("w1")
    assert lab.is_running("w1") and lab.pid("w1") != pid
    wait_ready(lab, "w1")
    lab.stop("w1")
    assert not lab.is_running("w1")
    lab.start("w1")
    wait_ready(lab, "w1")
    lab.kill("m1")
    lab.start("m1")
    assert control.connectable(lab.socket("m1"))
    wait_ready(lab, "w1")


def test_add_worker(lab: Lab) -> None:
    host = lab.add_worker()
    assert host == "w3" and lab.hosts[-1] == "w3" and lab.is_running("w3")
    assert control.node_states(lab.manager_socket())["w3"] == control.READY


def test_join_with_a_wrong_token_fails_cleanly(lab: Lab) -> None:
    before = net.list_lab_namespaces(lab.name)
    proc = lab.join_attempt("w1", "SWMTKN-1-" + "0" * 50 + "-" + "0" * 25)
    assert proc.returncode != 0
    assert "token" in proc.stderr.lower() and "Traceback" not in proc.stderr, proc.stderr
    assert net.list_lab_namespaces(lab.name) == before  # the temporary host is gone
    assert not (lab.dir / "joins").exists() or not any((lab.dir / "joins").iterdir())


def test_cli_views(lab: Lab) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def swarmlab(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [PY, "-m", "swarmlab", *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=60)

    ls = swarmlab("ls", "--name", lab.name)
    assert ls.returncode == 0 and all(h in ls.stdout for h in lab.hosts), ls.stderr
    out = swarmlab("env", "--name", lab.name).stdout
    assert out.splitlines() == [
        f"export SWARM_SOCKET={lab.manager_socket()}",
        f"export SWARMLAB_REGISTRY={lab.registry}",
    ]
    ex = swarmlab("exec", "--name", lab.name, "w1", "--", "ip", "-o", "-4", "addr", "show", "eth0")
    assert ex.returncode == 0 and lab.addr("w1") in ex.stdout
    bad = swarmlab("kill", "--name", lab.name, "nosuchhost")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and "Traceback" not in bad.stderr
