"""swarmctl task ...: ls and inspect."""

from __future__ import annotations

from typing import Any

import click

from shoal.api import TaskState, logs_pb2
from swarmctl.client import Client
from swarmctl.logs import log_options, stream_logs
from swarmctl.output import emit, emit_one, list_options

TASK_HEADERS = ["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"]
_STATES = {name.lower(): value for name, value in TaskState.items()}


def _name(t: Any, services: dict[str, str]) -> str:
    return str(t.annotations.name or f"{services.get(t.service_id, t.service_id)}.{t.slot or t.node_id}")


def task_row(t: Any, hosts: dict[str, str], services: dict[str, str]) -> tuple[object, ...]:
    """A row of `service ps`."""
    return (
        t.id,
        _name(t, services),
        t.spec.container.image.split("@")[0],  # the digest is in --format json
        hosts.get(t.node_id, t.node_id),
        TaskState.Name(t.desired_state),
        TaskState.Name(t.status.state),
        t.status.err,
    )


LS_HEADERS = ["ID", "NAME", "SERVICE", "NODE", "DESIRED", "STATE", "ERROR"]


def ls_row(t: Any, hosts: dict[str, str], services: dict[str, str]) -> tuple[object, ...]:
    """A row of `task ls`: the error column shows why a task is stuck (`no suitable node (...)`)."""
    return (
        t.id,
        _name(t, services),
        services.get(t.service_id, t.service_id),
        hosts.get(t.node_id, t.node_id),
        TaskState.Name(t.desired_state),
        TaskState.Name(t.status.state),
        t.status.err,
    )


@click.group("task")
def task() -> None:
    """Inspect tasks."""


@task.command("ls")
@click.option("--service", "service_ref", help="only this service's tasks")
@click.option("--node", "node_ref", help="only tasks on this node")
@click.option("--desired-state", type=click.Choice(sorted(_STATES)), help="only tasks desired in this state")
@list_options
@click.pass_obj
def ls(
    client: Client,
    service_ref: str | None,
    node_ref: str | None,
    desired_state: str | None,
    fmt: str,
    quiet: bool,
) -> None:
    """List tasks."""
    filters: dict[str, Any] = {}
    if service_ref:
        filters["service_ids"] = [client.service(service_ref).id]
    if node_ref:
        filters["node_ids"] = [client.node(node_ref).id]
    if desired_state:
        filters["desired_states"] = [_STATES[desired_state]]
    tasks = client.tasks(**filters)
    hosts: dict[str, str] = {}
    services: dict[str, str] = {}
    if fmt == "table" and not quiet:
        hosts = {n.id: n.description.hostname for n in client.nodes()}
        services = {s.id: s.spec.annotations.name for s in client.services()}
    emit(tasks, fmt, quiet, LS_HEADERS, lambda t: ls_row(t, hosts, services))


@task.command("logs")
@click.argument("ref")
@log_options
@click.pass_obj
def logs(client: Client, ref: str, follow: bool, no_prefix: bool, tail: str) -> None:
    """Show one task's output."""
    t = client.task(ref)
    stream_logs(client, logs_pb2.LogSelector(task_ids=[t.id]), follow, tail, not no_prefix)


@task.command("inspect")
@click.argument("ref")
@list_options
@click.pass_obj
def inspect(client: Client, ref: str, fmt: str, quiet: bool) -> None:
    """Show one task."""
    t = client.task(ref)
    emit_one(
        t,
        fmt,
        quiet,
        lambda t: [
            ("ID", t.id),
            ("Name", t.annotations.name),
            ("Service", t.service_id),
            ("Slot", t.slot),
            ("Node", t.node_id),
            ("Desired state", TaskState.Name(t.desired_state)),
            ("State", TaskState.Name(t.status.state)),
            ("Message", t.status.message),
            ("Error", t.status.err),
            ("Image", t.spec.container.image),
            ("PID", t.status.container_status.pid),
        ],
    )
