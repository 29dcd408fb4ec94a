"""`swarmlab down` removes everything `up` made, after a crash too, and is idempotent; a second
`up` refuses and changes nothing.

Most tests build the lab with the low-level steps (network, then every swarmd started on its
own) so they do not depend on the control API; one goes through the real `swarmlab up` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from swarmlab import net, sweep
from swarmlab.lab import Lab
from swarmlab.layout import LabExists
from swarmlab.testing import require_root, unique_name

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab_name() -> Iterator[str]:
    require_root()
    name = unique_name()
    try:
        yield name
    finally:
        Lab(name).down()


def swarmlab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarmlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def namespaces(name: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(net.ns_prefix(name))]


def lab_processes(lab: Lab) -> list[int]:
    marker = str(lab.dir) + "/"
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(p.info["cmdline"] or []):
            found.append(p.pid)
    return found


def assert_gone(lab: Lab) -> None:
    assert namespaces(lab.name) == []
    assert lab_processes(lab) == []
    assert sweep.mounts_under(lab.dir) == []
    assert not lab.dir.exists()
    assert not lab.exists()


def build(name: str, managers: int = 2, workers: int = 1) -> Lab:
    """A lab made of its parts: namespaces + underlay, and one standalone swarmd per host."""
    lab = Lab(name)
    lab._create(managers, workers, "test")
    lab._create_network()
    lab._start_standalone()
    return lab


def test_down_removes_everything(lab_name: str) -> None:
    lab = build(lab_name)
    assert sorted(namespaces(lab_name)) == sorted(net.host_ns(lab_name, h) for h in [*lab.hosts, "ul"])
    assert all(lab.is_running(h) for h in lab.hosts)
    # Something mounted under the lab dir; a process in a host's namespace; and one that left
    # the lab's namespaces but sits in a lab-named cgroup (an orphaned container).
    mnt = lab.dir / "hosts" / "m1" / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    sleeper = subprocess.Popen(
        ["ip", "netns", "exec", lab.netns("w1"), "sleep", "600"], start_new_session=True
    )
    cgroup = sweep.CGROUP_ROOT / "pids" / f"swarmlab-{lab_name}-x"
    orphan = None
    if cgroup.parent.is_dir():
        cgroup.mkdir()
        orphan = subprocess.Popen(["sleep", "600"], start_new_session=True)
        (cgroup / "cgroup.procs").write_text(str(orphan.pid))
    assert sweep.mounts_under(lab.dir) == [mnt]

    lab.down()

    assert_gone(lab)
    assert sleeper.wait(timeout=5) == -9
    if orphan is not None:
        assert orphan.wait(timeout=5) == -9
    assert not cgroup.exists()


def test_down_after_a_crash(lab_name: str) -> None:
    """The process that made the lab dies (SIGKILL): a fresh `down` still finds everything."""
    script = textwrap.dedent(f"""
        import os, signal
        from swarmlab.lab import Lab
        lab = Lab({lab_name!r})
        lab._create(1, 2, "test")
        lab._create_network()
        lab._start_standalone()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=60)
    assert proc.returncode == -9
    lab = Lab(lab_name)
    assert len(namespaces(lab_name)) == 4
    assert lab_processes(lab)

    lab.down()

    assert_gone(lab)


def test_down_is_idempotent(lab_name: str) -> None:
    lab = build(lab_name, managers=1, workers=0)
    lab.down()
    lab.down()
    Lab(lab_name).down()
    assert_gone(lab)
    proc = swarmlab("down", "--name", lab_name)
    assert proc.returncode == 0, proc.stderr


def test_down_of_debris(lab_name: str) -> None:
    """Only a namespace is left (no lab dir): still a lab, still removed."""
    net.create_underlay(lab_name)
    lab = Lab(lab_name)
    assert lab.exists()
    lab.down()
    assert_gone(lab)


def test_second_up_refuses_and_changes_nothing(lab_name: str) -> None:
    lab = build(lab_name, managers=1, workers=1)
    before = (sorted(namespaces(lab_name)), sorted(lab_processes(lab)), lab.info())

    with pytest.raises(LabExists):
        Lab.up(managers=1, workers=1, name=lab_name)
    proc = swarmlab("up", "--managers", "1", "--workers", "0", "--name", lab_name)

    assert proc.returncode == 1
    assert "already exists" in proc.stderr and "Traceback" not in proc.stderr
    assert (sorted(namespaces(lab_name)), sorted(lab_processes(lab)), lab.info()) == before


def test_cli_up_then_down(lab_name: str) -> None:
    """The real path: `swarmlab up` forms a cluster, `swarmlab down` removes it all."""
    proc = swarmlab("up", "--managers", "1", "--workers", "1", "--name", lab_name)
    assert proc.returncode == 0, proc.stderr
    lab = Lab(lab_name)
    assert f"export SWARM_SOCKET={lab.socket('m1')}" in proc.stdout
    assert all(lab.is_running(h) for h in ("m1", "w1"))

    proc = swarmlab("down", "--name", lab_name)

    assert proc.returncode == 0, proc.stderr
    assert_gone(lab)


def test_errors_are_one_line(lab_name: str) -> None:
    for args in (
        ["ls", "--name", lab_name],
        ["kill", "--name", lab_name, "m1"],
        ["down", "--name", "Bad-Name"],
    ):
        proc = swarmlab(*args)
        assert proc.returncode == 1
        assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr, proc.stderr
