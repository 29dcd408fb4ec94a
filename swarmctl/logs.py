"""swarmctl service logs / task logs: lines streamed from the agents through the managers, each
prefixed with its task and node, as `docker service logs` does."""

from __future__ import annotations

import sys
from typing import Any

import click

from shoal.api import logs_pb2, logs_pb2_grpc
from swarmctl.client import Client


def _tail(value: str) -> int:
    if value == "all":
        return -1
    if not value.isdigit():
        raise click.BadParameter(f"{value!r}: a number of lines or 'all'", param_hint="--tail")
    return int(value)


def stream_logs(
    client: Client, selector: logs_pb2.LogSelector, follow: bool, tail: str, prefix: bool
) -> None:
    stub = logs_pb2_grpc.LogsStub(client.channel)
    req = logs_pb2.SubscribeLogsRequest(
        selector=selector, options=logs_pb2.LogOptions(follow=follow, tail=_tail(tail))
    )
    names: dict[str, str] = {}
    hosts: dict[str, str] = {}

    def label(ctx: Any) -> str:
        if ctx.task_id not in names:
            task = next(iter(client.tasks(id_prefixes=[ctx.task_id])), None)
            names[ctx.task_id] = f"{task.annotations.name}.{ctx.task_id}" if task else ctx.task_id
        if not hosts:
            hosts.update({n.id: n.description.hostname for n in client.nodes()})
        return f"{names[ctx.task_id]}@{hosts.get(ctx.node_id, ctx.node_id)}"

    for batch in stub.SubscribeLogs(req, timeout=None if follow else 60):
        for m in sorted(batch.messages, key=lambda m: m.timestamp.ToNanoseconds()):
            text = m.data.decode(errors="replace")
            out = sys.stderr if m.stream == logs_pb2.LogMessage.STDERR else sys.stdout
            out.write(f"{label(m.context)}    | {text}" if prefix else text)
            if not text.endswith("\n"):
                out.write("\n")
            out.flush()


def log_options(fn: Any) -> Any:
    fn = click.option("--tail", default="all", show_default=True, help="lines from the end of each log")(fn)
    fn = click.option("--no-task-ids", "no_prefix", is_flag=True, help="print the lines only")(fn)
    fn = click.option("-f", "--follow", is_flag=True, help="keep streaming new lines")(fn)
    return fn
