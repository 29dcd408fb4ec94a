"""What the data plane derives from the manager's NetworkPeers tables (pure functions, no I/O):
the VXLAN peers of a network, the VIPs a container balances, the ports a node publishes, and
the names a container's resolver answers."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from agent.network.links import Peer
from agent.network.nft import PublishedPort, Vip
from shoal.api.dispatcher_pb2 import NetworkPeers
from shoal.api.specs_pb2 import EndpointSpec, PortConfig
from shoal.netaddr import mac_for

Tables = Mapping[str, NetworkPeers]


def ip_of(addr: str) -> str:
    return addr.split("/", 1)[0]


def remote_peers(table: NetworkPeers, our_addr: str, local_tasks: Collection[str]) -> list[Peer]:
    """Every endpoint on another node (running or not: a starting task must be reachable too).
    Ours need no entries: the bridge learns them from their veths."""
    peers: dict[str, Peer] = {}
    for ep in table.endpoints:
        if not ep.addr or not ep.node_addr or ep.node_addr == our_addr or ep.task_id in local_tasks:
            continue
        ip = ip_of(ep.addr)
        peers[ip] = Peer(ip=ip, mac=ep.mac or mac_for(ip), node_addr=ep.node_addr)
    return sorted(peers.values(), key=lambda p: p.ip)


def _running(table: NetworkPeers, service_id: str) -> tuple[str, ...]:
    ips = {ip_of(ep.addr) for ep in table.endpoints if ep.service_id == service_id and ep.running and ep.addr}
    return tuple(sorted(ips))


def container_vips(tables: Tables, network_ids: Iterable[str]) -> list[Vip]:
    """The VIPs of every VIP-mode service on the container's networks, each with its running
    backends on that network."""
    vips: dict[str, Vip] = {}
    for nid in network_ids:
        table = tables.get(nid)
        if table is None:
            continue
        for svc in table.services:
            if svc.vip and svc.mode == EndpointSpec.VIP:
                vips[ip_of(svc.vip)] = Vip(ip_of(svc.vip), _running(table, svc.service_id))
    return list(vips.values())


def host_ports(tables: Tables, local: Mapping[str, list[str]]) -> list[PublishedPort]:
    """Published ports (host mode; ingress is treated as host: there is no routing mesh)
    forwarded to this node's running tasks of the service, each at its address on the first of
    its networks (`local`: task id -> network ids in attachment order)."""
    addrs: dict[str, dict[str, str]] = {}  # task -> network -> ip, running tasks only
    ports: dict[tuple[str, int], tuple[int, str]] = {}  # (proto, published) -> (target, service)
    for nid, table in tables.items():
        for ep in table.endpoints:
            if ep.running and ep.addr and ep.task_id in local:
                addrs.setdefault(ep.task_id, {})[nid] = ip_of(ep.addr)
        for svc in table.services:
            for port in svc.ports:
                if port.published_port:
                    proto = "udp" if port.protocol == PortConfig.UDP else "tcp"
                    target = port.target_port or port.published_port
                    ports.setdefault((proto, port.published_port), (target, svc.service_id))
    services = {ep.task_id: ep.service_id for t in tables.values() for ep in t.endpoints}
    out = []
    for (proto, published), (target, sid) in sorted(ports.items()):
        backends = set()
        for tid, by_net in addrs.items():
            if services.get(tid) == sid:
                first = (
                    next(n for n in local[tid] if n in by_net)
                    if any(n in by_net for n in local[tid])
                    else None
                )
                if first is not None:
                    backends.add(by_net[first])
        out.append(PublishedPort(proto, published, target, tuple(sorted(backends))))
    return out


class TableResolver:
    """A container's DNS view: the services (and task aliases) of its own networks, read from
    the current tables on every query, so answers follow scaling without any push."""

    def __init__(self, tables: Callable[[], Tables], network_ids: list[str]) -> None:
        self._tables = tables
        self._networks = network_ids

    def lookup(self, name: str) -> list[str] | None:
        name = name.lower().rstrip(".")
        tasks_only = name.startswith("tasks.")
        if tasks_only:
            name = name[len("tasks.") :]
        tables = self._tables()
        found = False
        answer: list[str] = []
        for nid in self._networks:  # the first network that knows the name answers, as Docker
            table = tables.get(nid)
            if table is None:
                continue
            for svc in table.services:
                if not _named(table, svc, name):
                    continue
                found = True
                running = list(_running(table, svc.service_id))
                if tasks_only or svc.mode == EndpointSpec.DNSRR or not svc.vip:
                    answer.extend(running)
                else:
                    answer.append(ip_of(svc.vip))
            if found:
                return sorted(set(answer))
        return None


def _named(table: NetworkPeers, svc: NetworkPeers.ServiceEntry, name: str) -> bool:
    if svc.name.lower() == name:
        return True
    return any(
        ep.service_id == svc.service_id and name in (a.lower() for a in ep.aliases) for ep in table.endpoints
    )


__all__ = ["TableResolver", "Tables", "container_vips", "host_ports", "ip_of", "remote_peers"]
