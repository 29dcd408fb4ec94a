"""`swarmd`: the daemon. Flags follow SwarmKit's swarmd."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import click

from shoal import log as shoal_log
from shoal.errors import ShoalError
from swarmd.config import Config


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-d", "--state-dir", type=click.Path(path_type=Path), default=Path("/var/lib/swarmd"), show_default=True
)
@click.option("--hostname", default=socket.gethostname, show_default="this host's name")
@click.option("--listen-remote-api", default="0.0.0.0:4242", show_default=True, help="gRPC address for nodes")
@click.option("--advertise-remote-api", default="", help="address other nodes reach this one at (host:port)")
@click.option(
    "--listen-control-api",
    type=click.Path(path_type=Path),
    default=Path("/var/run/swarmd.sock"),
    show_default=True,
    help="unix socket for swarmctl",
)
@click.option("--join-addr", default="", help="a manager's remote API address to join through")
@click.option("--join-token", default="", help="the cluster's worker or manager join token")
@click.option("--log-level", default="info", show_default=True)
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True)
@click.option("--executor", type=click.Choice(["container", "test"]), default="container", show_default=True)
@click.option(
    "--cgroup-parent", default="", help="parent cgroup of the containers (default shoal/<hostname>)"
)
def cli(
    state_dir: Path,
    hostname: str,
    listen_remote_api: str,
    advertise_remote_api: str,
    listen_control_api: Path,
    join_addr: str,
    join_token: str,
    log_level: str,
    log_format: str,
    executor: str,
    cgroup_parent: str,
) -> None:
    shoal_log.configure(log_level, log_format)
    if not advertise_remote_api:
        host = listen_remote_api.rsplit(":", 1)[0]
        if host in ("0.0.0.0", "", "::"):
            raise click.UsageError("--advertise-remote-api is required when listening on all addresses")
        advertise_remote_api = listen_remote_api
    if join_addr and not join_token:
        raise click.UsageError("--join-token is required with --join-addr")
    cfg = Config(
        state_dir=state_dir,
        hostname=hostname,
        listen_remote_api=listen_remote_api,
        advertise_remote_api=advertise_remote_api,
        control_socket=listen_control_api,
        join_addr=join_addr,
        join_token=join_token,
        executor=executor,
        cgroup_parent=cgroup_parent,
    )
    from swarmd.daemon import Daemon

    asyncio.run(Daemon(cfg).run())


def _shoal_errors(e: BaseException) -> list[ShoalError]:
    if isinstance(e, ShoalError):
        return [e]
    if isinstance(e, BaseExceptionGroup):
        return [x for sub in e.exceptions for x in _shoal_errors(sub)]
    return []


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(125)
    except (ShoalError, BaseExceptionGroup) as e:
        errors = _shoal_errors(e)
        if not errors:
            raise
        for err in errors:
            print(f"swarmd: {err.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
