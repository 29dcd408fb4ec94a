"""swarmctl network ...: create, ls, inspect, rm."""

from __future__ import annotations

import click

from shoal.api import NetworkSpec, control_pb2
from swarmctl.client import Client
from swarmctl.output import emit, emit_one, list_options


@click.group("network")
def network() -> None:
    """Manage overlay networks."""


@network.command("create")
@click.option("--name", required=True)
@click.option("--driver", default="overlay", show_default=True)
@click.option("--subnet", help="CIDR, e.g. 10.10.0.0/24")
@click.option("--attachable", is_flag=True)
@click.pass_obj
def create(client: Client, name: str, driver: str, subnet: str | None, attachable: bool) -> None:
    """Create a network."""
    spec = NetworkSpec(driver=driver, attachable=attachable)
    spec.annotations.name = name
    if subnet:
        spec.ipam.add(subnet=subnet)
    click.echo(client.call("CreateNetwork", control_pb2.CreateNetworkRequest(spec=spec)).network.id)


@network.command("ls")
@list_options
@click.pass_obj
def ls(client: Client, fmt: str, quiet: bool) -> None:
    """List networks."""
    emit(
        client.networks(),
        fmt,
        quiet,
        ["ID", "NAME", "DRIVER", "SUBNET"],
        lambda n: (n.id, n.spec.annotations.name, n.spec.driver, ",".join(i.subnet for i in n.spec.ipam)),
    )


@network.command("inspect")
@click.argument("ref")
@list_options
@click.pass_obj
def inspect(client: Client, ref: str, fmt: str, quiet: bool) -> None:
    """Show one network."""
    emit_one(
        client.network(ref),
        fmt,
        quiet,
        lambda n: [("ID", n.id), ("Name", n.spec.annotations.name), ("Driver", n.spec.driver)],
    )


@network.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def rm(client: Client, refs: tuple[str, ...]) -> None:
    """Remove networks."""
    for ref in refs:
        n = client.network(ref)
        client.call("RemoveNetwork", control_pb2.RemoveNetworkRequest(network_id=n.id))
        click.echo(n.id)
