"""Cgroup v1 and v2 code paths against fake cgroup trees (the files a kernel would show)."""

from __future__ import annotations

from pathlib import Path

from agent.runtime import cgroups


def fake_v2(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_writes_limits_and_enables_controllers(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg")
    assert cgroups.is_v2(root)

    # mkdir of a real cgroup dir makes its interface files; emulate the ones we read
    orig_mkdir = Path.mkdir

    def mkdir(self: Path, *a: object, **k: object) -> None:
        orig_mkdir(self, *a, **k)  # type: ignore[arg-type]
        if not (self / "cgroup.controllers").exists():
            (self / "cgroup.controllers").write_text("cpu memory pids\n")

    Path.mkdir = mkdir  # type: ignore[method-assign]
    try:
        cg = cgroups.for_container("shoal-n1", "task1", root)
        assert isinstance(cg, cgroups.CgroupV2)
        cg.create(cgroups.Limits(memory_bytes=32 << 20, nano_cpus=1_500_000_000, pids=50))
    finally:
        Path.mkdir = orig_mkdir  # type: ignore[method-assign]
    d = root / "shoal-n1" / "task1"
    assert (d / "memory.max").read_text() == str(32 << 20)
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert (d / "pids.max").read_text() == "50"
    assert (root / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (root / "shoal-n1" / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_killed()


def test_v1_writes_limits_per_controller(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    for c in ("memory", "cpu", "pids"):
        (root / c).mkdir(parents=True)
    assert not cgroups.is_v2(root)
    cg = cgroups.for_container("shoal/n1", "task1", root)
    assert isinstance(cg, cgroups.CgroupV1)
    cg.create(cgroups.Limits(memory_bytes=64 << 20, nano_cpus=250_000_000, pids=10))
    assert (root / "memory/shoal/n1/task1/memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (root / "cpu/shoal/n1/task1/cpu.cfs_quota_us").read_text() == "25000"
    assert (root / "cpu/shoal/n1/task1/cpu.cfs_period_us").read_text() == "100000"
    assert (root / "pids/shoal/n1/task1/pids.max").read_text() == "10"
    (root / "memory/shoal/n1/task1/memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
    )
    assert cg.oom_killed()
