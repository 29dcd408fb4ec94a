"""Real containers on the overlay: a ContainerExecutor per fake host with its NetworkManager.
A busybox httpd on h1 is fetched by name (embedded DNS, /etc/resolv.conf) and through its VIP
from a container on h2; removing the containers removes their namespaces and devices."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from agent.image.local import LocalImages
from agent.runtime import cgroups
from agent.runtime.executor import ContainerController, ContainerExecutor
from shoal import ids
from shoal.api import Task
from swarmlab.registry import busybox_tree
from tests.agent.network.fakehosts import Lab, network, table, task

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
BUSYBOX = Path("/bin/busybox")
NET = network("neta", 4096, "10.0.1.0/24")
VIP = "10.0.1.100"


@pytest.fixture(autouse=True)
def _busybox() -> None:
    if not BUSYBOX.exists():
        pytest.skip("needs Debian's busybox-static")


def container(t: Task, *argv: str) -> Task:
    t.spec.container.image = "busybox"
    t.spec.container.args.extend(argv)
    return t


def in_container(pid: int, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-n", "-p", "sh", "-c", script],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip


async def test_containers_reach_each_other_by_name_and_vip(lab: Lab, tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    busybox_tree(layer)
    parent = f"shoal-test-{ids.new_id()[:8]}"
    execs = {
        name: ContainerExecutor(
            tmp_path / name / "containers",
            name,
            LocalImages(layer),
            cgroup_parent=f"{parent}-{name}",
            network=h.mgr,
        )
        for name, h in lab.hosts.items()
    }
    web = task("w1wwwwwwwwwww", "web", (NET, "10.0.1.5/24"))
    container(
        web, "sh", "-c", "mkdir /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"
    )
    cli = container(task("c1ccccccccccc", "cli", (NET, "10.0.1.6/24")), "sleep", "1000")
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    peers = {"neta": table(NET, [(web, h1, True), (cli, h2, True)], [("web", "web", VIP, [])])}
    made: list[ContainerController] = []
    try:
        for ex in execs.values():
            await ex.set_network_peers(peers)
        for t, ex in ((web, execs["h1"]), (cli, execs["h2"])):
            c = ex.controller(t)
            made.append(c)
            await c.prepare()
            await c.start()
        pid = (await made[1].inspect()).pid
        assert "nameserver 127.0.0.11" in in_container(pid, "cat /etc/resolv.conf").stdout

        async def get(url: str) -> str:
            for _ in range(50):  # httpd may still be starting
                # timeout(1), not wget -T: this busybox's wget segfaults on -T.
                out = await asyncio.to_thread(in_container, pid, f"timeout 3 wget -q -O- {url}")
                if out.returncode == 0:
                    return out.stdout.strip()
                await asyncio.sleep(0.1)
            return out.stderr

        assert await get("http://10.0.1.5/") == "hello-from-web"
        assert await get(f"http://{VIP}/") == "hello-from-web"
        assert await get("http://web/") == "hello-from-web"
    finally:
        for c in made:
            await c.remove()
        for name in execs:
            cgroups.remove_parent(f"{parent}-{name}")
    assert await h1.mgr.links() == [] and await h2.mgr.links() == []
    assert not list((h1.state / "netns").iterdir())
