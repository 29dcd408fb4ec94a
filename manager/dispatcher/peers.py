"""The network half of a node's assignments: one NetworkPeers per overlay network that a task of
the node attaches to, listing every endpoint on that network cluster-wide and its services' VIPs.

SwarmKit leaves this to gossip between agents (NetworkDB); shoal derives it from the leader's
store instead, so that every node's FDB, neighbor, DNS and load-balancer state is a pure function
of committed state and converges after restarts without a second protocol. The tables are built
once per store version for all networks and shared by every session (`PeerTables`)."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable

from manager.store import Event, ReadView, is_terminal
from shoal.api import Network, Node, Service, Task, TaskState
from shoal.api.dispatcher_pb2 import NetworkPeers
from shoal.netaddr import mac_for


def _endpoint_tasks(view: ReadView) -> dict[str, list[Task]]:
    """Tasks whose containers exist or are about to (assigned, not ended), by network id."""
    out: dict[str, list[Task]] = defaultdict(list)
    for t in view.scan(Task):
        if not t.networks_attachments or not t.node_id:
            continue
        if t.status.state < TaskState.ASSIGNED or is_terminal(t.status.state):
            continue
        for a in t.networks_attachments:
            out[a.network.id].append(t)
    return out


def build_tables(view: ReadView) -> dict[str, NetworkPeers]:
    """Every overlay network's table, keyed by network id."""
    node_addr = {n.id: n.status.addr for n in view.scan(Node)}
    by_net = _endpoint_tasks(view)
    services = view.scan(Service)
    tables: dict[str, NetworkPeers] = {}
    for net in view.scan(Network):
        table = NetworkPeers()
        table.network.CopyFrom(net)
        for t in sorted(by_net.get(net.id, ()), key=lambda t: t.id):
            for a in t.networks_attachments:
                if a.network.id != net.id or not a.addresses:
                    continue
                table.endpoints.add(
                    task_id=t.id,
                    service_id=t.service_id,
                    node_id=t.node_id,
                    node_addr=node_addr.get(t.node_id, ""),
                    addr=a.addresses[0],
                    mac=mac_for(a.addresses[0]),
                    aliases=list(a.aliases),
                    running=t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING,
                    slot=t.slot,
                )
        for s in sorted(services, key=lambda s: s.id):
            if not any(n.target == net.id for n in s.spec.task.networks):
                continue
            vip = next((v.addr for v in s.endpoint.virtual_ips if v.network_id == net.id), "")
            table.services.add(
                service_id=s.id,
                name=s.spec.annotations.name,
                mode=s.spec.endpoint.mode,
                vip=vip.split("/")[0],
                ports=list(s.spec.endpoint.ports),
            )
        tables[net.id] = table
    return tables


def networks_of(tasks: Iterable[Task]) -> set[str]:
    return {a.network.id for t in tasks for a in t.networks_attachments}


def touches_networks(events: Iterable[Event]) -> bool:
    """Whether a batch can change any table (most task traffic of un-networked services can't)."""
    for ev in events:
        obj, old = ev.obj, ev.old
        if isinstance(obj, Network):
            return True
        if isinstance(obj, Task) and (
            obj.networks_attachments or (isinstance(old, Task) and old.networks_attachments)
        ):
            return True
        if isinstance(obj, Service) and (obj.spec.task.networks or obj.endpoint.virtual_ips):
            return True
        if isinstance(obj, Node) and isinstance(old, Node) and obj.status.addr != old.status.addr:
            return True
    return False


class PeerTables:
    """The tables of the latest store version, built at most once per version for all sessions,
    and which events touch networks, worked out once per event for all sessions (every session
    sees the same Event objects; at 50 nodes and 5,000 tasks, asking each time cost the leader a
    sixth of its time)."""

    MEMO = 50_000  # events remembered (the memo holds them, so an id is never reused meanwhile)

    def __init__(self) -> None:
        self._version = -1
        self._tables: dict[str, NetworkPeers] = {}
        self._memo: OrderedDict[int, tuple[Event, bool]] = OrderedDict()

    def touches(self, events: Iterable[Event]) -> bool:
        found = False
        for ev in events:
            hit = self._memo.get(id(ev))
            if hit is None or hit[0] is not ev:
                hit = (ev, touches_networks((ev,)))
                self._memo[id(ev)] = hit
                if len(self._memo) > self.MEMO:
                    self._memo.popitem(last=False)
            found = found or hit[1]
        return found

    def at(self, view: ReadView) -> dict[str, NetworkPeers]:
        if view.version != self._version:
            self._tables = build_tables(view)
            self._version = view.version
        return self._tables


def diff(
    sent: dict[str, NetworkPeers], wanted: dict[str, NetworkPeers]
) -> tuple[list[NetworkPeers], list[str]]:
    """(tables to send, network ids to remove) to move the agent from `sent` to `wanted`."""
    updates = [t for net_id, t in wanted.items() if sent.get(net_id) != t]
    removes = [net_id for net_id in sent if net_id not in wanted]
    return updates, removes


__all__ = ["PeerTables", "build_tables", "diff", "networks_of", "touches_networks"]
