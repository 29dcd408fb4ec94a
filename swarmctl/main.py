"""`swarmctl`: every error is one line on stderr (`Error: ...`) and a non-zero exit status."""

from __future__ import annotations

import os
import sys

import click
import grpc

from swarmctl.client import Client
from swarmctl.cluster import cluster
from swarmctl.networks import network
from swarmctl.nodes import node
from swarmctl.services import service
from swarmctl.tasks import task

DEFAULT_SOCKET = "/var/run/swarmd.sock"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-s",
    "--socket",
    default=lambda: os.environ.get("SWARM_SOCKET", DEFAULT_SOCKET),
    show_default="$SWARM_SOCKET or " + DEFAULT_SOCKET,
    help="a manager's control socket",
)
@click.pass_context
def cli(ctx: click.Context, socket: str) -> None:
    """Drive a shoal cluster."""
    ctx.obj = Client(socket)
    ctx.call_on_close(ctx.obj.close)


for group in (node, service, task, cluster, network):
    cli.add_command(group)


def _rpc_message(e: grpc.RpcError, socket: str) -> str:
    code = e.code()  # type: ignore[attr-defined]
    details = e.details() or code.name  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE and "connect" in details.lower():
        return f"cannot reach a manager at {socket}: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the manager did not answer in time ({details})"
    return str(details).splitlines()[0]


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        sys.exit(1)
    except grpc.RpcError as e:
        click.echo(f"Error: {_rpc_message(e, os.environ.get('SWARM_SOCKET', ''))}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
