"""swarmctl service ...: create, ls, inspect, ps, update, scale, rollback, rm."""

from __future__ import annotations

from typing import Any

import click

from shoal.api import ServiceSpec, TaskState, control_pb2, logs_pb2
from shoal.api.types_pb2 import RestartPolicy, UpdateStatus
from swarmctl.client import Client
from swarmctl.converge import wait_converged
from swarmctl.logs import log_options, stream_logs
from swarmctl.output import emit, emit_one, list_options
from swarmctl.serviceflags import apply_create, apply_update, common_options
from swarmctl.tasks import TASK_HEADERS, task_row


@click.group("service")
def service() -> None:
    """Manage services."""


def _mode(svc: Any) -> str:
    return "global" if svc.spec.WhichOneof("mode") == "global" else "replicated"


def _replicas(client: Client, svc: Any, tasks: list[Any] | None = None) -> str:
    tasks = client.tasks(service_ids=[svc.id]) if tasks is None else tasks
    live = [t for t in tasks if t.desired_state == TaskState.RUNNING]
    running = sum(1 for t in live if t.status.state == TaskState.RUNNING)
    desired = len(live) if _mode(svc) == "global" else svc.spec.replicated.replicas
    return f"{running}/{desired}"


def _update_status(svc: Any) -> str:
    st = svc.update_status
    if not st.state:
        return ""
    return f"{UpdateStatus.UpdateState.Name(st.state)}: {st.message}"


@service.command("create", context_settings={"allow_interspersed_args": False})
@click.option("--name", required=True)
@click.option("--image", "image_flag", help="the image (or give it as the first argument)")
@click.option("--replicas", type=int, help="number of tasks (replicated mode)")
@click.option("--mode", type=click.Choice(["replicated", "global"]), default="replicated", show_default=True)
@click.option("--args", "args_flag", help="arguments (space separated), SwarmKit style")
@click.option("--env", "-e", "env", multiple=True, help="KEY=VALUE")
@click.option("--label", "labels", multiple=True, help="service label KEY=VALUE")
@click.option(
    "--constraint", "constraints", multiple=True, help="placement constraint, e.g. node.role==worker"
)
@click.option("--network", "networks", multiple=True)
@click.option(
    "--publish", "-p", "publish", multiple=True, help="PUBLISHED:TARGET[/PROTO] or mode=host,target=80,..."
)
@common_options
@click.option("--no-resolve-image", "no_resolve", is_flag=True, help="do not pin the image to its digest")
@click.argument("words", nargs=-1)
@click.pass_obj
def create(
    client: Client,
    no_resolve: bool,
    name: str,
    image_flag: str | None,
    replicas: int | None,
    mode: str,
    args_flag: str | None,
    words: tuple[str, ...],
    **o: Any,
) -> None:
    """Create a service: swarmctl service create [flags] IMAGE [ARG...]"""
    image = image_flag or (words[0] if words else "")
    args = list(words[1:] if not image_flag else words)
    if args_flag:
        args = args_flag.split()
    if not image:
        raise click.UsageError("an image is required: swarmctl service create [flags] IMAGE [ARG...]")
    if replicas is not None and replicas < 0:
        raise click.BadParameter(f"replicas must be 0 or more (got {replicas})", param_hint="--replicas")
    if mode == "global" and replicas is not None:
        raise click.BadParameter("a global service has no replica count", param_hint="--replicas")
    spec = ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = image
    spec.task.container.args.extend(args)
    if mode == "global":
        getattr(spec, "global").SetInParent()
    else:
        spec.replicated.replicas = 1 if replicas is None else replicas
    # As the docker CLI does: one task at a time unless told otherwise (0 would mean all at
    # once), and restart on any exit unless told otherwise (the proto's zero value is NONE).
    spec.update.parallelism = spec.rollback.parallelism = 1
    spec.task.restart.condition = RestartPolicy.ANY
    apply_create(spec, o)
    resp = client.call(
        "CreateService", control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=no_resolve)
    )
    for w in resp.warnings:
        click.echo(f"warning: {w}", err=True)
    svc = resp.service
    click.echo(svc.id)
    if not o["detach"]:
        wait_converged(client, svc.id, o["timeout"])


@service.command("ls")
@list_options
@click.pass_obj
def ls(client: Client, fmt: str, quiet: bool) -> None:
    """List services."""
    services = client.services()
    tasks = client.tasks() if fmt == "table" and not quiet else []
    by_service: dict[str, list[Any]] = {}
    for t in tasks:
        by_service.setdefault(t.service_id, []).append(t)
    emit(
        services,
        fmt,
        quiet,
        ["ID", "NAME", "MODE", "REPLICAS", "IMAGE"],
        lambda s: (
            s.id,
            s.spec.annotations.name,
            _mode(s),
            _replicas(client, s, by_service.get(s.id, [])),
            s.spec.task.container.image.split("@")[0],
        ),
    )


@service.command("inspect")
@click.argument("ref")
@list_options
@click.pass_obj
def inspect(client: Client, ref: str, fmt: str, quiet: bool) -> None:
    """Show one service."""
    svc = client.service(ref)
    c = svc.spec.task.container
    emit_one(
        svc,
        fmt,
        quiet,
        lambda s: [
            ("ID", s.id),
            ("Name", s.spec.annotations.name),
            ("Mode", _mode(s)),
            ("Replicas", _replicas(client, s)),
            ("Image", c.image),
            ("Args", " ".join(c.args)),
            ("Env", " ".join(c.env)),
            ("Constraints", ", ".join(s.spec.task.placement.constraints)),
            ("Update status", _update_status(s)),
        ],
    )


