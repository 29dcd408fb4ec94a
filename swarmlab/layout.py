"""What a lab is, as written down: `/run/swarmlab/<name>/lab.json` and the per-host paths.

`lab.json` holds the lab's name, executor, underlay subnet and its hosts (name, role as created,
index, address). Per host, under `hosts/<host>/`: `state/` (swarmd's state dir), `swarmd.sock`,
`swarmd.log`, `swarmd.pid`. Nothing here starts or stops anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from swarmlab import net

LAB_ROOT = Path(os.environ.get("SWARMLAB_ROOT", "/run/swarmlab"))
REMOTE_PORT = 4242  # Raft listens on REMOTE_PORT + 1
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")


class LabError(Exception):
    """Something about the lab is not as asked; the message says what, for a human."""


class LabExists(LabError):
    pass


class LabLayout:
    def __init__(self, name: str = "lab") -> None:
        if not NAME_RE.match(name):
            raise LabError(
                f"invalid lab name {name!r}: use 1-16 of [a-z0-9_], starting with a letter or digit"
            )
        self.name = name
        self.dir = LAB_ROOT / name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ---- description ------------------------------------------------------------------------

    @property
    def _info_path(self) -> Path:
        return self.dir / "lab.json"

    def info(self) -> dict[str, Any]:
        try:
            info: dict[str, Any] = json.loads(self._info_path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab named {self.name!r} (start one with `swarmlab up`)") from None
        except (OSError, ValueError) as e:
            raise LabError(f"cannot read {self._info_path}: {e}") from None
        return info

    def _write_info(self, info: dict[str, Any]) -> None:
        tmp = self._info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(self._info_path)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """lab.json, read and written back under an exclusive lock."""
        self.info()  # a clear error when there is no such lab
        with open(self.dir / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            info = self.info()
            yield info
            self._write_info(info)

    def exists(self) -> bool:
        return self.dir.exists() or bool(net.list_lab_namespaces(self.name))

    @property
    def executor(self) -> str:
        return str(self.info()["executor"])

    @property
    def hosts(self) -> list[str]:
        return [h["name"] for h in self.info()["hosts"]]

    def _host(self, host: str) -> dict[str, Any]:
        for h in self.info()["hosts"]:
            if h["name"] == host:
                return dict(h)
        raise LabError(f"no host {host!r} in lab {self.name!r} (hosts: {', '.join(self.hosts)})")

    def addr(self, host: str) -> str:
        return str(self._host(host)["addr"])

    def remote_api(self, host: str) -> str:
        return f"{self.addr(host)}:{REMOTE_PORT}"

    def netns(self, host: str) -> str:
        self._host(host)
        return net.host_ns(self.name, host)

    def host_dir(self, host: str) -> Path:
        return self.dir / "hosts" / host

    def state_dir(self, host: str) -> Path:
        return self.host_dir(host) / "state"

    def socket(self, host: str) -> Path:
        self._host(host)
        return self.host_dir(host) / "swarmd.sock"

    def log_path(self, host: str) -> Path:
        return self.host_dir(host) / "swarmd.log"

    def _pid_path(self, host: str) -> Path:
        return self.host_dir(host) / "swarmd.pid"

    def role(self, host: str) -> str:
        """The host's role as its state dir says (promotions included), else as created."""
        try:
            role = json.loads((self.state_dir(host) / "node.json").read_text()).get("role")
            if role in ("manager", "worker"):
                return str(role)
        except (OSError, ValueError):
            pass
        return str(self._host(host)["role"])

    def managers(self) -> list[str]:
        return [h for h in self.hosts if self.role(h) == "manager"]

    def workers(self) -> list[str]:
        return [h for h in self.hosts if self.role(h) != "manager"]
