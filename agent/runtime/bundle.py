"""A container's bundle directory: what the executor decided (config.json) and what the
supervisor reports back (state.json), plus the rootfs mount point, the overlay's upper/work dirs,
the log file and the supervisor's control socket."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class HealthSpec:
    test: list[str]  # argv run inside the container
    interval: float = 30.0  # seconds
    timeout: float = 30.0
    start_period: float = 0.0
    retries: int = 3


@dataclass
class Config:
    task_id: str
    lowerdirs: list[str]  # image layers, bottom first
    argv: list[str]
    env: list[str]
    image_digest: str = ""
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    hostname: str = ""
    cgroup_parent: str = "shoal"
    memory_bytes: int = 0
    nano_cpus: int = 0
    pids_limit: int = 0
    stop_signal: str = "SIGTERM"
    init: str = ""  # host path of an init binary to run as PID 1 (docker run --init)
    extra_groups: list[int] = field(default_factory=list)
    health: HealthSpec | None = None
    # A network namespace file the agent prepared (overlay attachments) to join instead of
    # unsharing a fresh one, and a host file to bind-mount as the container's /etc/resolv.conf.
    netns: str = ""
    resolv_conf: str = ""


@dataclass
class State:
    status: str  # "created" | "running" | "exited"
    pid: int = 0
    supervisor: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    health: str = ""  # "", "starting", "healthy" or "unhealthy"
    health_output: str = ""


class Bundle:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rootfs = path / "rootfs"
        self.upper = path / "upper"
        self.work = path / "work"
        self.log = path / "container.log"
        # Abstract (no file, no path length limit); per network namespace, like the host's swarmd.
        self.socket = "\0shoal-supervisor/" + path.name
        self._config = path / "config.json"
        self._state = path / "state.json"

    def exists(self) -> bool:
        return self._config.exists()

    def write_config(self, cfg: Config) -> None:
        for d in (self.path, self.rootfs, self.upper, self.work):
            d.mkdir(parents=True, exist_ok=True)
        _atomic_write(self._config, asdict(cfg))

    def config(self) -> Config:
        cfg = Config(**json.loads(self._config.read_text()))
        if isinstance(cfg.health, dict):
            cfg.health = HealthSpec(**cfg.health)
        return cfg

    def write_state(self, state: State) -> None:
        _atomic_write(self._state, asdict(state))

    def state(self) -> State | None:
        try:
            return State(**json.loads(self._state.read_text()))
        except (FileNotFoundError, ValueError):
            return None


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
