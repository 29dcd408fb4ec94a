"""Container start latency: our runtime (executor → supervisor → namespaces, overlayfs,
cgroups → exec) against Debian's `runc run`, on the same unpacked busybox root filesystem,
running `/bin/true` to completion, sequentially."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from agent.image.local import LocalImages
from agent.runtime import cgroups
from agent.runtime.executor import ContainerExecutor
from shoal import ids
from shoal.api import Task
from swarmlab.registry import busybox_tree

RUNS = 20


async def _ours(layer: Path, work: Path, runs: int) -> list[float]:
    parent = f"shoal-bench-{ids.new_id()[:6]}"
    ex = ContainerExecutor(
        work / "ours", "bench", LocalImages(layer, {"Env": ["PATH=/bin"]}), cgroup_parent=parent
    )
    times = []
    try:
        for _ in range(runs):
            t = Task(id=ids.new_id())
            t.spec.container.image = "busybox"
            t.spec.container.args.append("/bin/true")
            c = ex.controller(t)
            await c.prepare()
            start = time.perf_counter()
            await c.start()
            st = await c.wait()
            times.append(time.perf_counter() - start)
            assert st.exit_code == 0, st
            await c.remove()
    finally:
        cgroups.remove_parent(parent)
    return times


def _runc(layer: Path, work: Path, runs: int) -> list[float]:
    bundle = work / "runc"
    bundle.mkdir()
    shutil.copytree(layer, bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    times = []
    for _ in range(runs):
        name = "bench-" + ids.new_id()[:8]
        start = time.perf_counter()
        subprocess.run(["runc", "run", "-b", str(bundle), name], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def samples(runs: int = RUNS) -> tuple[list[float], list[float]]:
    """Start-to-exit times in ms: ours, runc's."""
    if not shutil.which("runc"):
        raise RuntimeError("needs runc (Debian package runc)")
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        layer = work / "layer"
        busybox_tree(layer)
        ours = asyncio.run(_ours(layer, work, runs))
        theirs = _runc(layer, work, runs)
    return [t * 1000 for t in ours], [t * 1000 for t in theirs]
