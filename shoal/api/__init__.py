"""The generated protobuf API (from proto/shoal/api). Regenerate with `make proto`."""

from shoal.api import (
    control_pb2,
    control_pb2_grpc,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    logs_pb2,
    logs_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
    objects_pb2,
    raft_pb2,
    specs_pb2,
    types_pb2,
)
from shoal.api.objects_pb2 import Cluster, Network, Node, Service, Task
from shoal.api.specs_pb2 import ClusterSpec, ContainerSpec, NetworkSpec, NodeSpec, ServiceSpec, TaskSpec
from shoal.api.types_pb2 import NodeRole, TaskState

__all__ = [
    "Cluster",
    "ClusterSpec",
    "ContainerSpec",
    "Network",
    "NetworkSpec",
    "Node",
    "NodeRole",
    "NodeSpec",
    "Service",
    "ServiceSpec",
    "Task",
    "TaskSpec",
    "TaskState",
    "control_pb2",
    "control_pb2_grpc",
    "dispatcher_pb2",
    "dispatcher_pb2_grpc",
    "logs_pb2",
    "logs_pb2_grpc",
    "membership_pb2",
    "membership_pb2_grpc",
    "objects_pb2",
    "raft_pb2",
    "specs_pb2",
    "types_pb2",
]


def _plain_enum_values(*modules: object) -> None:
    """A top-level enum's wrapper resolves `TaskState.RUNNING` through __getattr__ on every
    access (about 2 us, 40 times a plain attribute): the control loops read such values for
    every task of every pass, so the values are stored on the wrappers as plain attributes."""
    for module in modules:
        for enum_name in module.DESCRIPTOR.enum_types_by_name:  # type: ignore[attr-defined]
            wrapper = getattr(module, enum_name)
            for name, number in wrapper.items():
                setattr(wrapper, name, number)


_plain_enum_values(types_pb2, specs_pb2, objects_pb2, control_pb2, dispatcher_pb2, raft_pb2)
