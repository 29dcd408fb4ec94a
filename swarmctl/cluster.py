"""swarmctl cluster ...: inspect, ls, update."""

from __future__ import annotations

import click

from shoal.api import control_pb2
from shoal.api.specs_pb2 import ClusterSpec
from swarmctl import specs
from swarmctl.client import Client
from swarmctl.output import emit, emit_one, list_options


@click.group("cluster")
def cluster() -> None:
    """Inspect and configure the cluster."""


@cluster.command("ls")
@list_options
@click.pass_obj
def ls(client: Client, fmt: str, quiet: bool) -> None:
    """List clusters (there is one)."""
    emit([client.cluster()], fmt, quiet, ["ID", "NAME"], lambda c: (c.id, c.spec.annotations.name))


@cluster.command("inspect")
@click.argument("ref", required=False)
@list_options
@click.pass_obj
def inspect(client: Client, ref: str | None, fmt: str, quiet: bool) -> None:
    """Show the cluster, with its join tokens."""
    c = client.cluster(ref)
    emit_one(
        c,
        fmt,
        quiet,
        lambda c: [
            ("ID", c.id),
            ("Name", c.spec.annotations.name),
            ("Heartbeat period", c.spec.dispatcher.heartbeat_period.ToTimedelta()),
            ("Task history limit", c.spec.orchestration.task_history_retention_limit),
            ("Worker join token", c.root_ca.join_tokens.worker),
            ("Manager join token", c.root_ca.join_tokens.manager),
        ],
    )


@cluster.command("update")
@click.option("--heartbeat-period")
@click.option("--task-history-limit", type=click.IntRange(min=0))
@click.option("--rotate-worker-token", is_flag=True)
@click.option("--rotate-manager-token", is_flag=True)
@click.pass_obj
def update(
    client: Client,
    heartbeat_period: str | None,
    task_history_limit: int | None,
    rotate_worker_token: bool,
    rotate_manager_token: bool,
) -> None:
    """Change the cluster's settings or rotate its join tokens."""
    period = specs.duration(heartbeat_period, "--heartbeat-period") if heartbeat_period else None
    if period is not None and period.total_seconds() <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--heartbeat-period")
    c = client.cluster()
    spec = ClusterSpec()
    spec.CopyFrom(c.spec)
    if period is not None:
        spec.dispatcher.heartbeat_period.FromTimedelta(period)
    if task_history_limit is not None:
        spec.orchestration.task_history_retention_limit = task_history_limit
    req = control_pb2.UpdateClusterRequest(
        cluster_id=c.id,
        cluster_version=c.meta.version,
        spec=spec,
        rotate_worker_token=rotate_worker_token,
        rotate_manager_token=rotate_manager_token,
    )
    click.echo(client.call("UpdateCluster", req).cluster.id)
