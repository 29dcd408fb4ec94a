"""swarmctl node ...: ls, inspect, availability, promote/demote, labels, rm."""

from __future__ import annotations

from typing import Any

import click

from shoal.api import NodeRole, control_pb2
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus, RaftMemberStatus
from swarmctl import specs
from swarmctl.client import Client
from swarmctl.output import emit, emit_one, list_options

_AVAILABILITY = {"active": NodeSpec.ACTIVE, "pause": NodeSpec.PAUSE, "drain": NodeSpec.DRAIN}


def _manager_status(n: Any) -> str:
    if n.role != NodeRole.MANAGER:
        return ""
    if n.manager_status.leader:
        return "Leader"
    return RaftMemberStatus.Reachability.Name(n.manager_status.reachability).capitalize()


def _row(n: Any) -> tuple[object, ...]:
    return (
        n.id,
        n.description.hostname,
        NodeStatus.State.Name(n.status.state),
        NodeSpec.Availability.Name(n.spec.availability),
        _manager_status(n),
    )


@click.group("node")
def node() -> None:
    """Manage nodes."""


@node.command("ls")
@list_options
@click.pass_obj
def ls(client: Client, fmt: str, quiet: bool) -> None:
    """List nodes."""
    emit(client.nodes(), fmt, quiet, ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"], _row)


@node.command("inspect")
@click.argument("ref")
@list_options
@click.pass_obj
def inspect(client: Client, ref: str, fmt: str, quiet: bool) -> None:
    """Show one node."""
    n = client.node(ref)
    emit_one(
        n,
        fmt,
        quiet,
        lambda n: [
            ("ID", n.id),
            ("Hostname", n.description.hostname),
            ("Role", NodeRole.Name(n.role).lower()),
            ("Status", NodeStatus.State.Name(n.status.state)),
            ("Message", n.status.message),
            ("Availability", NodeSpec.Availability.Name(n.spec.availability)),
            ("Manager status", _manager_status(n)),
            ("Address", n.status.addr),
            ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(n.spec.annotations.labels.items()))),
        ],
    )


def _update(client: Client, ref: str, change: Any) -> Any:
    n = client.node(ref)
    spec = NodeSpec()
    spec.CopyFrom(n.spec)
    change(spec)
    req = control_pb2.UpdateNodeRequest(node_id=n.id, node_version=n.meta.version, spec=spec)
    return client.call("UpdateNode", req).node


def _availability_command(name: str, value: int) -> None:
    @node.command(name)
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_obj
    def cmd(client: Client, refs: tuple[str, ...]) -> None:
        for ref in refs:
            n = _update(client, ref, lambda s: setattr(s, "availability", value))
            click.echo(n.id)

    cmd.__doc__ = f"Set nodes' availability to {name}."


def _role_command(name: str, role: int) -> None:
    @node.command(name)
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_obj
    def cmd(client: Client, refs: tuple[str, ...]) -> None:
        for ref in refs:
            n = _update(client, ref, lambda s: setattr(s, "desired_role", role))
            click.echo(n.id)

    cmd.__doc__ = f"{name.capitalize()} nodes."


for _name, _value in (("drain", NodeSpec.DRAIN), ("pause", NodeSpec.PAUSE), ("activate", NodeSpec.ACTIVE)):
    _availability_command(_name, _value)
_role_command("promote", NodeRole.MANAGER)
_role_command("demote", NodeRole.WORKER)


@node.command("update")
@click.argument("ref")
@click.option("--label-add", multiple=True, help="KEY=VALUE")
@click.option("--label-rm", multiple=True, help="KEY")
@click.option("--availability", type=click.Choice(sorted(_AVAILABILITY)))
@click.pass_obj
def update(
    client: Client, ref: str, label_add: tuple[str, ...], label_rm: tuple[str, ...], availability: str | None
) -> None:
    """Change a node's labels or availability."""
    add = specs.key_values(label_add, "--label-add")

    def change(s: NodeSpec) -> None:
        labels = s.annotations.labels
        for k in label_rm:
            labels.pop(k, None)
        labels.update(add)
        if availability:
            s.availability = _AVAILABILITY[availability]  # type: ignore[assignment]

    click.echo(_update(client, ref, change).id)


@node.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="remove a node that is not down")
@click.pass_obj
def rm(client: Client, refs: tuple[str, ...], force: bool) -> None:
    """Remove nodes from the cluster."""
    for ref in refs:
        n = client.node(ref)
        client.call("RemoveNode", control_pb2.RemoveNodeRequest(node_id=n.id, force=force))
        click.echo(n.id)
