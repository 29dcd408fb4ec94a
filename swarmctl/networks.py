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
@click.argument("name_arg", metavar="NAME", required=False)
@click.option("--name", help="the network's name (or give it as the argument)")
@click.option("--driver", default="overlay", show_default=True)
@click.option("--subnet", help="CIDR, e.g. 10.10.0.0/24 (default: the next /24 of 10.0.0.0/8)")
@click.option("--gateway", help="the subnet's gateway (default: its first address)")
@click.option("--attachable", is_flag=True)
@click.pass_obj
def create(
    client: Client, name_arg: str | None, name: str | None, driver: str, subnet: str | None,
    gateway: str | None, attachable: bool,
) -> None:  # fmt: skip
    """Create a network: swarmctl network create [--subnet CIDR] NAME"""
    name = name or name_arg
    if not name:
        raise click.UsageError("a network name is required")
    if gateway and not subnet:
        raise click.BadParameter("a gateway needs a --subnet", param_hint="--gateway")
    spec = NetworkSpec(driver=driver, attachable=attachable)
    spec.annotations.name = name
    if subnet:
        spec.ipam.add(subnet=subnet, gateway=gateway or "")
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
        ["ID", "NAME", "DRIVER", "SUBNET", "VNI"],
        lambda n: (
            n.id,
            n.spec.annotations.name,
            n.spec.driver,
            ",".join(i.subnet for i in n.ipam),
            n.driver_state.options.get("vni", ""),
        ),
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
        lambda n: [
            ("ID", n.id),
            ("Name", n.spec.annotations.name),
            ("Driver", n.spec.driver),
            ("Subnet", ",".join(i.subnet for i in n.ipam)),
            ("Gateway", ",".join(i.gateway for i in n.ipam)),
            ("VNI", n.driver_state.options.get("vni", "")),
        ],
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
