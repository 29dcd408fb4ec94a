"""Control RPCs. Reads are served from the leader's store (requests reach the leader through
forwarding); writes are validated first, then committed as one store transaction each.
Get/Update/Remove take exact IDs: the CLI resolves names and prefixes with List."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from manager import ipam
from manager.controlapi import validate
from manager.controlapi.filters import matches
from manager.store import MemoryStore, Tx
from shoal import auth, ids
from shoal.api import (
    Cluster,
    Network,
    Node,
    NodeRole,
    Service,
    ServiceSpec,
    Task,
    control_pb2,
    control_pb2_grpc,
)
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus, UpdateStatus
from shoal.errors import FailedPrecondition, InvalidSpec, NameConflict, NotFound, VersionConflict
from shoal.log import get_logger

log = get_logger("controlapi")
Ctx: TypeAlias = aio.ServicerContext  # type: ignore[type-arg]


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


async def _retry(store: MemoryStore, write: Callable[[Tx], Any]) -> Any:
    """Run a write that reads shared state, again on a version conflict."""
    for _ in range(10):
        try:
            return await store.update(write)
        except VersionConflict:
            continue
    raise FailedPrecondition("the cluster keeps changing; try again")


def _public(cluster: Cluster) -> Cluster:
    out = Cluster()
    out.CopyFrom(cluster)
    out.secret = ""
    return out


Resolver = Callable[[str], Awaitable[str]]
RESOLVE_TIMEOUT = 5.0


async def _registry_resolve(ref: str) -> str:
    from agent.image import resolve

    return await resolve(ref)


class ControlServicer(control_pb2_grpc.ControlServicer):
    def __init__(self, store: MemoryStore, resolver: Resolver | None = None) -> None:
        self._store = store
        self._resolve = resolver or _registry_resolve

    def _resolve_networks(self, spec: ServiceSpec) -> None:
        """--network takes a name or an ID; the spec keeps IDs. Unknown ones are refused."""
        view = self._store.view()
        seen: set[str] = set()
        for att in spec.task.networks:
            net = view.get_network(att.target) or view.by_name(Network, att.target)
            if net is None:
                raise NotFound(f"network {att.target} not found")
            if net.id in seen:
                raise InvalidSpec(f"network {att.target} is attached twice")
            seen.add(net.id)
            att.target = net.id

    async def _pin(self, spec: ServiceSpec, skip: bool) -> list[str]:
        """Pin the image to its digest (before anything is proposed); a registry that can't be
        reached is a warning, not an error: the service proceeds unpinned."""
        image = spec.task.container.image
        if skip or "@" in image:
            return []
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                spec.task.container.image = await self._resolve(image)
            return []
        except Exception as e:
            reason = getattr(e, "message", None) or str(e) or type(e).__name__
            log.warning("image_not_pinned", image=image, error=reason)
            return [
                f"image {image} could not be accessed on a registry to record its digest ({reason}); "
                "each node will resolve it on its own, possibly to different versions"
            ]

    def _get(self, cls: type, obj_id: str, kind: str):  # type: ignore[no-untyped-def]
        if not obj_id:
            raise InvalidSpec(f"{kind} id is required")
        obj = self._store.view().get(cls, obj_id)
        if obj is None:
            raise NotFound(f"{kind} {obj_id} not found")
        return obj

    def _list(self, cls: type, filters: control_pb2.ListFilters) -> list:  # type: ignore[type-arg]
        validate.list_filters(filters)
        return sorted(
            self._store.view().find(cls, lambda o: matches(filters, o)),
            key=lambda o: (o.meta.created_at.ToNanoseconds(), o.id),
        )

    # ---- nodes -------------------------------------------------------------------------------
    async def GetNode(self, request: control_pb2.GetNodeRequest, context: Ctx) -> control_pb2.GetNodeResponse:
        return control_pb2.GetNodeResponse(node=self._get(Node, request.node_id, "node"))

    async def ListNodes(
        self, request: control_pb2.ListNodesRequest, context: Ctx
    ) -> control_pb2.ListNodesResponse:
        return control_pb2.ListNodesResponse(nodes=self._list(Node, request.filters))

    async def UpdateNode(
        self, request: control_pb2.UpdateNodeRequest, context: Ctx
    ) -> control_pb2.UpdateNodeResponse:
        spec = request.spec
        if spec.availability not in NodeSpec.Availability.values():
            raise InvalidSpec("unknown availability")
        if spec.desired_role not in NodeRole.values():
            raise InvalidSpec("unknown role")

        def write(tx: Tx) -> Node:
            node = tx.get_node(request.node_id)
            if node is None:
                raise NotFound(f"node {request.node_id} not found")
            if request.node_version.index:
                node.meta.version.CopyFrom(request.node_version)
            if spec.desired_role == NodeRole.WORKER and node.spec.desired_role == NodeRole.MANAGER:
                managers = [n for n in tx.nodes() if n.spec.desired_role == NodeRole.MANAGER]
                if len(managers) <= 1:
                    raise FailedPrecondition("attempting to demote the last manager of the swarm")
            if spec.desired_role == NodeRole.MANAGER and node.spec.desired_role == NodeRole.WORKER:
                if node.status.state != NodeStatus.READY:
                    raise FailedPrecondition(f"node {node.id} is not ready: only a live node can be promoted")
            node.spec.CopyFrom(spec)
            node.spec.membership = NodeSpec.ACCEPTED
            tx.update(node)
            return node

        node = await self._store.update(write)
        log.info("node_updated", node_id=node.id)
        return control_pb2.UpdateNodeResponse(node=self._store.view().get_node(node.id))

    async def RemoveNode(
        self, request: control_pb2.RemoveNodeRequest, context: Ctx
    ) -> control_pb2.RemoveNodeResponse:
        def write(tx: Tx) -> None:
            node = tx.get_node(request.node_id)
            if node is None:
                raise NotFound(f"node {request.node_id} not found")
            if node.role == NodeRole.MANAGER or node.spec.desired_role == NodeRole.MANAGER:
                raise FailedPrecondition(f"node {node.id} is a manager: demote it before removing it")
            if node.status.state != NodeStatus.DOWN and not request.force:
                raise FailedPrecondition(f"node {node.id} is not down and can't be removed (use --force)")
            tx.delete(node)

        await self._store.update(write)
        return control_pb2.RemoveNodeResponse()

    # ---- tasks -------------------------------------------------------------------------------
    async def GetTask(self, request: control_pb2.GetTaskRequest, context: Ctx) -> control_pb2.GetTaskResponse:
        return control_pb2.GetTaskResponse(task=self._get(Task, request.task_id, "task"))

    async def ListTasks(
        self, request: control_pb2.ListTasksRequest, context: Ctx
    ) -> control_pb2.ListTasksResponse:
        tasks = self._list(Task, request.filters)
        tasks.sort(key=lambda t: (t.service_id, t.slot, t.node_id, t.meta.created_at.ToNanoseconds()))
        return control_pb2.ListTasksResponse(tasks=tasks)

    # ---- services ----------------------------------------------------------------------------
    async def CreateService(
        self, request: control_pb2.CreateServiceRequest, context: Ctx
    ) -> control_pb2.CreateServiceResponse:
        spec = request.spec
        if spec.WhichOneof("mode") is None:
            spec.replicated.replicas = 1
        validate.service_spec(spec)
        self._resolve_networks(spec)
        if self._store.view().by_name(Service, spec.annotations.name) is not None:
            raise NameConflict(f"service {spec.annotations.name!r} already exists (names are unique)")
        warnings = await self._pin(spec, request.no_resolve_image)
        svc = Service(id=ids.new_id())
        svc.spec.CopyFrom(spec)
        svc.spec_version.index = 1
        await self._store.update(lambda tx: tx.create(svc))
        log.info("service_created", service=spec.annotations.name, service_id=svc.id)
        service = self._store.view().get_service(svc.id)
        return control_pb2.CreateServiceResponse(service=service, warnings=warnings)

    async def GetService(
        self, request: control_pb2.GetServiceRequest, context: Ctx
    ) -> control_pb2.GetServiceResponse:
        return control_pb2.GetServiceResponse(service=self._get(Service, request.service_id, "service"))

    async def UpdateService(
        self, request: control_pb2.UpdateServiceRequest, context: Ctx
    ) -> control_pb2.UpdateServiceResponse:
        spec = request.spec
        rollback = request.rollback == control_pb2.UpdateServiceRequest.PREVIOUS
        warnings: list[str] = []
        current = self._store.view().get_service(request.service_id)
        if (
            not rollback
            and current is not None
            and spec.task.container.image != current.spec.task.container.image
        ):
            validate.service_spec(spec)
            warnings = await self._pin(spec, request.no_resolve_image)

        def write(tx: Tx) -> Service:
            svc = tx.get_service(request.service_id)
            if svc is None:
                raise NotFound(f"service {request.service_id} not found")
            if request.service_version.index:
                svc.meta.version.CopyFrom(request.service_version)
            if rollback:
                if not svc.HasField("previous_spec"):
                    raise FailedPrecondition(f"service {svc.spec.annotations.name} has no previous spec")
                new_spec = svc.previous_spec
            else:
                new_spec = spec
                if new_spec.WhichOneof("mode") is None:
                    raise InvalidSpec("the service mode (replicated or global) is required")
            validate.service_spec(new_spec)
            if new_spec.annotations.name != svc.spec.annotations.name:
                raise InvalidSpec("renaming a service is not supported")
            if new_spec.WhichOneof("mode") != svc.spec.WhichOneof("mode"):
                raise InvalidSpec("a service's mode cannot change")
            previous = type(svc.spec)()
            previous.CopyFrom(svc.spec)
            st = svc.update_status
            if new_spec.task != svc.spec.task:
                svc.spec_version.index += 1
                st.state = UpdateStatus.ROLLBACK_STARTED if rollback else UpdateStatus.UPDATING
                st.message = "manually requested rollback" if rollback else "update in progress"
                st.started_at.CopyFrom(_now())
                st.ClearField("completed_at")
            elif st.state in (UpdateStatus.PAUSED, UpdateStatus.ROLLBACK_PAUSED):
                # The next update of a paused service resumes it.
                st.state = (
                    UpdateStatus.UPDATING
                    if st.state == UpdateStatus.PAUSED
                    else UpdateStatus.ROLLBACK_STARTED
                )
                st.message = "update resumed"
            svc.spec.CopyFrom(new_spec)
            svc.previous_spec.CopyFrom(previous)
            tx.update(svc)
            return svc

        svc = await self._store.update(write)
        log.info("service_updated", service_id=svc.id, rollback=rollback)
        service = self._store.view().get_service(svc.id)
        return control_pb2.UpdateServiceResponse(service=service, warnings=warnings)

    async def RemoveService(
        self, request: control_pb2.RemoveServiceRequest, context: Ctx
    ) -> control_pb2.RemoveServiceResponse:
        await self._remove(Service, request.service_id, "service")
        return control_pb2.RemoveServiceResponse()

    async def _remove(
        self, cls: type, obj_id: str, kind: str, check: Callable[[Tx], None] | None = None
    ) -> None:
        def write(tx: Tx) -> None:
            obj = tx.get(cls, obj_id)
            if obj is None:
                raise NotFound(f"{kind} {obj_id} not found")
            if check is not None:
                check(tx)
            tx.delete(obj)

        await self._store.update(write)

    async def ListServices(
        self, request: control_pb2.ListServicesRequest, context: Ctx
    ) -> control_pb2.ListServicesResponse:
        return control_pb2.ListServicesResponse(services=self._list(Service, request.filters))

    # ---- networks ----------------------------------------------------------------------------
    async def CreateNetwork(
        self, request: control_pb2.CreateNetworkRequest, context: Ctx
    ) -> control_pb2.CreateNetworkResponse:
        validate.network_spec(request.spec)
        wanted = [ipam.parse_subnet(c.subnet) for c in request.spec.ipam if c.subnet]
        net = Network(id=ids.new_id())
        net.spec.CopyFrom(request.spec)
        net.spec.driver = net.spec.driver or "overlay"

        def write(tx: Tx) -> None:
            # Subnets and VNIs are chosen against what is committed; touching the cluster object
            # makes concurrent creates conflict (and retry) instead of choosing the same ones.
            cluster = tx.cluster()
            if cluster is None:
                raise FailedPrecondition("cluster is not initialised yet")
            taken = [ipam.parse_subnet(c.subnet) for n in tx.networks() for c in n.ipam]
            subnets = wanted or [ipam.next_subnet(taken)]
            for sub in subnets:
                ipam.check_free(sub, taken)
            del net.ipam[:]
            given = [c.gateway for c in request.spec.ipam if c.subnet]
            for i, sub in enumerate(subnets):
                gw = given[i] if i < len(given) and given[i] else ipam.gateway(sub)
                net.ipam.add(subnet=str(sub), gateway=gw)
            vnis = [int(n.driver_state.options.get("vni", "0")) for n in tx.networks()]
            net.driver_state.name = "overlay"
            net.driver_state.options["vni"] = str(ipam.next_vni(vnis))
            tx.create(net)
            tx.update(cluster)

        await _retry(self._store, write)
        log.info("network_created", network=net.spec.annotations.name, subnet=net.ipam[0].subnet)
        return control_pb2.CreateNetworkResponse(network=self._store.view().get_network(net.id))

    async def GetNetwork(
        self, request: control_pb2.GetNetworkRequest, context: Ctx
    ) -> control_pb2.GetNetworkResponse:
        return control_pb2.GetNetworkResponse(network=self._get(Network, request.network_id, "network"))

    async def RemoveNetwork(
        self, request: control_pb2.RemoveNetworkRequest, context: Ctx
    ) -> control_pb2.RemoveNetworkResponse:
        def in_use(tx: Tx) -> None:
            for svc in tx.services():
                if any(n.target == request.network_id for n in svc.spec.task.networks):
                    raise FailedPrecondition(f"network {request.network_id} is in use by service {svc.id}")

        await self._remove(Network, request.network_id, "network", in_use)
        return control_pb2.RemoveNetworkResponse()

    async def ListNetworks(
        self, request: control_pb2.ListNetworksRequest, context: Ctx
    ) -> control_pb2.ListNetworksResponse:
        return control_pb2.ListNetworksResponse(networks=self._list(Network, request.filters))

    # ---- cluster -----------------------------------------------------------------------------
    async def GetCluster(
        self, request: control_pb2.GetClusterRequest, context: Ctx
    ) -> control_pb2.GetClusterResponse:
        return control_pb2.GetClusterResponse(
            cluster=_public(self._get(Cluster, request.cluster_id, "cluster"))
        )

    async def ListClusters(
        self, request: control_pb2.ListClustersRequest, context: Ctx
    ) -> control_pb2.ListClustersResponse:
        return control_pb2.ListClustersResponse(
            clusters=[_public(c) for c in self._list(Cluster, request.filters)]
        )

    async def UpdateCluster(
        self, request: control_pb2.UpdateClusterRequest, context: Ctx
    ) -> control_pb2.UpdateClusterResponse:
        validate.cluster_spec(request.spec)

        def write(tx: Tx) -> Cluster:
            cluster = tx.get(Cluster, request.cluster_id)
            if cluster is None:
                raise NotFound(f"cluster {request.cluster_id} not found")
            if request.cluster_version.index:
                cluster.meta.version.CopyFrom(request.cluster_version)
            cluster.spec.CopyFrom(request.spec)
            if request.rotate_worker_token:
                cluster.root_ca.join_tokens.worker = auth.new_join_token(cluster.secret)
            if request.rotate_manager_token:
                cluster.root_ca.join_tokens.manager = auth.new_join_token(cluster.secret)
            tx.update(cluster)
            return cluster

        cluster = await self._store.update(write)
        return control_pb2.UpdateClusterResponse(cluster=_public(cluster))
