"""OCI command semantics, environment and users: task spec + image config → process."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.exec import ExecError
from agent.runtime import spec
from shoal.api import Task


def task(command: list[str] | None = None, args: list[str] | None = None, **kw: str) -> Task:
    t = Task(id="abcdefghijklmnopqrstuvwxy")
    t.spec.container.command.extend(command or [])
    t.spec.container.args.extend(args or [])
    for k, v in kw.items():
        setattr(t.spec.container, k, v)
    return t


IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["serve"], "Env": ["PATH=/bin", "A=image"], "User": "nobody"}


@pytest.mark.parametrize(
    ("command", "args", "argv"),
    [
        (None, None, ["/entry", "serve"]),
        (None, ["other"], ["/entry", "other"]),
        (["/bin/sh"], None, ["/bin/sh"]),  # a new entrypoint drops the image's Cmd
        (["/bin/sh"], ["-c", "x"], ["/bin/sh", "-c", "x"]),
    ],
)
def test_argv(command: list[str] | None, args: list[str] | None, argv: list[str]) -> None:
    assert spec.argv(task(command, args), IMAGE) == argv


def test_no_command_at_all_is_an_error() -> None:
    with pytest.raises(ExecError, match="no command"):
        spec.argv(task(), {})


def test_env_merges_with_the_spec_winning() -> None:
    t = task()
    t.spec.container.env.extend(["A=spec", "B=2"])
    env = dict(e.split("=", 1) for e in spec.env(t, IMAGE))
    assert env["A"] == "spec" and env["B"] == "2" and env["PATH"] == "/bin"
    assert env["HOSTNAME"] == "abcdefghijkl" == spec.hostname(t)


def test_users_by_name_and_number(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n")
    (tmp_path / "etc" / "group").write_text("staff:x:50:\n")
    assert spec.user(task(), IMAGE, [tmp_path]) == (65534, 65533)
    assert spec.user(task(user="1000:staff"), IMAGE, [tmp_path]) == (1000, 50)
    assert spec.user(task(user="0"), {}, [tmp_path]) == (0, 0)
    with pytest.raises(ExecError, match="not found"):
        spec.user(task(user="ghost"), {}, [tmp_path])
