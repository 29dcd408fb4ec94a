"""Two or more fake hosts for data-plane tests: network namespaces wired to an underlay bridge
that lives in a namespace of its own (no route anywhere else), each with a NetworkManager run
in this process with `host_netns` pointing at its namespace. Containers are just the
namespaces attach() returns. Everything lives under one tmp dir and goes with its namespaces."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute

from agent.network import NetworkManager
from agent.network import netns as nsmod
from shoal.api import Network, Task
from shoal.api.dispatcher_pb2 import NetworkPeers
from shoal.api.specs_pb2 import EndpointSpec, PortConfig
from shoal.netaddr import mac_for

UNDERLAY = "10.99.0"


@dataclass
class Host:
    name: str
    addr: str
    ns: str
    state: Path
    mgr: NetworkManager


@dataclass
class Lab:
    root: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    servers: list[socket.socket] = field(default_factory=list)

    def ul(self) -> Path:
        return self.root / "ns" / "ul"

    async def close(self) -> None:
        for s in self.servers:
            s.close()
        for h in self.hosts.values():
            await h.mgr.close()
            for p in sorted((h.state / "netns").glob("*")):
                nsmod.remove(p)
            nsmod.remove(Path(h.ns))
        nsmod.remove(self.ul())


def make_lab(root: Path, names: Iterable[str]) -> Lab:
    lab = Lab(root)
    nsmod.create(lab.ul())

    def bridge(ipr: IPRoute) -> None:
        ipr.link("add", ifname="br0", kind="bridge")
        ipr.link("set", index=ipr.link_lookup(ifname="br0")[0], state="up")

    nsmod.run_in(str(lab.ul()), bridge)
    for i, name in enumerate(names, start=1):
        path = root / "ns" / name
        nsmod.create(path)
        addr = f"{UNDERLAY}.{i}"

        def wire(ipr: IPRoute, name: str = name, path: Path = path) -> None:
            ipr.link("add", ifname=f"ul-{name}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(path)})
            idx = ipr.link_lookup(ifname=f"ul-{name}")[0]
            ipr.link("set", index=idx, master=ipr.link_lookup(ifname="br0")[0], state="up")

        def address(ipr: IPRoute, addr: str = addr) -> None:
            idx = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=idx, address=addr, prefixlen=24)
            ipr.link("set", index=idx, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

        nsmod.run_in(str(lab.ul()), wire)
        nsmod.run_in(str(path), address)
        state = root / name
        mgr = NetworkManager(name, addr, state, host_netns=str(path))
        lab.hosts[name] = Host(name, addr, str(path), state, mgr)
    return lab


def network(nid: str, vni: int, subnet: str) -> Network:
    net = Network(id=nid)
    net.driver_state.name = "overlay"
    net.driver_state.options["vni"] = str(vni)
    prefix = subnet.rsplit(".", 1)[0]
    net.ipam.add(subnet=subnet, gateway=f"{prefix}.1")
    return net


def task(tid: str, service_id: str, *attachments: tuple[Network, str]) -> Task:
    t = Task(id=tid, service_id=service_id)
    for net, addr in attachments:
        a = t.networks_attachments.add()
        a.network.CopyFrom(net)
        a.addresses.append(addr)
    return t


def table(
    net: Network,
    endpoints: Iterable[tuple[Task, Host, bool]],
    services: Iterable[tuple[str, str, str, list[tuple[int, int]]]] = (),
) -> NetworkPeers:
    """endpoints: (task, host, running); services: (service_id, name, vip, [(published, target)])."""
    t = NetworkPeers()
    t.network.CopyFrom(net)
    for tk, host, running in endpoints:
        addr = next(a.addresses[0] for a in tk.networks_attachments if a.network.id == net.id)
        t.endpoints.add(
            task_id=tk.id, service_id=tk.service_id, node_id=host.name, node_addr=host.addr,
            addr=addr, mac=mac_for(addr), running=running,
        )  # fmt: skip
    for sid, name, vip, ports in services:
        svc = t.services.add(service_id=sid, name=name, vip=vip)
        svc.mode = EndpointSpec.VIP if vip else EndpointSpec.DNSRR
        for published, target in ports:
            svc.ports.add(protocol=PortConfig.TCP, published_port=published, target_port=target,
                          publish_mode=PortConfig.HOST)  # fmt: skip
    return t


async def ping(ns: str, ip: str) -> bool:
    proc = await asyncio.to_thread(
        subprocess.run, ["nsenter", f"--net={ns}", "busybox", "ping", "-c1", "-W1", ip], capture_output=True
    )
    return proc.returncode == 0


def serve(lab: Lab, ns: str, ip: str, port: int, marker: bytes) -> None:
    """A TCP server at ip:port inside `ns` answering every connection with `marker`, served by
    a thread of this process (the socket belongs to the namespace it was made in)."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(16)
        return s

    sock = nsmod.call_in(ns, make)
    lab.servers.append(sock)

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(marker)

    threading.Thread(target=loop, daemon=True).start()


async def fetch(ns: str, ip: str, port: int) -> bytes | str:
    """Connect from inside `ns`; the bytes the server sent, or the error's name."""

    def work() -> bytes | str:
        try:
            with socket.create_connection((ip, port), timeout=2) as s:
                return s.recv(64)
        except OSError as e:
            return type(e).__name__

    return await asyncio.to_thread(nsmod.call_in, ns, work)


async def nft_tables(ns: str) -> str:
    proc = await asyncio.to_thread(
        subprocess.run, ["nsenter", f"--net={ns}", "nft", "list", "tables"], capture_output=True, text=True
    )
    return proc.stdout
