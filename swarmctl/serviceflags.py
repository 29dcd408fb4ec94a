"""Service flags → ServiceSpec fields. `common_options` are taken by both `service create` and
`service update` (as in docker); the list-valued ones have a plain form on create and
--X-add/--X-rm forms on update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from shoal.api import ServiceSpec
from shoal.api.specs_pb2 import EndpointSpec
from shoal.api.types_pb2 import UpdateConfig
from swarmctl import specs

_FAILURE = {"pause": UpdateConfig.PAUSE, "continue": UpdateConfig.CONTINUE, "rollback": UpdateConfig.ROLLBACK}
_ORDER = {"stop-first": UpdateConfig.STOP_FIRST, "start-first": UpdateConfig.START_FIRST}


def _update_config_options(prefix: str) -> list[Callable[[Any], Any]]:
    actions = ["pause", "continue", "rollback"] if prefix == "update" else ["pause", "continue"]
    p = prefix.replace("-", "_")
    return [
        click.option(f"--{prefix}-parallelism", f"{p}_parallelism", type=click.IntRange(min=0)),
        click.option(f"--{prefix}-delay", f"{p}_delay"),
        click.option(f"--{prefix}-monitor", f"{p}_monitor"),
        click.option(f"--{prefix}-failure-action", f"{p}_failure_action", type=click.Choice(actions)),
        click.option(f"--{prefix}-max-failure-ratio", f"{p}_max_failure_ratio", type=click.FloatRange(0, 1)),
        click.option(f"--{prefix}-order", f"{p}_order", type=click.Choice(list(_ORDER))),
        click.option(f"--{prefix}-task-timeout", f"{p}_task_timeout"),
    ]


def common_options(fn: Any) -> Any:
    opts = [
        click.option("--restart-condition", type=click.Choice(list(specs.RESTART_CONDITIONS))),
        click.option("--restart-delay"),
        click.option("--restart-max-attempts", type=click.IntRange(min=0)),
        click.option("--restart-window"),
        click.option("--reserve-cpu"),
        click.option("--reserve-memory"),
        click.option("--cpu-limit", "--limit-cpu", "cpu_limit"),
        click.option("--memory-limit", "--limit-memory", "memory_limit"),
        click.option("--pids-limit", type=click.IntRange(min=0)),
        click.option("--max-replicas-per-node", type=click.IntRange(min=0)),
        click.option("--stop-grace-period"),
        click.option(
            "--endpoint-mode",
            type=click.Choice(["vip", "dnsrr"]),
            help="how the service name resolves: one virtual IP, or every task's IP",
        ),
        click.option("--stop-signal"),
        click.option("--user", "-u", "user"),
        click.option("--workdir", "-w", "workdir"),
        click.option("--hostname"),
        click.option("--command", "command", help="replaces the image's ENTRYPOINT (space separated)"),
        click.option("--init/--no-init", default=None, help="run an init (tini) as PID 1"),
        click.option("--health-cmd", help="command run in the container; exit 0 means healthy"),
        click.option("--health-interval"),
        click.option("--health-timeout"),
        click.option("--health-retries", type=click.IntRange(min=0)),
        click.option("--health-start-period"),
        click.option("--no-healthcheck", is_flag=True, default=None, help="disable the image's health check"),
        *_update_config_options("update"),
        *_update_config_options("rollback"),
        click.option("--detach", "-d", is_flag=True, help="do not wait for the service to converge"),
        click.option("--timeout", default=300.0, show_default=True, help="seconds to wait for convergence"),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _update_config(cfg: UpdateConfig, o: dict[str, Any], p: str) -> None:
    if o.get(f"{p}_parallelism") is not None:
        cfg.parallelism = o[f"{p}_parallelism"]
    for field in ("delay", "monitor", "task_timeout"):
        if o.get(f"{p}_{field}"):
            flag = f"--{p.replace('_', '-')}-{field.replace('_', '-')}"
            getattr(cfg, field).FromTimedelta(specs.duration(o[f"{p}_{field}"], flag))
    if o.get(f"{p}_failure_action"):
        cfg.failure_action = _FAILURE[o[f"{p}_failure_action"]]
    if o.get(f"{p}_max_failure_ratio") is not None:
        cfg.max_failure_ratio = o[f"{p}_max_failure_ratio"]
    if o.get(f"{p}_order"):
        cfg.order = _ORDER[o[f"{p}_order"]]


def _health(hc: Any, o: dict[str, Any]) -> None:
    if o.get("no_healthcheck"):
        hc.Clear()
        hc.test.append("NONE")
        return
    if o.get("health_cmd"):
        del hc.test[:]
        hc.test.extend(["CMD-SHELL", o["health_cmd"]])
    for field in ("interval", "timeout", "start_period"):
        if o.get(f"health_{field}"):
            flag = f"--health-{field.replace('_', '-')}"
            getattr(hc, field).FromTimedelta(specs.duration(o[f"health_{field}"], flag))
    if o.get("health_retries") is not None:
        hc.retries = o["health_retries"]


def apply_common(spec: ServiceSpec, o: dict[str, Any]) -> None:
    task = spec.task
    c = task.container
    if o.get("endpoint_mode"):
        spec.endpoint.mode = EndpointSpec.DNSRR if o["endpoint_mode"] == "dnsrr" else EndpointSpec.VIP
    if o.get("restart_condition"):
        task.restart.condition = specs.RESTART_CONDITIONS[o["restart_condition"]]
    if o.get("restart_delay"):
        task.restart.delay.FromTimedelta(specs.duration(o["restart_delay"], "--restart-delay"))
    if o.get("restart_max_attempts") is not None:
        task.restart.max_attempts = o["restart_max_attempts"]
    if o.get("restart_window"):
        task.restart.window.FromTimedelta(specs.duration(o["restart_window"], "--restart-window"))
    res = task.resources
    if o.get("reserve_cpu"):
        res.reservations.nano_cpus = specs.cpus(o["reserve_cpu"], "--reserve-cpu")
    if o.get("reserve_memory"):
        res.reservations.memory_bytes = specs.size(o["reserve_memory"], "--reserve-memory")
    if o.get("cpu_limit"):
        res.limits.nano_cpus = specs.cpus(o["cpu_limit"], "--cpu-limit")
    if o.get("memory_limit"):
        res.limits.memory_bytes = specs.size(o["memory_limit"], "--memory-limit")
    if o.get("pids_limit") is not None:
        res.pids_limit = o["pids_limit"]
    if o.get("max_replicas_per_node") is not None:
        task.placement.max_replicas = o["max_replicas_per_node"]
    if o.get("stop_grace_period"):
        c.stop_grace_period.FromTimedelta(specs.duration(o["stop_grace_period"], "--stop-grace-period"))
    for field, key in (
        ("stop_signal", "stop_signal"),
        ("user", "user"),
        ("dir", "workdir"),
        ("hostname", "hostname"),
    ):
        if o.get(key):
            setattr(c, field, o[key])
    if o.get("command"):
        del c.command[:]
        c.command.extend(o["command"].split())
    if o.get("init") is not None:
        c.init = o["init"]
    _health(c.healthcheck, o)
    _update_config(spec.update, o, "update")
    _update_config(spec.rollback, o, "rollback")


def apply_create(spec: ServiceSpec, o: dict[str, Any]) -> None:
    c = spec.task.container
    if o.get("env"):
        c.env.extend(specs.env_list(o["env"]))
    if o.get("labels"):
        spec.annotations.labels.update(specs.key_values(o["labels"], "--label"))
    if o.get("constraints"):
        spec.task.placement.constraints.extend(o["constraints"])
    for net in o.get("networks") or ():
        spec.task.networks.add(target=net)
    for value in o.get("publish") or ():
        spec.endpoint.ports.append(specs.port(value))
    apply_common(spec, o)


def _replace(field: Any, keep: list[Any], add: list[Any]) -> None:
    del field[:]
    field.extend([*keep, *add])


def apply_update(spec: ServiceSpec, o: dict[str, Any]) -> None:
    task = spec.task
    c = task.container
    if o.get("image"):
        c.image = o["image"]
    if o.get("args") is not None:
        _replace(c.args, [], o["args"].split())
    env_add = specs.env_list(o.get("env_add") or ())
    if env_add or o.get("env_rm"):
        drop = {e.partition("=")[0] for e in env_add} | set(o.get("env_rm") or ())
        _replace(c.env, [e for e in c.env if e.partition("=")[0] not in drop], env_add)
    if o.get("constraint_add") or o.get("constraint_rm"):
        rm = set(o.get("constraint_rm") or ())
        kept = [x for x in task.placement.constraints if x not in rm]
        _replace(task.placement.constraints, kept, list(o.get("constraint_add") or ()))
    labels = spec.annotations.labels
    for k in o.get("label_rm") or ():
        labels.pop(k, None)
    labels.update(specs.key_values(o.get("label_add") or (), "--label-add"))
    if o.get("network_add") or o.get("network_rm"):
        rm = set(o.get("network_rm") or ())
        kept_nets = [n for n in task.networks if n.target not in rm]
        del task.networks[:]
        task.networks.extend(kept_nets)
        for net in o.get("network_add") or ():
            task.networks.add(target=net)
    if o.get("replicas") is not None:
        if spec.WhichOneof("mode") != "replicated":
            raise click.ClickException("only a replicated service has replicas")
        spec.replicated.replicas = o["replicas"]
    if o.get("force"):
        task.force_update += 1
    apply_common(spec, o)
