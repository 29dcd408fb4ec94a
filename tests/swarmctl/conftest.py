"""An in-process fake Control server on a unix socket, and a runner for the swarmctl CLI.

The fake keeps dicts of objects, applies ListFilters as the real control API does (names match a
node's hostname too), checks versions on updates (ABORTED on a stale one), records every call and
request, and, unless told otherwise, makes a service's tasks RUNNING at once so that commands
which wait for convergence return."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from manager.controlapi.filters import matches
from shoal.api import (
    Cluster,
    Network,
    Node,
    NodeRole,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    control_pb2,
    control_pb2_grpc,
)
from shoal.api.types_pb2 import NodeStatus
from swarmctl.main import run


def make_id(prefix: str, n: int) -> str:
    return prefix + f"{n:x}".rjust(25 - len(prefix), "0")


class FakeControl(control_pb2_grpc.ControlServicer):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.nodes: dict[str, Node] = {}
        self.services: dict[str, Service] = {}
        self.tasks: dict[str, Task] = {}
        self.networks: dict[str, Network] = {}
        self.clusters: dict[str, Cluster] = {}
        self.calls: list[str] = []
        self.requests: dict[str, list[Any]] = {}
        self.run_tasks = True  # new tasks are RUNNING at once; else PENDING with an error
        self.abort_updates = 0  # the next N UpdateService calls fail with ABORTED
        self.fail: dict[str, tuple[grpc.StatusCode, str]] = {}  # method -> error to return
        self._n = 0
        self.socket = ""

    # ---- helpers for tests -------------------------------------------------------------------
    def next_id(self, prefix: str = "") -> str:
        self._n += 1
        return make_id(prefix or "f", self._n)

    def add_node(
        self,
        hostname: str,
        node_id: str | None = None,
        role: int = NodeRole.WORKER,
        leader: bool = False,
        state: int = NodeStatus.READY,
    ) -> Node:
        n = Node(id=node_id or self.next_id("n"), role=role)  # type: ignore[arg-type]
        n.meta.version.index = 1
        n.description.hostname = hostname
        n.status.state = state  # type: ignore[assignment]
        n.spec.desired_role = role  # type: ignore[assignment]
        if role == NodeRole.MANAGER:
            n.manager_status.leader = leader
            n.manager_status.reachability = 2  # type: ignore[assignment]
            n.manager_status.addr = f"{hostname}:4242"
        self.nodes[n.id] = n
        return n

    def add_service(self, name: str, replicas: int = 1, service_id: str | None = None) -> Service:
        spec = ServiceSpec()
        spec.annotations.name = name
        spec.task.container.image = "busybox"
        spec.replicated.replicas = replicas
        svc = Service(id=service_id or self.next_id("s"), spec=spec)
        svc.meta.version.index = 1
        self.services[svc.id] = svc
        self._reconcile(svc)
        return svc

    def add_task(self, service: Service, slot: int, **fields: Any) -> Task:
        t = Task(id=fields.pop("task_id", None) or self.next_id("t"), service_id=service.id, slot=slot)
        t.spec.CopyFrom(service.spec.task)
        t.annotations.name = f"{service.spec.annotations.name}.{slot}"
        t.desired_state = fields.pop("desired_state", TaskState.RUNNING)
        t.status.state = fields.pop("state", TaskState.RUNNING)
        t.status.err = fields.pop("err", "")
        t.node_id = fields.pop("node_id", "")
        assert not fields, fields
        self.tasks[t.id] = t
        return t

    def _reconcile(self, svc: Service) -> None:
        """Tasks for the service's current spec: one per slot (replicated) or node (global)."""
        old = [t for t in self.tasks.values() if t.service_id == svc.id]
        for t in old:
            if t.desired_state == TaskState.RUNNING:
                t.desired_state = TaskState.SHUTDOWN
                t.status.state = TaskState.SHUTDOWN
        nodes = sorted(self.nodes)
        if svc.spec.WhichOneof("mode") == "global":
            targets = [(0, n) for n in nodes]
        else:
            count = svc.spec.replicated.replicas
            targets = [(i + 1, nodes[i % len(nodes)] if nodes else "") for i in range(count)]
        for slot, node_id in targets:
            if self.run_tasks:
                self.add_task(svc, slot, node_id=node_id)
            else:
                self.add_task(
                    svc,
                    slot,
                    state=TaskState.PENDING,
                    err="no suitable node (scheduling constraints not satisfied on 3 nodes)",
                )

    def _record(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls.append(name)
            self.requests.setdefault(name, []).append(request)
        if name in self.fail:
            code, message = self.fail[name]
            context.abort(code, message)

    def _list(self, objs: dict[str, Any], f: control_pb2.ListFilters) -> list[Any]:
        return [o for _, o in sorted(objs.items()) if matches(f, o)]

    @staticmethod
    def _get(objs: dict[str, Any], kind: str, oid: str, context: grpc.ServicerContext) -> Any:
        if oid not in objs:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{kind} {oid} not found")
        return objs[oid]

    @staticmethod
    def _check_version(obj: Any, version: Any, context: grpc.ServicerContext) -> None:
        if obj.meta.version.index != version.index:
            context.abort(grpc.StatusCode.ABORTED, "update out of sequence")
        obj.meta.version.index += 1

    # ---- nodes -------------------------------------------------------------------------------
    def GetNode(self, request: Any, context: Any) -> Any:
        self._record("GetNode", request, context)
        return control_pb2.GetNodeResponse(node=self._get(self.nodes, "node", request.node_id, context))

    def ListNodes(self, request: Any, context: Any) -> Any:
        self._record("ListNodes", request, context)
        return control_pb2.ListNodesResponse(nodes=self._list(self.nodes, request.filters))

    def UpdateNode(self, request: Any, context: Any) -> Any:
        self._record("UpdateNode", request, context)
        n = self._get(self.nodes, "node", request.node_id, context)
        self._check_version(n, request.node_version, context)
        n.spec.CopyFrom(request.spec)
        return control_pb2.UpdateNodeResponse(node=n)

    def RemoveNode(self, request: Any, context: Any) -> Any:
        self._record("RemoveNode", request, context)
        n = self._get(self.nodes, "node", request.node_id, context)
        if n.status.state == NodeStatus.READY and not request.force:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"node {n.id} is not down (use --force)")
        del self.nodes[n.id]
        return control_pb2.RemoveNodeResponse()

    # ---- tasks -------------------------------------------------------------------------------
    def GetTask(self, request: Any, context: Any) -> Any:
        self._record("GetTask", request, context)
        return control_pb2.GetTaskResponse(task=self._get(self.tasks, "task", request.task_id, context))

    def ListTasks(self, request: Any, context: Any) -> Any:
        self._record("ListTasks", request, context)
        return control_pb2.ListTasksResponse(tasks=self._list(self.tasks, request.filters))

    # ---- services ----------------------------------------------------------------------------
    def CreateService(self, request: Any, context: Any) -> Any:
        self._record("CreateService", request, context)
        name = request.spec.annotations.name
        if any(s.spec.annotations.name == name for s in self.services.values()):
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"service {name!r} already exists")
        svc = Service(id=self.next_id("s"), spec=request.spec)
        svc.meta.version.index = 1
        self.services[svc.id] = svc
        self._reconcile(svc)
        return control_pb2.CreateServiceResponse(service=svc)

    def GetService(self, request: Any, context: Any) -> Any:
        self._record("GetService", request, context)
        svc = self._get(self.services, "service", request.service_id, context)
        return control_pb2.GetServiceResponse(service=svc)

    def UpdateService(self, request: Any, context: Any) -> Any:
        self._record("UpdateService", request, context)
        svc = self._get(self.services, "service", request.service_id, context)
        if self.abort_updates:
            self.abort_updates -= 1
            svc.meta.version.index += 1  # someone else wrote it meanwhile
            context.abort(grpc.StatusCode.ABORTED, "update out of sequence")
        self._check_version(svc, request.service_version, context)
        svc.previous_spec.CopyFrom(svc.spec)
        svc.spec.CopyFrom(request.spec)
        self._reconcile(svc)
        return control_pb2.UpdateServiceResponse(service=svc)

    def RemoveService(self, request: Any, context: Any) -> Any:
        self._record("RemoveService", request, context)
        svc = self._get(self.services, "service", request.service_id, context)
        del self.services[svc.id]
        return control_pb2.RemoveServiceResponse()

    def ListServices(self, request: Any, context: Any) -> Any:
        self._record("ListServices", request, context)
        return control_pb2.ListServicesResponse(services=self._list(self.services, request.filters))

    # ---- networks ----------------------------------------------------------------------------
    def CreateNetwork(self, request: Any, context: Any) -> Any:
        self._record("CreateNetwork", request, context)
        net = Network(id=self.next_id("w"), spec=request.spec)
        net.ipam.extend(request.spec.ipam or [])
        if not net.ipam:
            net.ipam.add(subnet="10.0.1.0/24", gateway="10.0.1.1")
        net.driver_state.name = request.spec.driver
        net.driver_state.options["vni"] = "4097"
        self.networks[net.id] = net
        return control_pb2.CreateNetworkResponse(network=net)

    def GetNetwork(self, request: Any, context: Any) -> Any:
        self._record("GetNetwork", request, context)
        net = self._get(self.networks, "network", request.network_id, context)
        return control_pb2.GetNetworkResponse(network=net)

    def RemoveNetwork(self, request: Any, context: Any) -> Any:
        self._record("RemoveNetwork", request, context)
        net = self._get(self.networks, "network", request.network_id, context)
        del self.networks[net.id]
        return control_pb2.RemoveNetworkResponse()

    def ListNetworks(self, request: Any, context: Any) -> Any:
        self._record("ListNetworks", request, context)
        return control_pb2.ListNetworksResponse(networks=self._list(self.networks, request.filters))

    # ---- clusters ----------------------------------------------------------------------------
    def GetCluster(self, request: Any, context: Any) -> Any:
        self._record("GetCluster", request, context)
        c = self._get(self.clusters, "cluster", request.cluster_id, context)
        return control_pb2.GetClusterResponse(cluster=c)

    def ListClusters(self, request: Any, context: Any) -> Any:
        self._record("ListClusters", request, context)
        # A careless server: the secret is NOT stripped here, the CLI must never print it.
        return control_pb2.ListClustersResponse(clusters=self._list(self.clusters, request.filters))

    def UpdateCluster(self, request: Any, context: Any) -> Any:
        self._record("UpdateCluster", request, context)
        c = self._get(self.clusters, "cluster", request.cluster_id, context)
        self._check_version(c, request.cluster_version, context)
        c.spec.CopyFrom(request.spec)
        if request.rotate_worker_token:
            c.root_ca.join_tokens.worker = "SWMTKN-1-rotated-worker"
        if request.rotate_manager_token:
            c.root_ca.join_tokens.manager = "SWMTKN-1-rotated-manager"
        return control_pb2.UpdateClusterResponse(cluster=c)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@pytest.fixture
def fake() -> Iterator[FakeControl]:
    # A short directory: unix socket paths are limited to ~107 bytes, pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="swarmctl-", dir="/tmp")
    fc = FakeControl()
    fc.socket = os.path.join(d, "control.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    control_pb2_grpc.add_ControlServicer_to_server(fc, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix:{fc.socket}")
    server.start()
    try:
        yield fc
    finally:
        server.stop(None)
        shutil.rmtree(d, ignore_errors=True)


Runner = Callable[..., Result]


@pytest.fixture
def swarmctl(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> Runner:
    """swarmctl(*args) runs the CLI in process against the fake; returns exit code, stdout, stderr."""

    def invoke(*args: str, socket: str | None = None) -> Result:
        capsys.readouterr()
        code = run(["-s", socket or fake.socket, *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke
