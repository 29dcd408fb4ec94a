"""Inside the new namespaces, before exec: the container's filesystem view, identity and
privileges. Runs in the container's PID 1 (forked by the supervisor) and never returns: it
execs the command or raises."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.runtime import linux
from agent.runtime.bundle import Config

# (name, major, minor), as Docker creates them.
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
MASKED = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]  # fmt: skip
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
INIT_PATH = "/sbin/docker-init"


def _under(root: Path, path: str) -> str:
    return str(root / path.lstrip("/"))


def _mount_dev(root: Path) -> None:
    dev = root / "dev"
    dev.mkdir(exist_ok=True)
    linux.mount("tmpfs", str(dev), "tmpfs", linux.MS_NOSUID | linux.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    (dev / "pts").mkdir()
    linux.mount(
        "devpts", str(dev / "pts"), "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )  # fmt: skip
    os.symlink("pts/ptmx", dev / "ptmx")
    (dev / "shm").mkdir()
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("shm", str(dev / "shm"), "tmpfs", flags, "mode=1777,size=65536k")
    (dev / "mqueue").mkdir()
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, dev / name)


def _mask(root: Path) -> None:
    null = _under(root, "/dev/null")
    for p in MASKED:
        target = Path(_under(root, p))
        if target.is_dir():
            linux.mount("tmpfs", str(target), "tmpfs", linux.MS_RDONLY)
        elif target.exists():
            linux.mount(null, str(target), None, linux.MS_BIND)
    for p in READONLY:
        ro = _under(root, p)
        if os.path.exists(ro):
            linux.mount(ro, ro, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(ro, ro, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC)


def _etc(root: Path, cfg: Config) -> None:
    hostname = cfg.hostname
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "hostname").write_text(hostname + "\n")
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{hostname}\n")
    resolv = etc / "resolv.conf"
    if cfg.resolv_conf:
        # As Docker: the image's file (or a symlink, which would resolve against the host's
        # root before pivot_root) is replaced, in the container's own upper layer.
        if resolv.is_symlink():
            resolv.unlink()
        resolv.touch()
        linux.mount(cfg.resolv_conf, str(resolv), None, linux.MS_BIND)
    elif not resolv.exists():
        resolv.write_text("")


def setup_and_exec(cfg: Config, rootfs: Path) -> None:
    """Called in the new mount/pid/uts/... namespaces, as the container's PID 1."""
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    root = str(rootfs)
    linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)
    proc = rootfs / "proc"
    proc.mkdir(exist_ok=True)
    linux.mount("proc", str(proc), "proc", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV)
    _mount_dev(rootfs)
    sys_dir = rootfs / "sys"
    sys_dir.mkdir(exist_ok=True)
    flags = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("sysfs", str(sys_dir), "sysfs", flags)
    _mask(rootfs)
    _etc(rootfs, cfg)
    argv = list(cfg.argv)
    if cfg.init:
        target = Path(_under(rootfs, INIT_PATH))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
        linux.mount(cfg.init, str(target), None, linux.MS_BIND)
        linux.mount(cfg.init, str(target), None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
        argv = [INIT_PATH, "--", *argv]
    linux.sethostname(cfg.hostname)

    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
    os.makedirs(cfg.cwd, exist_ok=True)
    os.chdir(cfg.cwd)

    # Capabilities first (dropping from the bounding set needs CAP_SETPCAP); switching to a
    # non-root uid then clears what is left, as execve would for a non-root user anyway.
    linux.limit_capabilities(linux.DEFAULT_CAPS)
    os.setgroups(cfg.extra_groups)
    os.setgid(cfg.gid)
    os.setuid(cfg.uid)
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    env = dict(e.split("=", 1) for e in cfg.env if "=" in e)
    os.execvpe(argv[0], argv, env)
