"""Waiting for a service to converge, with progress, as `docker service create` does."""

from __future__ import annotations

import time
from typing import Any

import click

from manager import constraint
from shoal.api import TaskState, control_pb2
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus, UpdateStatus
from shoal.errors import InvalidSpec
from swarmctl.client import Client

POLL = 0.2


PER_SLOT_LIMIT = 50  # beyond this many slots, only the overall line is shown


def _slots(svc: Any, live: list[Any]) -> dict[str, str]:
    """slot (or node for global services) -> state of its newest task on the current spec"""
    out: dict[str, str] = {}
    for t in sorted(live, key=lambda t: t.meta.created_at.ToNanoseconds()):
        key = str(t.slot) if t.slot else t.node_id[:12]
        state = TaskState.Name(t.status.state).lower() if t.spec == svc.spec.task else "old spec"
        out[key] = state
    return out


def _status(client: Client, svc: Any) -> tuple[int, int, int, list[str], dict[str, str]]:
    """(tasks running the current spec, tasks wanted, tasks desired RUNNING, task errors,
    state per slot)"""
    tasks = client.tasks(service_ids=[svc.id])
    live = [t for t in tasks if t.desired_state == TaskState.RUNNING]
    running = sum(1 for t in live if t.status.state == TaskState.RUNNING and t.spec == svc.spec.task)
    if svc.spec.WhichOneof("mode") == "global":
        desired = max(len({t.node_id for t in live}), len(eligible_nodes(client, svc)))
    else:
        desired = svc.spec.replicated.replicas
    errors = sorted({t.status.err for t in live if t.status.err})
    return running, desired, len(live), errors, _slots(svc, live)


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
    """Until the service runs its current spec everywhere. An update that pauses or rolls back
    (when a rollback was not what was asked) is an error, with the updater's reason."""
    deadline = time.monotonic() + timeout
    shown = ""
    slots_shown: dict[str, str] = {}
    first = client.call("GetService", control_pb2.GetServiceRequest(service_id=service_id)).service
    asked_rollback = first.update_status.state == UpdateStatus.ROLLBACK_STARTED
    while True:
        svc = client.call("GetService", control_pb2.GetServiceRequest(service_id=service_id)).service
        st = svc.update_status
        running, desired, live, errors, slots = _status(client, svc)
        verb = "rolling back" if st.state == UpdateStatus.ROLLBACK_STARTED else "overall progress"
        line = f"{verb}: {running} out of {desired} tasks running the current spec"
        if line != shown:
            click.echo(line, err=True)
            shown = line
        if len(slots) <= PER_SLOT_LIMIT:
            for key, state in sorted(slots.items(), key=lambda kv: (len(kv[0]), kv[0])):
                if slots_shown.get(key) != state:
                    click.echo(f"  {key}/{desired}: {state}", err=True)
                    slots_shown[key] = state
        if st.state in (UpdateStatus.PAUSED, UpdateStatus.ROLLBACK_PAUSED):
            raise click.ClickException(f"service {svc.spec.annotations.name}: {st.message}")
        if st.state == UpdateStatus.ROLLBACK_COMPLETED and not asked_rollback:
            raise click.ClickException(f"service {svc.spec.annotations.name}: {st.message or 'rolled back'}")
        # Converged: every wanted task runs the current spec, and no extra task is still wanted
        # (replicated; a global service's extra tasks are the ones on nodes it no longer fits).
        settled = st.state not in (UpdateStatus.UPDATING, UpdateStatus.ROLLBACK_STARTED)
        if settled and running == desired and (live == desired or svc.spec.WhichOneof("mode") == "global"):
            click.echo("verify: service converged", err=True)
            return
        if time.monotonic() > deadline:
            why = f"; {errors[0]}" if errors else ""
            progress = f"{running}/{desired} running{why}"
            name = svc.spec.annotations.name or service_id
            raise click.ClickException(f"service {name} did not converge within {timeout:g}s ({progress})")
        time.sleep(POLL)