@service.command("ps")
@click.argument("ref")
@list_options
@click.pass_obj
def ps(client: Client, ref: str, fmt: str, quiet: bool) -> None:
    """List a service's tasks."""
    svc = client.service(ref)
    tasks = client.tasks(service_ids=[svc.id])
    hosts = {n.id: n.description.hostname for n in client.nodes()} if fmt == "table" else {}
    emit(tasks, fmt, quiet, TASK_HEADERS, lambda t: task_row(t, hosts, {svc.id: svc.spec.annotations.name}))


def _update(client: Client, ref: str, change: Any, rollback: bool = False, no_resolve: bool = False) -> Any:
    """Read, change, write; a concurrent update (ABORTED) is retried on a fresh read."""
    import grpc

    for attempt in range(3):
        svc = client.service(ref)
        spec = ServiceSpec()
        spec.CopyFrom(svc.spec)
        change(spec)
        req = control_pb2.UpdateServiceRequest(
            service_id=svc.id, service_version=svc.meta.version, spec=spec, no_resolve_image=no_resolve
        )
        if rollback:
            req.rollback = control_pb2.UpdateServiceRequest.PREVIOUS
        try:
            resp = client.call("UpdateService", req)
            for w in resp.warnings:
                click.echo(f"warning: {w}", err=True)
            return resp.service
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ABORTED or attempt == 2:  # type: ignore[attr-defined]
                raise
    raise AssertionError("unreachable")


@service.command("update")
@click.argument("ref")
@click.option("--replicas", type=int)
@click.option("--image")
@click.option("--args", help="new arguments (space separated)")
@click.option("--env-add", multiple=True, help="KEY=VALUE")
@click.option("--env-rm", multiple=True, help="KEY")
@click.option("--label-add", multiple=True)
@click.option("--label-rm", multiple=True)
@click.option("--constraint-add", multiple=True)
@click.option("--constraint-rm", multiple=True)
@click.option("--network-add", multiple=True)
@click.option("--network-rm", multiple=True)
@click.option("--force", is_flag=True, help="replace every task even if nothing changed")
@click.option("--no-resolve-image", "no_resolve", is_flag=True, help="do not pin the image to its digest")
@common_options
@click.pass_obj
def update(client: Client, ref: str, replicas: int | None, no_resolve: bool, **o: Any) -> None:
    """Change a service; dirty tasks are replaced as its update config says."""
    if replicas is not None and replicas < 0:
        raise click.BadParameter(f"replicas must be 0 or more (got {replicas})", param_hint="--replicas")
    o["replicas"] = replicas
    scratch = ServiceSpec()  # every flag value is checked here, before any RPC
    scratch.replicated.SetInParent()
    apply_update(scratch, o)
    svc = _update(client, ref, lambda spec: apply_update(spec, o), no_resolve=no_resolve)
    click.echo(svc.id)
    if not o["detach"]:
        wait_converged(client, svc.id, o["timeout"])


@service.command("scale")
@click.argument("pairs", nargs=-1, required=True)
@click.option("--detach", "-d", is_flag=True)
@click.option("--timeout", default=300.0, show_default=True)
@click.pass_obj
def scale(client: Client, pairs: tuple[str, ...], detach: bool, timeout: float) -> None:
    """Scale services: swarmctl service scale NAME=REPLICAS..."""
    wanted: list[tuple[str, int]] = []
    for p in pairs:
        ref, sep, count = p.partition("=")
        if not sep or not count.isdigit():
            raise click.BadParameter(f"{p!r}: expected SERVICE=REPLICAS with REPLICAS 0 or more")
        wanted.append((ref, int(count)))
    for name, n in wanted:

        def change(spec: ServiceSpec, name: str = name, n: int = n) -> None:
            if spec.WhichOneof("mode") != "replicated":
                raise click.ClickException(f"{name}: only a replicated service can be scaled")
            spec.replicated.replicas = n

        svc = _update(client, name, change)
        click.echo(f"{name} scaled to {n}")
        if not detach:
            wait_converged(client, svc.id, timeout)


@service.command("rollback")
@click.argument("ref")
@click.option("--detach", "-d", is_flag=True)
@click.option("--timeout", default=300.0, show_default=True)
@click.pass_obj
def rollback(client: Client, ref: str, detach: bool, timeout: float) -> None:
    """Go back to the service's previous spec."""
    svc = _update(client, ref, lambda spec: None, rollback=True)
    click.echo(svc.id)
    if not detach:
        wait_converged(client, svc.id, timeout)


@service.command("logs")
@click.argument("ref")
@log_options
@click.pass_obj
def logs(client: Client, ref: str, follow: bool, no_prefix: bool, tail: str) -> None:
    """Show a service's logs (every task's output)."""
    svc = client.service(ref)
    stream_logs(client, logs_pb2.LogSelector(service_ids=[svc.id]), follow, tail, not no_prefix)


@service.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def rm(client: Client, refs: tuple[str, ...]) -> None:
    """Remove services."""
    for ref in refs:
        svc = client.service(ref)
        client.call("RemoveService", control_pb2.RemoveServiceRequest(service_id=svc.id))
        click.echo(svc.id)
