"""Waiting for a service to converge, with progress, as `docker service create` does."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from manager import constraint
from shoal.api import TaskState, control_pb2
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus
from shoal.errors import InvalidSpec
from swarmctl.client import Client

POLL = 0.2


def _status(client: Client, service_id: str) -> tuple[int, int, list[str]]:
    svc = client.call("GetService", control_pb2.GetServiceRequest(service_id=service_id)).service
    tasks = client.tasks(service_ids=[service_id])
    live = [t for t in tasks if t.desired_state == TaskState.RUNNING]
    running = sum(1 for t in live if t.status.state == TaskState.RUNNING)
    if svc.spec.WhichOneof("mode") == "global":
        desired = max(len(live), len(eligible_nodes(client, svc)))
    else:
        desired = svc.spec.replicated.replicas
    errors = sorted({t.status.err for t in live if t.status.err})
    return running, desired, errors


def eligible_nodes(client: Client, svc: Any) -> list[Any]:
    """Nodes a global service should run on right now (the orchestrator's rule)."""
    try:
        cons = constraint.parse_all(list(svc.spec.task.placement.constraints))
    except InvalidSpec:
        return []
    return [
        n
        for n in client.nodes()
        if n.status.state == NodeStatus.READY
        and n.spec.availability == NodeSpec.ACTIVE
        and constraint.match_all(cons, n)
    ]


def wait_converged(client: Client, service_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    shown = ""
    tty = sys.stderr.isatty()
    while True:
        running, desired, errors = _status(client, service_id)
        line = f"{running}/{desired} tasks running"
        if line != shown and tty:
            click.echo(f"\roverall progress: {line}", nl=False, err=True)
            shown = line
        if running == desired:
            if tty:
                click.echo("\nverify: service converged", err=True)
            return
        if time.monotonic() > deadline:
            if tty:
                click.echo("", err=True)
            why = f"; {errors[0]}" if errors else ""
            progress = f"{running}/{desired} running{why}"
            raise click.ClickException(
                f"service {service_id} did not converge within {timeout:g}s ({progress})"
            )
        time.sleep(POLL)
