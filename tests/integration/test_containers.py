"""Issue 3 acceptance: real containers on the lab, from the lab's registry."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmlab.testing import running_lab
from tests.integration.cli import Cli, wait_for

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Cli]:
    with running_lab(managers=1, workers=2, executor="container") as lab:
        yield Cli(lab)


def image(cli: Cli, name: str = "busybox:latest") -> str:
    return f"{cli.lab.registry}/{name}"


def in_container(pid: int, *cmd: str) -> str:
    """Run cmd inside a container's namespaces, from the host (the container's PID 1 is pid)."""
    proc = subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", *cmd],
                          capture_output=True, text=True, timeout=10)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def pid_of(task: dict[str, Any]) -> int:
    return int(task["status"]["container_status"]["pid"])


def test_containers_run_isolated(lab: Cli) -> None:
    lab.run(
        "service", "create", "--name", "hello", "--replicas", "3", image(lab),
        "sh", "-c", "echo hi from $(hostname); sleep 1000",
    )  # fmt: skip
    running = lab.running("hello")
    assert len(running) == 3 and len({t["node_id"] for t in running}) >= 2
    assert all("@sha256:" in t["spec"]["container"]["image"] for t in running), "the image is pinned"
    for t in running:
        pid = pid_of(t)
        # PID 1 is the command (busybox sh execs its last command in place: then it is `sleep`).
        assert in_container(pid, "cat", "/proc/1/cmdline").split("\0")[0] in ("sh", "sleep")
        procs = in_container(pid, "ps", "-o", "pid,comm").split()[2:]
        assert procs[0] == "1" and set(procs[1::2]) <= {"sh", "sleep", "ps"}, procs  # nothing of the host
        assert in_container(pid, "hostname").strip() == t["id"][:12]
        root = [
            line for line in in_container(pid, "cat", "/proc/self/mountinfo").splitlines() if " / / " in line
        ]
        assert root and " overlay " in root[0]

    def greetings() -> bool:
        out = lab.run("service", "logs", "hello").stdout
        return all(
            f"hello.{t['slot']}.{t['id']}@" in out and f"hi from {t['id'][:12]}" in out for t in running
        )

    wait_for(greetings, 20, "the three greetings in service logs")
    lab.run("service", "rm", "hello")


def test_memory_limit_ends_oom_killed_and_restarts(lab: Cli) -> None:
    lab.run(
        "service", "create", "--detach", "--name", "hog", "--replicas", "1", "--memory-limit", "32M",
        "--restart-delay", "1s", image(lab), "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1",
    )  # fmt: skip

    def oom_then_restart() -> bool:
        tasks = lab.tasks("hog")
        oom = [t for t in tasks if t["status"]["state"] == "FAILED" and "OOM killed" in t["status"]["err"]]
        return bool(oom) and len(tasks) >= 2

    wait_for(oom_then_restart, 30, "an OOM-killed task and its restart")
    lab.run("service", "rm", "hog")


def test_cpu_and_pids_limits_reach_the_cgroup(lab: Cli) -> None:
    lab.run(
        "service", "create", "--name", "capped", "--replicas", "1", "--cpu-limit", "0.5",
        "--pids-limit", "64", image(lab), "sleep", "1000",
    )  # fmt: skip
    (t,) = lab.running("capped")
    host = lab.hostnames()[t["node_id"]]
    base = Path("/sys/fs/cgroup")
    parent = f"swarmlab-{lab.lab.name}-{host}"
    if (base / "cgroup.controllers").exists():  # v2
        assert (base / parent / t["id"] / "cpu.max").read_text().split() == ["50000", "100000"]
        assert (base / parent / t["id"] / "pids.max").read_text().strip() == "64"
    else:
        assert (base / "cpu" / parent / t["id"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (base / "pids" / parent / t["id"] / "pids.max").read_text().strip() == "64"
    lab.run("service", "rm", "capped")


def test_whiteout_hides_the_deleted_file(lab: Cli) -> None:
    lab.run(
        "service", "create", "--name", "wo", "--replicas", "1", "--no-resolve-image",
        image(lab, "whiteout:latest"),
        "sh", "-c", "test -e /etc/deleteme && echo present || echo absent; sleep 1000",
    )  # fmt: skip
    wait_for(lambda: "absent" in lab.run("service", "logs", "wo").stdout, 20, "the whiteout check")
    assert "present" not in lab.run("service", "logs", "wo").stdout
    (t,) = lab.running("wo")
    assert t["spec"]["container"]["image"] == image(lab, "whiteout:latest"), "--no-resolve-image: not pinned"
    lab.run("service", "rm", "wo")


def test_containers_survive_swarmd_restarts(lab: Cli) -> None:
    # A 4 s outage must not count as a node failure here (that test is in test_failures.py).
    lab.run("cluster", "update", "--heartbeat-period", "3s")
    lab.run("service", "create", "--name", "steady", "--replicas", "4", image(lab), "sleep", "1000")
    lab.run(
        "service", "create", "--detach", "--name", "brief", "--replicas", "1", "--restart-condition", "none",
        "--constraint", "node.hostname==w1", image(lab), "sh", "-c", "sleep 3; exit 7",
    )  # fmt: skip
    wait_for(lambda: [t for t in lab.running("brief")], 20, "brief to run on w1")
    names = lab.hostnames()
    before = {t["id"]: pid_of(t) for t in lab.running("steady") if names[t["node_id"]] == "w1"}
    assert before, "no steady task on w1"

    lab.lab.kill("w1")
    time.sleep(4)  # brief exits (7) while w1's swarmd is down
    lab.lab.start("w1")

    def readopted() -> bool:
        after = {t["id"]: pid_of(t) for t in lab.running("steady") if names[t["node_id"]] == "w1"}
        return after == before

    wait_for(readopted, 30, "w1's containers RUNNING with the same PIDs")
    assert len(lab.running("steady")) == 4
    assert len({t["slot"] for t in lab.running("steady")}) == 4, "no duplicate task"

    def brief_reported() -> bool:
        (t,) = lab.tasks("brief")
        return t["status"]["state"] == "FAILED" and t["status"]["container_status"]["exit_code"] == 7

    wait_for(brief_reported, 30, "the exit code of a container that ended while swarmd was down")
    lab.run("service", "rm", "steady", "brief")
    lab.run("cluster", "update", "--heartbeat-period", "1s")


@pytest.mark.parametrize(
    ("ref", "cause"),
    [
        ("{r}/BusyBox:latest", "invalid image reference"),
        ("{r}/busybox:nope", "nope not found"),
        ("{host}:1/busybox:latest", "unreachable"),  # the registry's host, a closed port
    ],
)
def test_bad_images_are_rejected_with_the_cause(lab: Cli, ref: str, cause: str) -> None:
    name = f"bad{abs(hash(ref)) % 1000}"
    proc = lab.run(
        "service", "create", "--detach", "--name", name, "--replicas", "1",
        ref.format(r=lab.lab.registry, host=lab.lab.registry.split(":")[0]), "sleep", "1",
    )  # fmt: skip
    # The manager could not pin the image: it says so, and the service goes on unpinned.
    assert "warning: image" in proc.stderr and "could not be accessed" in proc.stderr

    def rejected() -> dict[str, Any] | None:
        return next((t for t in lab.tasks(name) if t["status"]["state"] == "REJECTED"), None)

    task = wait_for(rejected, 30, "a REJECTED task")
    assert cause in task["status"]["err"], task["status"]["err"]
    time.sleep(6)  # the restart delay (5 s) is the backoff: a few attempts, not a hot loop
    assert len(lab.tasks(name)) <= 3
    lab.run("service", "rm", name)


def test_service_rm_leaves_nothing_behind(lab: Cli) -> None:
    lab.run("service", "create", "--name", "tidy", "--replicas", "3", image(lab), "sleep", "1000")
    ids = [t["id"] for t in lab.running("tidy")]
    pids = [pid_of(t) for t in lab.running("tidy")]
    lab.run("service", "rm", "tidy")
    wait_for(lambda: not [t for t in lab.tasks() if t["id"] in ids], 40, "tidy's tasks to be removed")
    mounts = Path("/proc/self/mountinfo").read_text()
    cgroup_dirs = [str(p) for p in Path("/sys/fs/cgroup").glob("*/swarmlab-*/*") if p.name in ids]
    bundles = [str(p) for p in lab.lab.dir.glob("hosts/*/state/containers/bundles/*") if p.name in ids]
    assert not any(i in mounts for i in ids)
    assert not cgroup_dirs and not bundles
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
