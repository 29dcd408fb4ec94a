"""`swarmlab`: make, inspect, break and remove a lab of swarmd hosts on this machine."""

from __future__ import annotations

import os
import sys

import click

from shoal import log as shoal_log
from swarmlab import net
from swarmlab.lab import EXECUTORS, Lab
from swarmlab.layout import LAB_ROOT, LabError

CONTEXT = {"help_option_names": ["-h", "--help"]}
name_option = click.option("--name", default="lab", show_default=True, help="the lab's name")


def _open(name: str) -> Lab:
    lab = Lab(name)
    if not lab.exists():
        others = sorted(p.name for p in LAB_ROOT.iterdir() if p.is_dir()) if LAB_ROOT.is_dir() else []
        hint = f" (labs here: {', '.join(others)})" if others else " (start one with `swarmlab up`)"
        raise LabError(f"no lab named {name!r}{hint}")
    return lab


@click.group(context_settings=CONTEXT)
@click.option("--log-level", default="warning", show_default=True, help="swarmlab's own log level")
def cli(log_level: str) -> None:
    """Many swarmd hosts on one machine: one network namespace each, on an isolated underlay."""
    shoal_log.configure(log_level, "console")


@cli.command()
@click.option("--managers", "-m", type=click.IntRange(1, 200), default=3, show_default=True)
@click.option("--workers", "-w", type=click.IntRange(0, 200), default=2, show_default=True)
@click.option("--executor", type=click.Choice(EXECUTORS), default="container", show_default=True)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="seconds to form the cluster")
@name_option
def up(managers: int, workers: int, executor: str, timeout: float, name: str) -> None:
    """Create the lab and join every host into one cluster."""
    if Lab(name).exists():
        raise LabError(f"lab {name!r} already exists; `swarmlab down --name {name}` removes it")
    click.echo(f"lab {name}: starting {managers} manager(s) and {workers} worker(s)...", err=True)
    lab = Lab.up(managers=managers, workers=workers, executor=executor, name=name, timeout=timeout)
    _print_hosts(lab)
    click.echo(f"export SWARM_SOCKET={lab.manager_socket()}")
    click.echo(f"export SWARMLAB_REGISTRY={lab.registry}")


@cli.command()
@name_option
def down(name: str) -> None:
    """Remove everything the lab made (processes, namespaces, mounts, files). Idempotent."""
    Lab(name).down()
    click.echo(f"lab {name}: removed", err=True)


@cli.command("ls")
@name_option
def ls_(name: str) -> None:
    """The lab's hosts: role, address, whether their swarmd runs."""
    _print_hosts(_open(name))


def _print_hosts(lab: Lab) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lab {lab.name} ({lab.executor} executor)", title_justify="left")
    for col in ("HOST", "ROLE", "ADDRESS", "SWARMD", "PID", "LINK"):
        table.add_column(col)
    for host in lab.hosts:
        pid = lab.pid(host)
        link = net.host_link_up(lab.name, host)
        table.add_row(
            host,
            lab.role(host),
            lab.addr(host),
            "running" if pid else "stopped",
            str(pid or "-"),
            {True: "up", False: "partitioned", None: "missing"}[link],
        )
    Console(stderr=False).print(table)


@cli.command()
@name_option
@click.option("--host", default=None, help="a manager (default: the first live one)")
def env(name: str, host: str | None) -> None:
    """Shell lines that point swarmctl at the lab: eval "$(swarmlab env)"."""
    lab = _open(name)
    if host is None:
        try:
            sock = lab.manager_socket()
        except LabError:
            sock = lab.socket(lab.managers()[0])
    else:
        sock = lab.socket(host)
    click.echo(f"export SWARM_SOCKET={sock}")
    click.echo(f"export SWARMLAB_REGISTRY={lab.registry}")


@cli.command(context_settings={"ignore_unknown_options": True, **CONTEXT})
@name_option
@click.argument("host")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec(name: str, host: str, cmd: tuple[str, ...]) -> None:
    """Run CMD inside HOST's network namespace: swarmlab exec m1 -- ip addr."""
    ns = _open(name).netns(host)
    sys.stdout.flush()
    os.execvp("ip", ["ip", "netns", "exec", ns, *cmd])


def _host_command(verb: str, doc: str) -> None:
    @cli.command(verb, help=doc)
    @name_option
    @click.argument("host")
    def command(name: str, host: str) -> None:
        lab = _open(name)
        getattr(lab, verb)(host)
        click.echo(f"{host}: {verb} done", err=True)


_host_command("kill", "SIGKILL HOST's swarmd (and its process group): a crash.")
_host_command("start", "Start HOST's swarmd again on its state dir (it rejoins as the same node).")
_host_command("stop", "SIGTERM HOST's swarmd; SIGKILL after 10 s.")
_host_command("partition", "Cut HOST off the underlay (its link to the bridge goes down).")
_host_command("heal", "Reconnect a partitioned HOST.")


@cli.command("add-worker")
@name_option
def add_worker(name: str) -> None:
    """Create the next wN host and join it as a worker."""
    host = _open(name).add_worker()
    click.echo(host)


@cli.command()
@name_option
@click.option("-n", "--lines", type=int, default=40, show_default=True)
@click.argument("host")
def logs(name: str, lines: int, host: str) -> None:
    """The last lines of HOST's swarmd log."""
    lab = _open(name)
    lab.netns(host)
    path = lab.log_path(host)
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        raise LabError(f"{host} has no log yet ({path})") from None
    click.echo("\n".join(text[-lines:]))


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="swarmlab")
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()  # "Error: ..." (after a usage line for usage errors)
        sys.exit(1)
    except (LabError, net.NetError) as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"Error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
