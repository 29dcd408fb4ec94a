"""Find and remove what a lab left behind: processes, mounts, cgroups, files.

Everything is derived from names and from the lab directory, never from a live `Lab` object, so a
`down` after a crash (of the test, of swarmlab, of the machine's patience) still finds it all:

- processes: those whose network namespace is one of the lab's, whose command line mentions the
  lab directory, or that sit in a cgroup named after the lab, and all their descendants
  (containers leave the host's network namespace);
- cgroups: those the lab's processes sat in when they look like ours (a path segment starting
  with `shoal` or naming the lab), plus any cgroup directory named after the lab;
- mounts: everything mounted at or below the lab directory, deepest first, detached.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from swarmlab import net

CGROUP_ROOT = Path("/sys/fs/cgroup")
MNT_DETACH = 2


def _ns_of(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _protected() -> set[int]:
    """Ourselves and our ancestors: never killed, whatever their command line says."""
    pids = {os.getpid()}
    try:
        pids.update(p.pid for p in psutil.Process().parents())
    except psutil.Error:
        pass
    return pids


def find_processes(
    namespaces: Iterable[tuple[int, int]], markers: Iterable[str], pids: Iterable[int] = ()
) -> list[psutil.Process]:
    """Live processes in one of `namespaces`, whose command line contains one of `markers`, or
    listed in `pids`, with all their descendants."""
    nsids = set(namespaces)
    marks = [m for m in markers if m]
    wanted = set(pids)
    protected = _protected()
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid in protected:
            continue
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if proc.pid in wanted or (nsids and _ns_of(proc.pid) in nsids) or any(m in cmdline for m in marks):
            found[proc.pid] = proc
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                if child.pid not in protected:
                    found.setdefault(child.pid, child)
        except psutil.Error:
            pass
    return [p for p in found.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_all(procs: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """SIGKILL every process (and its process group when it leads one); return the survivors.
    A zombie counts as gone: reaping is for whoever started it (waiting here would steal the exit
    status from its owner's Popen)."""
    for proc in procs:
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def tagged(name: str, tags: Iterable[str]) -> bool:
    """Whether a name is one of the lab's: each tag ends in "-" and matches as a prefix, or
    exactly without its dash ("sl-lab-" matches "sl-lab-m1" and "sl-lab", never "sl-lab2")."""
    return any(name.startswith(t) or name == t.rstrip("-") for t in tags)


def process_cgroups(procs: Iterable[psutil.Process], tags: Iterable[str]) -> set[Path]:
    """The cgroups the processes sit in that look like the lab's: a path segment starting with
    `shoal` or tagged as the lab's (never a system slice, whatever its processes)."""
    hierarchies = _hierarchies()
    tag_list = [t for t in tags if t]
    paths: set[Path] = set()
    for proc in procs:
        try:
            lines = Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            rel = parts[2].strip("/")
            segments = rel.split("/") if rel else []
            if not any(s.startswith("shoal") or tagged(s, tag_list) for s in segments):
                continue
            wanted = set(parts[1].split(",")) if parts[1] else set()
            for opts, mount in hierarchies:
                if (not wanted and opts is None) or (wanted and opts is not None and wanted <= opts):
                    paths.add(mount / rel)
    return paths


def _hierarchies() -> list[tuple[set[str] | None, Path]]:
    """(super options of a v1 hierarchy, or None for v2; mount point) for every cgroup mount."""
    result: list[tuple[set[str] | None, Path]] = []
    for fields in _mountinfo():
        sep = fields.index("-") if "-" in fields else -1
        if sep < 0 or sep + 3 >= len(fields):
            continue
        fstype, super_opts = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            result.append((None, Path(fields[4])))
        elif fstype == "cgroup":
            result.append((set(super_opts.split(",")), Path(fields[4])))
    return result


def named_cgroups(tags: Iterable[str], depth: int = 4) -> set[Path]:
    """Cgroup directories named as the lab's (see `tagged`), searched a few levels deep."""
    tag_list = [t for t in tags if t]
    found: set[Path] = set()

    def walk(d: Path, level: int) -> None:
        if level > depth:
            return
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            p = Path(e.path)
            if tagged(e.name, tag_list):
                found.add(p)
            else:
                walk(p, level + 1)

    if tag_list:
        walk(CGROUP_ROOT, 0)
    return found


def cgroup_pids(paths: Iterable[Path]) -> set[int]:
    """The processes in these cgroups and the cgroups below them (an orphaned container that left
    the host's namespaces and lost its parent is still in its cgroup)."""
    pids: set[int] = set()
    for top in paths:
        for dirpath, _dirs, _files in os.walk(top):
            try:
                text = (Path(dirpath) / "cgroup.procs").read_text()
            except OSError:
                continue
            pids.update(int(x) for x in text.split())
    return pids


def remove_cgroups(paths: Iterable[Path]) -> list[Path]:
    """rmdir each cgroup and everything below it, deepest first; return those that stayed."""
    every: set[Path] = set()
    for top in paths:
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            every.add(Path(dirpath))
    left = []
    for path in sorted(every, key=lambda p: len(p.parts), reverse=True):
        for _ in range(20):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        else:
            left.append(path)
    return left


def _mountinfo() -> list[list[str]]:
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        fields = [_unescape(f) for f in line.split()]
        if len(fields) >= 10:
            rows.append(fields)
    return rows


def _unescape(s: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below root, deepest first."""
    prefix = str(root).rstrip("/")
    points = {Path(f[4]) for f in _mountinfo() if f[4] == prefix or f[4].startswith(prefix + "/")}
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def unmount_under(root: Path) -> list[Path]:
    """Detach every mount at or below root; return those still there."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    for _ in range(5):
        points = mounts_under(root)
        if not points:
            return []
        for p in points:
            libc.umount2(str(p).encode(), MNT_DETACH)
    return mounts_under(root)


def remove_tree(root: Path) -> list[Path]:
    """rm -rf that never crosses into another file system (a mount we failed to detach)."""
    try:
        top = os.lstat(root)
    except FileNotFoundError:
        return []
    skipped: list[Path] = []

    def rm(path: Path, dev: int) -> None:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            path.unlink()
            return
        if st.st_dev != dev:
            skipped.append(path)
            return
        for entry in os.scandir(path):
            rm(Path(entry.path), dev)
        path.rmdir()

    try:
        rm(root, top.st_dev)
    except OSError:
        if not skipped:
            raise
    return skipped


def teardown_lab(name: str, lab_dir: Path, children: Iterable[subprocess.Popen[bytes]] = ()) -> list[str]:
    """Kill the lab's processes, remove its cgroups, mounts, namespaces and directory, all found
    from its name alone. Returns what could not be removed."""
    problems: list[str] = []
    marker = str(lab_dir) + "/"
    tags = [net.ns_prefix(name), f"swarmlab-{name}-"]
    cgroups: set[Path] = set()
    for _ in range(3):  # a dying supervisor may have started something in the meantime
        ids = [i for ns in net.list_lab_namespaces(name) if (i := net.ns_identity(ns))]
        named = named_cgroups(tags)
        procs = find_processes(ids, [marker], cgroup_pids(named))
        if not procs:
            break
        cgroups |= process_cgroups(procs, tags)
        survivors = kill_all(procs)
        for child in children:
            child.poll()
        if survivors:
            problems = [f"processes still alive: {sorted(p.pid for p in survivors)}"]
    left = remove_cgroups(cgroups | named_cgroups(tags))
    if left:
        problems.append(f"cgroups left: {', '.join(map(str, left[:5]))}")
    mounts = unmount_under(lab_dir)
    if mounts:
        problems.append(f"still mounted: {', '.join(map(str, mounts[:5]))}")
    for ns in net.list_lab_namespaces(name):
        try:
            net.remove_namespace(ns)
        except net.NetError as e:
            problems.append(str(e))
    try:
        skipped = remove_tree(lab_dir)
        if skipped:
            problems.append(f"left in place (other file systems): {', '.join(map(str, skipped[:5]))}")
    except OSError as e:
        problems.append(f"cannot remove {lab_dir}: {e}")
    return problems
