"""Cgroups for one container, v1 (a directory per controller) or v2 (one unified directory).
Both take their filesystem root as a parameter, so both are tested here whatever the host runs.

Limits: memory (bytes), CPU (nano-CPUs → CFS quota over a 100 ms period), pids. The OOM killer's
work is read back from memory.oom_control (v1) or memory.events (v2)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CFS_PERIOD_US = 100_000
ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 0
    nano_cpus: int = 0
    pids: int = 0

    @property
    def cpu_quota_us(self) -> int:
        return max(1000, self.nano_cpus * CFS_PERIOD_US // 1_000_000_000) if self.nano_cpus else 0


class Cgroup(Protocol):
    def create(self, limits: Limits) -> None: ...

    def add(self, pid: int) -> None: ...

    def pids(self) -> list[int]: ...

    def oom_killed(self) -> bool: ...

    def kill_all(self) -> None: ...

    def remove(self) -> None: ...

    def exists(self) -> bool: ...


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def _kill_until_empty(pids: Callable[[], list[int]]) -> None:
    """SIGKILL everything in a cgroup until it is empty (forks may race the first round)."""
    for _ in range(20):
        found = pids()
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _rmdir(path: Path) -> None:
    """A cgroup dir can only go once its last process is reaped: retry briefly."""
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    path.rmdir()


class CgroupV1:
    CONTROLLERS = ("memory", "cpu", "pids")

    def __init__(self, parent: str, name: str, root: Path = ROOT) -> None:
        self.dirs = {c: root / c / parent / name for c in self.CONTROLLERS}

    def exists(self) -> bool:
        return any(d.exists() for d in self.dirs.values())

    def create(self, limits: Limits) -> None:
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        if limits.memory_bytes:
            _write(self.dirs["memory"] / "memory.limit_in_bytes", str(limits.memory_bytes))
        if limits.nano_cpus:
            _write(self.dirs["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(limits.cpu_quota_us))
        if limits.pids:
            _write(self.dirs["pids"] / "pids.max", str(limits.pids))

    def add(self, pid: int) -> None:
        for d in self.dirs.values():
            _write(d / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        return _read_pids(self.dirs["pids"] / "cgroup.procs")

    def oom_killed(self) -> bool:
        try:
            fields = dict(
                line.split() for line in (self.dirs["memory"] / "memory.oom_control").read_text().splitlines()
            )
        except (FileNotFoundError, ValueError):
            return False
        return int(fields.get("oom_kill", "0")) > 0

    def kill_all(self) -> None:
        _kill_until_empty(self.pids)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            _rmdir(d)


class CgroupV2:
    def __init__(self, parent: str, name: str, root: Path = ROOT) -> None:
        self.root = root
        self.parent = root / parent
        self.dir = self.parent / name

    def exists(self) -> bool:
        return self.dir.exists()

    def _enable_controllers(self) -> None:
        # Controllers must be enabled in every ancestor's subtree_control, top down.
        d = self.root
        for part in self.dir.relative_to(self.root).parts[:-1]:
            wanted = [
                c for c in ("memory", "cpu", "pids") if c in (d / "cgroup.controllers").read_text().split()
            ]
            _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
            d = d / part
            d.mkdir(exist_ok=True)
        wanted = [c for c in ("memory", "cpu", "pids") if c in (d / "cgroup.controllers").read_text().split()]
        _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))

    def create(self, limits: Limits) -> None:
        self.parent.mkdir(parents=True, exist_ok=True)
        self._enable_controllers()
        self.dir.mkdir(exist_ok=True)
        if limits.memory_bytes:
            _write(self.dir / "memory.max", str(limits.memory_bytes))
            with contextlib.suppress(FileNotFoundError):
                _write(self.dir / "memory.swap.max", "0")
        if limits.nano_cpus:
            _write(self.dir / "cpu.max", f"{limits.cpu_quota_us} {CFS_PERIOD_US}")
        if limits.pids:
            _write(self.dir / "pids.max", str(limits.pids))

    def add(self, pid: int) -> None:
        _write(self.dir / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        return _read_pids(self.dir / "cgroup.procs")

    def oom_killed(self) -> bool:
        try:
            fields = dict(line.split() for line in (self.dir / "memory.events").read_text().splitlines())
        except (FileNotFoundError, ValueError):
            return False
        return int(fields.get("oom_kill", "0")) > 0

    def kill_all(self) -> None:
        kill = self.dir / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                _write(kill, "1")
        _kill_until_empty(self.pids)

    def remove(self) -> None:
        self.kill_all()
        _rmdir(self.dir)


def is_v2(root: Path = ROOT) -> bool:
    return (root / "cgroup.controllers").exists()


def for_container(parent: str, name: str, root: Path = ROOT) -> Cgroup:
    return CgroupV2(parent, name, root) if is_v2(root) else CgroupV1(parent, name, root)


def remove_parent(parent: str, root: Path = ROOT) -> None:
    """Remove a parent cgroup and every (empty) cgroup below it, deepest first."""
    tops = [root / parent] if is_v2(root) else [root / c / parent for c in CgroupV1.CONTROLLERS]
    for top in tops:
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
