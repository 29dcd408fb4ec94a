"""What a node keeps in its state dir to restart with the same identity."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoal.errors import FailedPrecondition

FILE = "node.json"


@dataclass
class NodeState:
    node_id: str
    node_secret: str
    cluster_id: str
    role: str  # "manager" | "worker"
    managers: list[str] = field(default_factory=list)
    raft_peers: list[str] = field(default_factory=list)
    raft_password: str = ""

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = state_dir / (FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(state_dir / FILE)

    @classmethod
    def load(cls, state_dir: Path) -> NodeState | None:
        path = state_dir / FILE
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise FailedPrecondition(f"corrupt node state {path}: {e}") from e
