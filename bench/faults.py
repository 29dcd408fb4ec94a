"""Workloads 4 and 5 on a 3-manager + 2-worker lab with real containers: leader failover (kill
the leader's swarmd, until the next write is accepted) and node failure (kill a worker running
k tasks, until k replacements run elsewhere)."""

from __future__ import annotations

import time
from datetime import timedelta

from bench.poll import poll
from shoal.api import ServiceSpec, TaskState, control_pb2
from shoal.api.types_pb2 import RestartPolicy
from swarmctl.client import Client
from swarmlab.lab import Lab
from swarmlab.testing import running_lab

SWARMKIT_ELECTION_S = 10.0  # SwarmKit's default: ElectionTick 10 x 1 s ticks
REPLICAS = 10


def _client(lab: Lab, host: str) -> Client:
    return Client(str(lab.socket(host)))


def _leader(lab: Lab) -> str:
    c = _client(lab, lab.manager_host())
    try:
        for n in c.nodes():
            if n.manager_status.leader:
                return str(n.description.hostname)
    finally:
        c.close()
    raise RuntimeError("no leader")


def _all_ready(lab: Lab, host: str) -> bool:
    c = _client(lab, host)
    try:
        nodes = c.nodes()
        return len(nodes) == len(lab.hosts) and all(n.status.state == 2 for n in nodes)  # READY
    except Exception:
        return False
    finally:
        c.close()


def _spec(name: str, replicas: int, image: str) -> ServiceSpec:
    spec = ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = image
    spec.task.container.args.extend(["sleep", "100000"])
    spec.task.container.stop_grace_period.FromTimedelta(timedelta(seconds=1))
    spec.task.restart.condition = RestartPolicy.ANY
    spec.replicated.replicas = replicas
    return spec


def failover(lab: Lab, run: int) -> float:
    """Seconds from SIGKILL of the leader to a CreateService accepted via a surviving manager."""
    old = _leader(lab)
    survivor = next(h for h in lab.managers() if h != old)
    c = _client(lab, survivor)
    req = control_pb2.CreateServiceRequest(spec=_spec(f"fo{run}", 0, "busybox"), no_resolve_image=True)
    lab.kill(old)
    start = time.monotonic()

    def written() -> bool:
        try:
            c.call("CreateService", req, timeout=2)
            return True
        except Exception:
            return False

    try:
        end = poll(written, 120, "a write after failover")
    finally:
        c.close()
        lab.start(old)
        # Back, and knowing the new leader: the next run may talk to any manager.
        poll(lambda: all(_all_ready(lab, h) for h in lab.managers()), 120, f"{old} back")
    return end - start


def node_failure(lab: Lab, image: str) -> tuple[float, int]:
    """Seconds from SIGKILL of a worker's swarmd to REPLICAS tasks running on other nodes, and
    k, the number of tasks it ran."""
    m = _leader(lab)
    c = _client(lab, m)
    try:
        sid = c.call(
            "CreateService", control_pb2.CreateServiceRequest(spec=_spec("nf", REPLICAS, image))
        ).service.id
        names = {n.id: str(n.description.hostname) for n in c.nodes()}

        def running() -> list[str]:
            tasks = c.tasks(service_ids=[sid])
            return [
                t.node_id
                for t in tasks
                if t.desired_state == TaskState.RUNNING and t.status.state == TaskState.RUNNING
            ]

        poll(lambda: len(running()) >= REPLICAS, 300, "nf running")
        # The worker with the most tasks (the scheduler spreads them over all five nodes).
        on = running()
        victim = max(lab.workers(), key=lambda h: sum(names.get(n) == h for n in on))
        w1 = next(i for i, h in names.items() if h == victim)
        k = on.count(w1)
        lab.kill(victim)
        start = time.monotonic()
        end = poll(lambda: sum(n != w1 for n in running()) >= REPLICAS, 300, "replacements running")
        lab.start(victim)
        c.call("RemoveService", control_pb2.RemoveServiceRequest(service_id=sid))
        poll(
            lambda: all(t.status.state > TaskState.RUNNING for t in c.tasks(service_ids=[sid])),
            180,
            "nf gone",
        )
        poll(lambda: _all_ready(lab, m), 120, f"{victim} back")
    finally:
        c.close()
    return end - start, k


def run(failovers: int = 3, node_failures: int = 2) -> tuple[list[float], list[float], list[int]]:
    """Node failures first: right after a failover, workers may still be reconnecting to the new
    leader and get no tasks. A run whose victim had no task measures nothing and is repeated."""
    fo: list[float] = []
    nf: list[float] = []
    ks: list[int] = []
    with running_lab(managers=3, workers=2, executor="container") as lab:
        image = f"{lab.registry}/busybox:latest"
        for _ in range(node_failures * 2):
            took, k = node_failure(lab, image)
            if k:
                nf.append(took)
                ks.append(k)
            if len(nf) == node_failures:
                break
        for i in range(failovers):
            fo.append(failover(lab, i))
    return fo, nf, ks
