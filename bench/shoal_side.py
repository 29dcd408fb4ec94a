"""shoal's side of the like-for-like workloads: the same calls as the peer's (bench.docker_peer
.Engine), made over the Control API on a lab manager's socket."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bench.poll import poll
from shoal.api import ServiceSpec, TaskState, control_pb2
from shoal.api.types_pb2 import RestartPolicy, UpdateStatus
from swarmctl.client import Client
from swarmlab.lab import Lab


class Shoal:
    def __init__(self, lab: Lab, host: str | None = None) -> None:
        self.lab = lab
        self.client = Client(str(lab.socket(host) if host else lab.manager_socket()))
        self.image = f"{lab.registry}/busybox"

    def close(self) -> None:
        self.client.close()

    def create_service(
        self, name: str, replicas: int, image: str, args: list[str], parallelism: int = 1, monitor: float = 5
    ) -> str:
        spec = ServiceSpec()
        spec.annotations.name = name
        c = spec.task.container
        c.image = image
        c.args.extend(args)
        c.stop_grace_period.FromTimedelta(timedelta(seconds=1))
        spec.replicated.replicas = replicas
        spec.task.restart.condition = RestartPolicy.ANY
        spec.update.parallelism = parallelism
        spec.update.delay.FromTimedelta(timedelta(0))
        spec.update.monitor.FromTimedelta(timedelta(seconds=monitor))
        req = control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True)
        return str(self.client.call("CreateService", req).service.id)

    def service(self, sid: str) -> Any:
        return self.client.call("GetService", control_pb2.GetServiceRequest(service_id=sid)).service

    def update_image(self, sid: str, image: str) -> None:
        svc = self.service(sid)
        spec = svc.spec
        spec.task.container.image = image
        req = control_pb2.UpdateServiceRequest(
            service_id=sid, service_version=svc.meta.version, spec=spec, no_resolve_image=True
        )
        self.client.call("UpdateService", req)

    def update_state(self, sid: str) -> str:
        state = self.service(sid).update_status.state
        return UpdateStatus.UpdateState.Name(state).lower() if state else ""

    def running(self, sid: str) -> int:
        tasks = self.client.tasks(service_ids=[sid])
        return sum(
            t.desired_state == TaskState.RUNNING and t.status.state == TaskState.RUNNING for t in tasks
        )

    def remove_service(self, sid: str) -> None:
        self.client.call("RemoveService", control_pb2.RemoveServiceRequest(service_id=sid))

        def gone() -> bool:
            return all(t.status.state > TaskState.RUNNING for t in self.client.tasks(service_ids=[sid]))

        poll(gone, timeout=180, what="shoal cleanup")
