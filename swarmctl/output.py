"""Output: tables for humans (rich), protobuf JSON for scripts, IDs with -q."""

from __future__ import annotations

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
    Console(width=250, soft_wrap=True).print(t)


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
        click.echo(protojson.dumps(objs))
    else:
        table(headers, (row(o) for o in objs))


def emit_one(
    obj: Message, fmt: str, quiet: bool, fields: Callable[[Any], Sequence[tuple[str, object]]]
) -> None:
    if quiet:
        click.echo(obj.id)  # type: ignore[attr-defined]
    elif fmt == "json":
        click.echo(protojson.dumps(obj))
    else:
        width = max(len(k) for k, _ in fields(obj))
        for k, v in fields(obj):
            click.echo(f"{k + ':':<{width + 2}}{v}")


def enum_name(enum: Any, value: int) -> str:
    return str(enum.Name(value))
