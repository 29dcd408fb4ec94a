"""From a task spec and an image config to the container's process: argv by OCI rules, the
environment, working dir, user and hostname."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.exec import ExecError
from shoal.api import Task

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def argv(task: Task, image: dict[str, Any]) -> list[str]:
    """spec.command replaces the image's Entrypoint, spec.args its Cmd; a new command drops the
    image's Cmd (as Docker does)."""
    c = task.spec.container
    entrypoint = list(c.command) if c.command else list(image.get("Entrypoint") or [])
    if c.args:
        cmd = list(c.args)
    elif c.command:
        cmd = []
    else:
        cmd = list(image.get("Cmd") or [])
    out = entrypoint + cmd
    if not out:
        raise ExecError("no command: the image has no Entrypoint or Cmd and the service gives none")
    return out


def env(task: Task, image: dict[str, Any]) -> list[str]:
    merged: dict[str, str] = {}
    for e in [DEFAULT_PATH, *(image.get("Env") or []), *task.spec.container.env]:
        key, _, value = e.partition("=")
        merged[key] = value
    merged.setdefault("HOSTNAME", hostname(task))
    return [f"{k}={v}" for k, v in merged.items()]


def hostname(task: Task) -> str:
    return task.spec.container.hostname or task.id[:12]


def _lookup(files: list[Path], name: str, field: int) -> tuple[int, int] | None:
    for f in files:
        try:
            lines = f.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split(":")
            if len(parts) > 3 and parts[0] == name:
                return int(parts[2]), int(parts[3]) if field == 0 else int(parts[2])
    return None


def user(task: Task, image: dict[str, Any], layers: list[Path]) -> tuple[int, int]:
    """uid[:gid], numeric or names from the image's /etc/passwd and /etc/group."""
    spec = task.spec.container.user or str(image.get("User") or "")
    if not spec:
        return 0, 0
    name, _, group = spec.partition(":")
    top_first = list(reversed(layers))
    if name.isdigit():
        uid, gid = int(name), 0
    else:
        found = _lookup([layer / "etc/passwd" for layer in top_first], name, 0)
        if found is None:
            raise ExecError(f"user {name!r} not found in the image's /etc/passwd")
        uid, gid = found
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = _lookup([layer / "etc/group" for layer in top_first], group, 1)
            if g is None:
                raise ExecError(f"group {group!r} not found in the image's /etc/group")
            gid = g[0]
    return uid, gid
