"""The agent's overlay data plane: one NetworkManager per node, in swarmd's process.

Why this shape: the manager pushes, per overlay network a local task uses, one NetworkPeers
table (every endpoint and service of that network); everything here is derived from those
tables and from what this node attached, and every derived thing is reconciled to *exactly*
the wanted state (FDB and neighbor entries diffed against the kernel's, nft tables replaced
whole), so restarts, missed updates and half-done operations heal on the next call instead of
accumulating. All kernel work runs off the event loop (asyncio.to_thread) and never forks:
netlink in another namespace happens in a thread that setns'ed there (netns.py), nft runs as
`nsenter --net=PATH nft -f -`. One lock serialises attach, detach, restore and peer updates.

`host_netns` (a namespace file) makes everything this class does "in the host namespace"
happen there instead of in the process's own: that is how tests run two nodes in one process,
and it is None in swarmd (which the lab already starts inside its host's namespace)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.exec import ExecError
from agent.network import links, netns, nft
from agent.network.dns import DnsServer
from agent.network.endpoint import Endpoint, EndpointStore, attachments_of
from agent.network.tables import TableResolver, Tables, container_vips, host_ports, remote_peers
from shoal.api import Task
from shoal.api.dispatcher_pb2 import NetworkPeers
from shoal.errors import FailedPrecondition
from shoal.log import get_logger
from shoal.netaddr import mac_for

log = get_logger("network")
T = TypeVar("T")
DEFAULT_MTU = 1500
_ERRORS = (NetlinkError, OSError, nft.NftError, FailedPrecondition)


class NetworkManager:
    def __init__(
        self, node_name: str, underlay_addr: str, state_dir: Path, host_netns: str | None = None
    ) -> None:
        self.node_name = node_name
        self.underlay_addr = underlay_addr
        self.state_dir = state_dir
        self.host_netns = host_netns
        self._store = EndpointStore(state_dir / "endpoints")
        self._lock = asyncio.Lock()
        self._endpoints: dict[str, Endpoint] | None = None  # loaded from disk on first use
        self._tables: dict[str, NetworkPeers] | None = None  # None until the manager sent any
        self._nft: dict[str, str] = {}  # task id ("" for the host) -> the table text applied
        self._dns: dict[str, DnsServer] = {}
        self._mtu: int | None = None

    # ---- public API ----------------------------------------------------------------------
    def netns_path(self, task_id: str) -> Path:
        return self.state_dir / "netns" / task_id

    async def attach(self, task: Task) -> str:
        """Create (or re-adopt) the task's namespace with one interface per overlay attachment.
        Returns the namespace path for the bundle, or "" for a task without overlay networks
        (it keeps a private namespace of its own, as before). Raises ExecError."""
        attachments = attachments_of(task)
        if not attachments:
            return ""
        async with self._lock:
            eps = self._load()
            ep = eps.get(task.id)
            if ep is not None and netns.is_netns(Path(ep.netns)):
                await self._start_dns(ep)
                return ep.netns
            if ep is not None:  # half made before a crash: start over
                await self._teardown(ep)
            ep = Endpoint(task.id, task.service_id, str(self.netns_path(task.id)), attachments)
            self._store.save(ep)  # first, so that whatever follows can be found and removed
            eps[task.id] = ep
            start = asyncio.get_running_loop().time()
            try:
                await self._build(ep)
                await self._start_dns(ep, strict=True)
            except _ERRORS as e:
                await self._teardown(ep)
                raise ExecError(f"cannot attach task {task.id} to its networks: {e}") from e
            log.info(
                "network_attached", task_id=task.id, netns=ep.netns, networks=ep.network_ids,
                ms=round((asyncio.get_running_loop().time() - start) * 1000, 1),
            )  # fmt: skip
            return ep.netns

    async def detach(self, task_id: str) -> None:
        """Remove everything attach made for the task (idempotent)."""
        async with self._lock:
            ep = self._load().get(task_id)
            try:
                if ep is not None:
                    await self._teardown(ep)
                    await self._sync_host_nft()
                else:
                    await asyncio.to_thread(netns.remove, self.netns_path(task_id))
            except _ERRORS as e:
                raise ExecError(f"cannot detach task {task_id} from its networks: {e}") from e
        if ep is not None:
            log.info("network_detached", task_id=task_id)

    async def set_network_peers(self, tables: dict[str, NetworkPeers]) -> None:
        """The node's whole current set of tables, keyed by network id. Reconciles FDB and
        neighbor entries, VIP and published-port rules. Never raises for a data-plane error:
        it logs, and the next call retries (nothing is cached until it was applied)."""
        async with self._lock:
            self._load()
            self._tables = dict(tables)
            await self._reconcile()

    async def restore(self, task_ids: Iterable[str]) -> None:
        """After an agent restart: keep (and restart the DNS of) the endpoints of `task_ids`
        whose namespace still exists, remove everything else shoal made on this node."""
        keep = set(task_ids)
        async with self._lock:
            eps = self._load()
            try:
                for ep in list(eps.values()):
                    if ep.task_id not in keep or not netns.is_netns(Path(ep.netns)):
                        await self._teardown(ep)
                await self._sweep()
                await self._ensure_networks()
            except _ERRORS as e:
                raise ExecError(f"cannot restore the network state: {e}") from e
            self._nft.clear()  # unknown after a restart: the next sync applies everything
            for ep in eps.values():
                await self._start_dns(ep)
            if self._tables is not None:
                await self._reconcile()
        log.info("network_restored", endpoints=len(eps))

    async def close(self) -> None:
        """Stop the DNS servers. Namespaces, links and rules stay: containers keep running."""
        async with self._lock:
            for task_id in list(self._dns):
                await self._stop_dns(task_id)

    async def peers(self, network_vni: int) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """The VXLAN device's entries ({(mac, node_addr)}, {(ip, mac)}), for tests and checks."""
        return await self._host(lambda ipr: links.list_peers(ipr, network_vni))

    async def links(self) -> list[str]:
        """Every shoal link (shb*, shx*, shv*) in the host namespace."""
        return await self._host(links.shoal_links)

    # ---- building and tearing down ---------------------------------------------------------
    def _load(self) -> dict[str, Endpoint]:
        if self._endpoints is None:
            self._endpoints = self._store.load()
        return self._endpoints

    async def _host(self, fn: Callable[[IPRoute], T]) -> T:
        return await asyncio.to_thread(netns.run_in, self.host_netns, fn)

    async def _overlay_mtu(self) -> int:
        if self._mtu is None:
            mtu = await self._host(lambda ipr: links.underlay_mtu(ipr, self.underlay_addr))
            if mtu is None:
                log.warning("underlay_address_not_found", addr=self.underlay_addr, mtu=DEFAULT_MTU)
            self._mtu = (mtu or DEFAULT_MTU) - links.VXLAN_OVERHEAD
        return self._mtu

    async def _build(self, ep: Endpoint) -> None:
        mtu = await self._overlay_mtu()
        await asyncio.to_thread(netns.create, Path(ep.netns))

        def host(ipr: IPRoute) -> None:
            fd = os.open(ep.netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                for a in ep.attachments:
                    links.ensure_network(ipr, a.vni, a.gateway, a.prefixlen, self.underlay_addr, mtu)
                    mac = mac_for(a.address)
                    links.add_veth(ipr, a.host_veth, a.ifname, fd, mac, mtu, links.bridge_name(a.vni))
            finally:
                os.close(fd)

        await self._host(host)
        ifaces = [(a.ifname, a.address) for a in ep.attachments]
        gateway = ep.attachments[0].gateway
        await asyncio.to_thread(
            netns.run_in, ep.netns, lambda ipr: links.configure_container(ipr, ifaces, gateway)
        )
        await self._sync_fdb(strict=True)
        await self._sync_container_nft(ep, strict=True)
        await self._sync_host_nft()

    async def _teardown(self, ep: Endpoint) -> None:
        """Remove one endpoint and the networks nobody else on this node uses any more."""
        eps = self._load()
        await self._stop_dns(ep.task_id)
        eps.pop(ep.task_id, None)
        in_use = {a.vni for other in eps.values() for a in other.attachments}
        unused = {a.vni for a in ep.attachments} - in_use

        def host(ipr: IPRoute) -> None:
            for a in ep.attachments:
                links.delete_link(ipr, a.host_veth)  # its peer in the container goes with it
            for vni in unused:
                links.remove_network(ipr, vni)

        await self._host(host)
        await asyncio.to_thread(netns.remove, Path(ep.netns))
        self._store.delete(ep.task_id)
        self._nft.pop(ep.task_id, None)

    async def _sweep(self) -> None:
        """Remove shoal links and namespace files that no endpoint we keep accounts for."""
        eps = self._load()
        veths = {a.host_veth for ep in eps.values() for a in ep.attachments}
        vnis = {a.vni for ep in eps.values() for a in ep.attachments}

        def host(ipr: IPRoute) -> list[str]:
            gone = []
            for name in links.shoal_links(ipr):
                vni = links.vni_of(name)
                if (vni is not None and vni not in vnis) or (name.startswith("shv") and name not in veths):
                    links.delete_link(ipr, name)
                    gone.append(name)
            return gone

        gone = await self._host(host)
        ns_dir = self.state_dir / "netns"
        known = {Path(ep.netns).name for ep in eps.values()}
        for path in sorted(ns_dir.iterdir()) if ns_dir.exists() else []:
            if path.name not in known:
                await asyncio.to_thread(netns.remove, path)
                gone.append(str(path))
        if gone:
            log.info("network_swept", removed=gone)

    async def _ensure_networks(self) -> None:
        mtu = await self._overlay_mtu()
        nets = {a.vni: a for ep in self._load().values() for a in ep.attachments}

        def host(ipr: IPRoute) -> None:
            for a in nets.values():
                links.ensure_network(ipr, a.vni, a.gateway, a.prefixlen, self.underlay_addr, mtu)

        await self._host(host)

    # ---- reconciling to the tables ---------------------------------------------------------
    def _tables_now(self) -> Tables:
        return self._tables or {}

    async def _reconcile(self) -> None:
        await self._sync_fdb(strict=False)
        for ep in list(self._load().values()):
            await self._sync_container_nft(ep, strict=False)
        try:
            await self._sync_host_nft()
        except _ERRORS as e:
            log.error("host_rules_failed", error=str(e))

    async def _sync_fdb(self, *, strict: bool) -> None:
        """FDB and neighbor entries of every local network = the remote endpoints of its table
        (none known yet: leave what is there, e.g. across a restart, until a table arrives)."""
        if self._tables is None:
            return
        eps = self._load()
        local = set(eps)
        nets = {a.network_id: a.vni for ep in eps.values() for a in ep.attachments}
        want = {
            vni: remote_peers(self._tables[nid], self.underlay_addr, local) if nid in self._tables else []
            for nid, vni in nets.items()
        }

        def host(ipr: IPRoute) -> dict[int, tuple[int, int]]:
            out = {}
            for vni, peers in want.items():
                try:
                    out[vni] = links.sync_peers(ipr, vni, peers)
                except NetlinkError as e:
                    if strict:
                        raise
                    log.error("peer_sync_failed", vni=vni, error=str(e))
            return out

        for vni, (added, removed) in (await self._host(host)).items():
            if added or removed:
                log.info("peers_synced", vni=vni, added=added, removed=removed)

    async def _sync_container_nft(self, ep: Endpoint, *, strict: bool) -> None:
        text = nft.render_container(container_vips(self._tables_now(), ep.network_ids))
        if self._nft.get(ep.task_id) == text:
            return
        try:
            await asyncio.to_thread(nft.apply, ep.netns, text)
        except nft.NftError as e:
            if strict:
                raise
            log.error("vip_rules_failed", task_id=ep.task_id, error=str(e))
            return
        self._nft[ep.task_id] = text

    async def _sync_host_nft(self) -> None:
        eps = self._load()
        bridges = sorted({links.bridge_name(a.vni) for ep in eps.values() for a in ep.attachments})
        if bridges:
            rules = nft.HostRules(
                bridges=bridges,
                ports=host_ports(self._tables_now(), {t: ep.network_ids for t, ep in eps.items()}),
            )
            text = nft.render_host(rules)
        else:  # the last network went: leave no trace
            text = nft.delete_text(nft.HOST_TABLE)
        if self._nft.get("") == text:
            return
        if bridges:
            await self._forwarding_on()
        await asyncio.to_thread(nft.apply, self.host_netns, text)
        self._nft[""] = text

    async def _forwarding_on(self) -> None:
        def write() -> None:
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1\n")

        # /proc/sys/net shows the namespace of the thread that opens it.
        if self.host_netns:
            await asyncio.to_thread(netns.call_in, self.host_netns, write)
        else:
            await asyncio.to_thread(write)

    # ---- DNS ---------------------------------------------------------------------------------
    async def _start_dns(self, ep: Endpoint, *, strict: bool = False) -> None:
        if ep.task_id in self._dns:
            return
        server = DnsServer(ep.netns, TableResolver(self._tables_now, ep.network_ids))
        try:
            await server.start()
        except _ERRORS as e:
            if strict:
                raise
            log.error("dns_start_failed", task_id=ep.task_id, error=str(e))
            return
        self._dns[ep.task_id] = server

    async def _stop_dns(self, task_id: str) -> None:
        server = self._dns.pop(task_id, None)
        if server is not None:
            await server.close()


__all__ = ["NetworkManager"]
