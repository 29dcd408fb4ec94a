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
