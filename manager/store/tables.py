"""The object kinds the store holds, and the per-kind facts the store needs about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from shoal.api import Cluster, Network, Node, Service, Task, raft_pb2

StoreObj: TypeAlias = Node | Service | Task | Network | Cluster


@dataclass(frozen=True)
class Kind:
    name: str  # the StoreObject oneof field, also the table name
    cls: type
    # Kinds whose spec.annotations.name must be unique (SwarmKit: services, networks, clusters).
    unique_names: bool


KINDS: dict[type, Kind] = {
    Node: Kind("node", Node, False),
    Service: Kind("service", Service, True),
    Task: Kind("task", Task, False),
    Network: Kind("network", Network, True),
    Cluster: Kind("cluster", Cluster, True),
}
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS.values()}


def kind_of(obj: Any) -> Kind:
    try:
        return KINDS[type(obj)]
    except KeyError:
        raise TypeError(f"not a store object: {type(obj).__name__}") from None


def obj_name(obj: StoreObj) -> str:
    if isinstance(obj, Task):
        return obj.annotations.name
    if isinstance(obj, Node):
        return obj.spec.annotations.name or obj.description.hostname
    return obj.spec.annotations.name


def wrap(obj: StoreObj) -> raft_pb2.StoreObject:
    wrapped = raft_pb2.StoreObject()
    getattr(wrapped, kind_of(obj).name).CopyFrom(obj)
    return wrapped


def unwrap(wrapped: raft_pb2.StoreObject) -> StoreObj:
    field = wrapped.WhichOneof("object")
    if field is None:
        raise ValueError("empty store object")
    obj: StoreObj = getattr(wrapped, field)
    return obj
