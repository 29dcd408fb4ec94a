"""The agent's persisted assignments: one file per task in the state dir, so that a restarted
agent knows (and re-adopts) what it was running before it hears from a manager again."""

from __future__ import annotations

import os
from pathlib import Path

from shoal.api import Task


class TaskDB:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "tasks"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, task_id: str) -> Path:
        return self.dir / f"{task_id}.pb"

    def save(self, task: Task) -> None:
        tmp = self.dir / f".{task.id}.tmp"
        tmp.write_bytes(task.SerializeToString())
        os.replace(tmp, self._path(task.id))

    def delete(self, task_id: str) -> None:
        self._path(task_id).unlink(missing_ok=True)

    def load(self) -> list[Task]:
        out = []
        for p in sorted(self.dir.glob("*.pb")):
            try:
                out.append(Task.FromString(p.read_bytes()))
            except Exception:  # a torn file from a crash: the manager re-sends the task
                p.unlink(missing_ok=True)
        return out
