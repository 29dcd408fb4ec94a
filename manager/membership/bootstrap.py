"""Creating a new cluster: the first manager writes the Cluster object and its own Node."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from manager.store import MemoryStore, Tx
from shoal import auth
from shoal.api import Cluster, Node, NodeRole
from shoal.api.specs_pb2 import NodeSpec
from shoal.api.types_pb2 import NodeStatus

DEFAULT_HEARTBEAT = Duration(seconds=1)
DEFAULT_HISTORY = 5


def new_cluster(cluster_id: str, secret: str) -> Cluster:
    c = Cluster(id=cluster_id, secret=secret)
    c.spec.annotations.name = "default"
    c.spec.orchestration.task_history_retention_limit = DEFAULT_HISTORY
    c.spec.dispatcher.heartbeat_period.CopyFrom(DEFAULT_HEARTBEAT)
    c.root_ca.join_tokens.worker = auth.new_join_token(secret)
    c.root_ca.join_tokens.manager = auth.new_join_token(secret)
    return c


def new_node(node_id: str, hostname: str, role: int, api_addr: str, raft_addr: str) -> Node:
    n = Node(id=node_id, role=role)  # type: ignore[arg-type]
    n.spec.desired_role = role  # type: ignore[assignment]
    n.spec.membership = NodeSpec.ACCEPTED
    n.spec.availability = NodeSpec.ACTIVE
    n.description.hostname = hostname
    n.status.state = NodeStatus.UNKNOWN
    n.status.addr = api_addr.rsplit(":", 1)[0]
    if role == NodeRole.MANAGER:
        n.manager_status.addr = api_addr
        n.manager_status.raft_addr = raft_addr
    return n


async def bootstrap(
    store: MemoryStore,
    *,
    cluster_id: str,
    secret: str,
    node_id: str,
    hostname: str,
    api_addr: str,
    raft_addr: str,
) -> None:
    def write(tx: Tx) -> None:
        if tx.cluster() is not None:
            return  # already initialised (restart)
        tx.create(new_cluster(cluster_id, secret))
        node = new_node(node_id, hostname, NodeRole.MANAGER, api_addr, raft_addr)
        node.manager_status.leader = True
        tx.create(node)

    await store.update(write)
