"""The connection to a manager, and name / ID-prefix resolution (the server's Get/Update/Remove
take exact IDs; names and prefixes are resolved here with List)."""

from __future__ import annotations

from typing import Any

import click
import grpc

from shoal import rpc
from shoal.api import control_pb2, control_pb2_grpc

TIMEOUT = 30.0


class Client:
    def __init__(self, socket: str) -> None:
        self.socket = socket
        self._channel: grpc.Channel | None = None

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = rpc.sync_channel(rpc.socket_target(self.socket))
        return self._channel

    @property
    def stub(self) -> control_pb2_grpc.ControlStub:
        return control_pb2_grpc.ControlStub(self.channel)

    def call(self, method: str, request: Any, timeout: float = TIMEOUT) -> Any:
        return getattr(self.stub, method)(request, timeout=timeout)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    # ---- listing -----------------------------------------------------------------------------
    def nodes(self, **filters: Any) -> list[Any]:
        f = control_pb2.ListFilters(**filters)
        return list(self.call("ListNodes", control_pb2.ListNodesRequest(filters=f)).nodes)

    def services(self, **filters: Any) -> list[Any]:
        f = control_pb2.ListFilters(**filters)
        return list(self.call("ListServices", control_pb2.ListServicesRequest(filters=f)).services)

    def tasks(self, **filters: Any) -> list[Any]:
        f = control_pb2.ListFilters(**filters)
        return list(self.call("ListTasks", control_pb2.ListTasksRequest(filters=f)).tasks)

    def networks(self, **filters: Any) -> list[Any]:
        f = control_pb2.ListFilters(**filters)
        return list(self.call("ListNetworks", control_pb2.ListNetworksRequest(filters=f)).networks)

    def clusters(self, **filters: Any) -> list[Any]:
        f = control_pb2.ListFilters(**filters)
        found = list(self.call("ListClusters", control_pb2.ListClustersRequest(filters=f)).clusters)
        for c in found:
            c.ClearField("secret")  # the server strips it; never print it even if one slipped through
        return found

    def cluster(self, ref: str | None = None) -> Any:
        if ref:
            return self._resolve("cluster", self.clusters, ref)
        clusters = self.clusters()
        if not clusters:
            raise click.ClickException("the cluster is not initialised yet")
        return clusters[0]

    # ---- resolution --------------------------------------------------------------------------
    def _resolve(self, kind: str, lister: Any, ref: str, by_name: bool = True) -> Any:
        """By name (a node's hostname) first, then by ID, then by unique ID prefix."""
        if by_name:
            found = lister(names=[ref])
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                ids = ", ".join(sorted(o.id[:12] for o in found))
                raise click.ClickException(f"{kind} {ref} is ambiguous ({len(found)} with that name: {ids})")
        found = lister(id_prefixes=[ref]) if ref else []
        exact = [o for o in found if o.id == ref]
        if exact:
            return exact[0]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise click.ClickException(f"{kind} {ref} is ambiguous ({len(found)} matches)")
        raise click.ClickException(f"{kind} {ref} not found")

    def node(self, ref: str) -> Any:
        return self._resolve("node", self.nodes, ref)

    def service(self, ref: str) -> Any:
        return self._resolve("service", self.services, ref)

    def task(self, ref: str) -> Any:
        return self._resolve("task", self.tasks, ref, by_name=False)

    def network(self, ref: str) -> Any:
        return self._resolve("network", self.networks, ref)
