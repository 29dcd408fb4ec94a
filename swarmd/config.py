"""swarmd's settings, from its flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    state_dir: Path
    hostname: str
    listen_remote_api: str
    advertise_remote_api: str
    control_socket: Path
    join_addr: str
    join_token: str
    executor: str
    cgroup_parent: str = ""

    @property
    def raft_addr(self) -> str:
        """Raft listens next to the remote API: same host, port + 1."""
        host, port = self.advertise_remote_api.rsplit(":", 1)
        return f"{host}:{int(port) + 1}"
