"""`swarmctl`: every error is one line on stderr (`Error: ...`) and a non-zero exit status."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click
import grpc

from swarmctl.client import Client
from swarmctl.cluster import cluster
from swarmctl.networks import network
from swarmctl.nodes import node
from swarmctl.services import service
from swarmctl.tasks import task

DEFAULT_SOCKET = "/var/run/swarmd.sock"


def rpc_message(e: grpc.RpcError, socket: str) -> str:
    """One line for a failed call: the server's message, or what went wrong reaching it."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else None) or code.name
    if code == grpc.StatusCode.UNAVAILABLE and "connect" in details.lower():
        return f"cannot reach a manager at {socket}: {details}".splitlines()[0]
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the manager did not answer in time ({details})".splitlines()[0]
    lines = str(details).splitlines()
    return lines[0] if lines else code.name


class _Group(click.Group):
    """The root group: a gRPC error anywhere below becomes a one-line ClickException (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except grpc.RpcError as e:
            socket = ctx.obj.socket if isinstance(ctx.obj, Client) else ctx.params.get("socket", "")
            raise click.ClickException(rpc_message(e, str(socket))) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-s",
    "--socket",
    default=lambda: os.environ.get("SWARM_SOCKET") or DEFAULT_SOCKET,
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


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status. Errors are printed as one line, never a traceback."""
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None, prog_name="swarmctl", standalone_mode=False
        )
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:
        click.echo(f"Error: {e.format_message()}".splitlines()[0], err=True)
        return 2
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        return e.exit_code
    except grpc.RpcError as e:
        click.echo(f"Error: {rpc_message(e, os.environ.get('SWARM_SOCKET', DEFAULT_SOCKET))}", err=True)
        return 1
    except BrokenPipeError:
        return 1
    return rv if isinstance(rv, int) else 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
