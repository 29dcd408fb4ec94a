"""Real containers from a busybox root filesystem (Debian's busybox-static), through the
executor and its supervisor, without a registry: the image store is a stub here."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.exec import ContainerState
from agent.image.local import LocalImages
from agent.runtime import cgroups
from agent.runtime.executor import ContainerController, ContainerExecutor
from shoal import ids
from shoal.api import Task
from swarmlab.registry import busybox_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
BUSYBOX = Path("/bin/busybox")


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not BUSYBOX.exists():
        pytest.skip("needs Debian's busybox-static")
    layer = tmp_path_factory.mktemp("busybox") / "layer"
    busybox_tree(layer)
    yield layer


@pytest.fixture
async def executor(tmp_path: Path, layer: Path) -> AsyncIterator[ContainerExecutor]:
    ex = ContainerExecutor(
        tmp_path / "containers", "rt-test", LocalImages(layer), cgroup_parent=f"shoal-test-{ids.new_id()[:8]}"
    )
    made: list[ContainerController] = []
    orig = ex.controller

    def track(task: Task) -> ContainerController:
        c = orig(task)
        made.append(c)
        return c

    ex.controller = track  # type: ignore[method-assign]
    try:
        yield ex
    finally:
        for c in made:
            await c.remove()
        cgroups.remove_parent(ex.cgroup_parent)


def task(*args: str, **container: Any) -> Task:
    t = Task(id=ids.new_id())
    t.spec.container.image = "busybox"
    t.spec.container.args.extend(args)
    for k, v in container.items():
        if isinstance(v, list):
            getattr(t.spec.container, k).extend(v)
        else:
            setattr(t.spec.container, k, v)
    return t


async def run(
    ex: ContainerExecutor, t: Task, timeout: float = 20
) -> tuple[ContainerController, ContainerState]:
    c = ex.controller(t)
    await c.prepare()
    await c.start()
    async with asyncio.timeout(timeout):
        st = await c.wait()
    return c, st


async def output(c: ContainerController) -> list[tuple[str, str]]:
    return [(e.stream, e.data) async for e in c.logs(follow=False, tail=-1)]


async def test_isolation_and_output(executor: ContainerExecutor) -> None:
    script = "echo pid=$$; hostname; ps -o pid,comm | wc -l; grep ' / / ' /proc/self/mountinfo; "
    script += "echo oops >&2; exit 3"
    c, st = await run(executor, task("sh", "-c", script, hostname="box1"))
    assert st.exit_code == 3 and st.message == "exit code 3"
    out = await output(c)
    lines = [d.strip() for s, d in out if s == "stdout"]
    assert lines[0] == "pid=1"
    assert lines[1] == "box1"
    assert int(lines[2]) <= 4  # header, sh, ps, wc: nothing of the host
    assert " overlay " in lines[3]
    assert ("stderr", "oops\n") in out


async def test_env_cwd_and_user(executor: ContainerExecutor) -> None:
    t = task(
        "sh", "-c", "echo $GREETING; pwd; id -u; id -g", env=["GREETING=hello"], dir="/tmp", user="nobody"
    )
    c, st = await run(executor, t)
    assert st.exit_code == 0
    assert [d.strip() for _, d in await output(c)] == ["hello", "/tmp", "65534", "65534"]


async def test_memory_limit_oom(executor: ContainerExecutor) -> None:
    t = task("dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1")
    t.spec.resources.limits.memory_bytes = 32 * 1024 * 1024
    _, st = await run(executor, t)
    assert st.oom_killed and st.message == "OOM killed"


async def test_cpu_and_pids_limits_are_written(executor: ContainerExecutor) -> None:
    t = task("sleep", "100")
    t.spec.resources.limits.nano_cpus = 500_000_000
    t.spec.resources.pids_limit = 20
    c = executor.controller(t)
    await c.prepare()
    await c.start()
    cg = cgroups.for_container(executor.cgroup_parent, t.id)
    assert isinstance(cg, cgroups.CgroupV1)
    assert (cg.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cg.dirs["pids"] / "pids.max").read_text().strip() == "20"


async def test_stop_signal_then_kill_after_grace(executor: ContainerExecutor) -> None:
    t = task(
        "sh",
        "-c",
        "trap 'echo got INT; exit 0' INT; trap '' TERM; echo ready; while true; do sleep 0.1; done",
    )
    t.spec.container.stop_signal = "SIGINT"
    c = executor.controller(t)
    await c.prepare()
    await c.start()
    await asyncio.sleep(0.3)
    await c.shutdown(5)
    st = await c.inspect()
    assert not st.running and st.exit_code == 0
    assert ("stdout", "got INT\n") in await output(c)

    t2 = task("sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
    c2 = executor.controller(t2)
    await c2.prepare()
    await c2.start()
    await asyncio.sleep(0.2)
    await c2.shutdown(0.5)
    assert (await c2.inspect()).exit_code == 137


async def test_readoption_and_exit_while_unwatched(executor: ContainerExecutor) -> None:
    t = task("sleep", "1000")
    c = executor.controller(t)
    await c.prepare()
    pid = await c.start()
    again = executor.controller(t)  # what a restarted agent makes
    st = await again.inspect()
    assert st.running and st.pid == pid
    assert await again.start() == pid  # idempotent: no second container

    t2 = task("sh", "-c", "sleep 0.3; exit 7")
    c2 = executor.controller(t2)
    await c2.prepare()
    await c2.start()
    await asyncio.sleep(1.5)  # nobody waits on it meanwhile
    st2 = await executor.controller(t2).inspect()
    assert not st2.running and st2.exit_code == 7


async def test_init_runs_tini_as_pid1(executor: ContainerExecutor) -> None:
    if not Path("/usr/bin/tini-static").exists():
        pytest.skip("needs Debian's tini")
    c, st = await run(executor, task("sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '", init=True))
    assert st.exit_code == 0
    assert (await output(c))[0][1].startswith("/sbin/docker-init -- sh")


async def test_remove_leaves_nothing(executor: ContainerExecutor) -> None:
    t = task("sleep", "1000")
    c = executor.controller(t)
    await c.prepare()
    pid = await c.start()
    await c.remove()
    assert not c.bundle.path.exists()
    assert str(c.bundle.path) not in Path("/proc/self/mountinfo").read_text()
    assert not cgroups.for_container(executor.cgroup_parent, t.id).exists()
    assert not Path(f"/proc/{pid}").exists()


async def test_health_check_gates_running_and_catches_sickness(executor: ContainerExecutor) -> None:
    t = task("sh", "-c", "sleep 1; touch /tmp/ready; sleep 2; rm /tmp/ready; sleep 1000")
    hc = t.spec.container.healthcheck
    hc.test.extend(["CMD-SHELL", "test -e /tmp/ready"])
    hc.interval.FromSeconds(0)
    hc.interval.nanos = 300_000_000
    hc.timeout.FromSeconds(2)
    hc.retries = 2
    hc.start_period.FromSeconds(5)  # early failures (before /tmp/ready) do not count
    c = executor.controller(t)
    await c.prepare()
    await c.start()
    async with asyncio.timeout(10):
        await c.wait_healthy()
    assert (await c.inspect()).running
    async with asyncio.timeout(20):
        st = await c.wait()
    assert st.unhealthy and "container unhealthy" in st.message


async def test_health_check_runs_as_the_container_user(executor: ContainerExecutor) -> None:
    t = task("sleep", "1000", user="nobody")
    hc = t.spec.container.healthcheck
    hc.test.extend(["CMD-SHELL", "test $(id -u) = 65534"])  # healthy only when run as nobody
    hc.interval.nanos = 200_000_000
    hc.retries = 1
    c = executor.controller(t)
    await c.prepare()
    await c.start()
    async with asyncio.timeout(10):
        await c.wait_healthy()


async def test_a_container_without_health_check_that_already_exited_counts_as_started(
    executor: ContainerExecutor,
) -> None:
    """`true` may be gone before the runner asks: that is a clean run, not "exited before it was
    healthy" (which failed restart-policy=any services one run in two)."""
    c = executor.controller(task("true"))
    await c.prepare()
    await c.start()
    async with asyncio.timeout(10):
        st = await c.wait()
    assert st.exit_code == 0
    async with asyncio.timeout(5):
        await c.wait_healthy()
