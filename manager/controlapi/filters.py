"""ListFilters matching, shared by every List call."""

from __future__ import annotations

from manager.store import obj_name
from manager.store.tables import StoreObj
from shoal.api import Node, Task, control_pb2


def matches(f: control_pb2.ListFilters, obj: StoreObj) -> bool:
    name = obj_name(obj)
    if (
        f.names
        and name not in f.names
        and not (isinstance(obj, Node) and obj.description.hostname in f.names)
    ):
        return False
    if f.id_prefixes and not any(obj.id.startswith(p) for p in f.id_prefixes):
        return False
    if f.name_prefixes and not any(name.startswith(p) for p in f.name_prefixes):
        return False
    if f.labels:
        labels = obj.annotations.labels if isinstance(obj, Task) else obj.spec.annotations.labels
        if any(labels.get(k) != v for k, v in f.labels.items()):
            return False
    if isinstance(obj, Task):
        if f.service_ids and obj.service_id not in f.service_ids:
            return False
        if f.node_ids and obj.node_id not in f.node_ids:
            return False
        if f.desired_states and obj.desired_state not in f.desired_states:
            return False
    if isinstance(obj, Node) and f.roles and obj.role not in f.roles:
        return False
    return True
