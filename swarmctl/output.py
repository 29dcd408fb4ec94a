"""Output: tables for humans (rich), protobuf JSON for scripts, IDs with -q."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
from google.protobuf.message import Message
from rich import box
from rich.console import Console
from rich.table import Table

from shoal import protojson

F = TypeVar("F", bound=Callable[..., Any])


def list_options(fn: F) -> F:
    """--format and -q, shared by every ls and inspect."""
    fn = click.option("-q", "--quiet", is_flag=True, help="print IDs only")(fn)
    fn = click.option(
        "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
    )(fn)
    return fn


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for h in headers:
        t.add_column(h, no_wrap=True)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    # Wide enough never to cut a cell (scripts grep the ERROR column); the table is as wide as
    # its content, not as the console.
    Console(width=100_000, soft_wrap=True).print(t)


# Sub-messages that scripts index without checking (DESIGN.md section 5), printed even when unset:
# protobuf JSON leaves out unset message fields, so `n["manager_status"]["leader"]` of a worker
# would otherwise be missing.
_ALWAYS: dict[str, tuple[str, ...]] = {
    "Node": ("spec.annotations", "description", "status", "manager_status"),
    "Task": ("spec.container", "annotations", "status.container_status"),
    "Service": ("spec.annotations", "spec.task.container", "update_status", "endpoint"),
    "Network": ("spec.annotations", "driver_state"),
    "Cluster": ("spec.annotations", "spec.orchestration", "spec.dispatcher", "root_ca.join_tokens"),
}


def for_json(msg: Message) -> Message:
    """A copy of an object ready for --format json: the always-present sub-messages filled in,
    and never a cluster secret."""
    out = type(msg)()
    out.CopyFrom(msg)
    for path in _ALWAYS.get(out.DESCRIPTOR.name, ()):
        m: Any = out
        for part in path.split("."):
            m = getattr(m, part)
        m.SetInParent()
    if "secret" in out.DESCRIPTOR.fields_by_name:
        out.ClearField("secret")
    return out


def _dict(msg: Message) -> dict[str, Any]:
    d = protojson.to_dict(for_json(msg))
    if msg.DESCRIPTOR.name == "Cluster":
        d.pop("secret", None)  # not even empty
    return d


def to_json(obj: Message | Sequence[Message]) -> str:
    if isinstance(obj, Message):
        return json.dumps(_dict(obj), indent=2)
    return json.dumps([_dict(o) for o in obj], indent=2)


def emit(
    objs: Sequence[Message],
    fmt: str,
    quiet: bool,
    headers: Sequence[str],
    row: Callable[[Any], Sequence[object]],
) -> None:
    if quiet:
        for o in objs:
            click.echo(o.id)  # type: ignore[attr-defined]
    elif fmt == "json":
        click.echo(to_json(objs))
    else:
        table(headers, (row(o) for o in objs))


def emit_one(
    obj: Message, fmt: str, quiet: bool, fields: Callable[[Any], Sequence[tuple[str, object]]]
) -> None:
    if quiet:
        click.echo(obj.id)  # type: ignore[attr-defined]
    elif fmt == "json":
        click.echo(to_json(obj))
    else:
        width = max(len(k) for k, _ in fields(obj))
        for k, v in fields(obj):
            click.echo(f"{k + ':':<{width + 2}}{v}")


def enum_name(enum: Any, value: int) -> str:
    return str(enum.Name(value))
