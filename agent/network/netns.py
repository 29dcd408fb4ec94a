"""Network namespaces without fork: swarmd has gRPC threads, so pyroute2's netns helpers (which
fork a child to create or enter a namespace) are out. setns() changes only the calling thread,
so every step "inside" a namespace runs in a short-lived thread of its own that setns'es in,
does its work (netlink sockets it creates there belong to that namespace), and steps back out.

pyroute2 0.9's sync IPRoute keeps its socket per *thread* (it makes a new one in each thread
that uses it), so an IPRoute is only ever used in the thread that made it: `run_in` hands the
function one, made inside the target namespace.

A persistent namespace is a bind mount of /proc/thread-self/ns/net onto a file, as `ip netns
add` does; the file is what the supervisor setns'es into and what `nsenter --net=` takes."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute

from agent.runtime import linux

T = TypeVar("T")
_SELF = "/proc/thread-self/ns/net"


def _enter(path: str) -> int:
    """setns the calling thread into `path`; returns an fd of the namespace it came from."""
    home = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(fd, linux.CLONE_NEWNET)
        finally:
            os.close(fd)
    except BaseException:
        os.close(home)
        raise
    return home


def _leave(home: int) -> None:
    try:
        linux.setns(home, linux.CLONE_NEWNET)
    finally:
        os.close(home)


def _in_thread(fn: Callable[[], T]) -> T:
    """Run fn in a new thread and return (or raise) what it did. If setns back home ever failed,
    only that thread would be stuck in the wrong namespace, and it ends right away."""
    result: list[T] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.append(fn())
        except BaseException as e:
            error.append(e)

    t = threading.Thread(target=work, name="netns", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def run_in(path: str | None, fn: Callable[[IPRoute], T]) -> T:
    """fn(ipr) with an IPRoute of namespace `path` (None: the calling thread's own). Blocking:
    call it through asyncio.to_thread."""

    def work() -> T:
        home = _enter(path) if path else -1
        try:
            with IPRoute() as ipr:
                return fn(ipr)
        finally:
            if home >= 0:
                _leave(home)

    return _in_thread(work) if path else work()


def call_in(path: str, fn: Callable[[], T]) -> T:
    """fn() in a thread inside namespace `path` (for sysctls, sockets: anything but netlink)."""

    def work() -> T:
        home = _enter(path)
        try:
            return fn()
        finally:
            _leave(home)

    return _in_thread(work)


def create(path: Path) -> None:
    """A new, empty network namespace kept alive by a bind mount on `path`. Idempotent: a path
    that already holds a namespace is left as it is."""
    if is_netns(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)

    def work() -> None:
        home = os.open(_SELF, os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.unshare(linux.CLONE_NEWNET)
            try:
                linux.mount(_SELF, str(path), None, linux.MS_BIND)
            finally:
                linux.setns(home, linux.CLONE_NEWNET)
        finally:
            os.close(home)

    _in_thread(work)


def remove(path: Path) -> None:
    """Unmount and delete a namespace file (idempotent). The namespace itself lives on while a
    process is still in it (a container being stopped): it goes with its last process."""
    with contextlib.suppress(OSError):
        linux.umount2(str(path), linux.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def is_netns(path: Path) -> bool:
    """Whether `path` is a mounted network namespace (not just the empty file left behind):
    an nsfs file lives on a device of its own, a plain file on its directory's."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


__all__ = ["call_in", "create", "is_netns", "remove", "run_in"]
