"""The netlink half of the data plane, as plain blocking functions on an IPRoute (see netns.py
for where that IPRoute lives). Every function is idempotent: the manager calls them again after
a crash or a restart, and they converge instead of failing on "File exists".

Per overlay network (VNI v) a host has a bridge `shb<v>` and a VXLAN device `shx<v>` enslaved
to it (learning off, ARP proxy on); per container attachment a veth pair, the host end
`shv<task><i>` on the bridge, the other end `eth<i>` in the container's namespace."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
PREFIXES = ("shb", "shx", "shv")


def bridge_name(vni: int) -> str:
    return f"shb{vni}"  # VNIs are at most 24 bits (8 digits): 11 characters at most


def vxlan_name(vni: int) -> str:
    return f"shx{vni}"


def host_veth(task_id: str, index: int) -> str:
    """`shv` + 8 characters of the task id + the attachment index: 12-13 characters (IFNAMSIZ
    is 16 with the NUL). The task id's head is random base36, unique enough on one node; a clash
    fails the attach loudly ("File exists") rather than sharing a link."""
    return f"shv{task_id[:8]}{index}"


def vni_of(name: str) -> int | None:
    """The VNI of a shoal bridge or VXLAN device name, else None."""
    if name[:3] in ("shb", "shx") and name[3:].isdigit():
        return int(name[3:])
    return None


@dataclass(frozen=True)
class Peer:
    """A remote endpoint, as the VXLAN device needs it: its overlay IP and MAC, and the
    underlay address of the node it lives on."""

    ip: str
    mac: str
    node_addr: str


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _must(ipr: IPRoute, name: str) -> int:
    idx = _index(ipr, name)
    if idx is None:
        raise NetlinkError(errno.ENODEV, f"link {name} not found")
    return idx


def underlay_mtu(ipr: IPRoute, addr: str) -> int | None:
    """The MTU of the interface that holds `addr`, None if no interface does."""
    for msg in ipr.get_addr(family=2):
        if msg.get_attr("IFA_ADDRESS") == addr:
            link = ipr.get_links(msg["index"])[0]
            return int(link.get_attr("IFLA_MTU"))
    return None


def ensure_network(ipr: IPRoute, vni: int, gateway: str, prefixlen: int, local: str, mtu: int) -> None:
    """Bridge + VXLAN for `vni`, up, the bridge holding the network's gateway address (the same
    on every node: the VXLAN proxies ARP, so a gateway address is only ever answered locally)."""
    br = _index(ipr, bridge_name(vni))
    if br is None:
        with contextlib.suppress(NetlinkError):  # lost a race with ourselves: fine
            ipr.link("add", ifname=bridge_name(vni), kind="bridge", mtu=mtu)
        br = _must(ipr, bridge_name(vni))
    vx = _index(ipr, vxlan_name(vni))
    if vx is None:
        ipr.link(
            "add", ifname=vxlan_name(vni), kind="vxlan", vxlan_id=vni, vxlan_local=local,
            vxlan_port=VXLAN_PORT, vxlan_learning=0, vxlan_proxy=1, mtu=mtu,
        )  # fmt: skip
        vx = _must(ipr, vxlan_name(vni))
    ipr.link("set", index=vx, master=br, mtu=mtu, state="up")
    ipr.link("set", index=br, mtu=mtu, state="up")
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=br, family=2)}
    if gateway and (gateway, prefixlen) not in have:
        ipr.addr("add", index=br, address=gateway, prefixlen=prefixlen)


def remove_network(ipr: IPRoute, vni: int) -> None:
    for name in (vxlan_name(vni), bridge_name(vni)):
        delete_link(ipr, name)


def delete_link(ipr: IPRoute, name: str) -> None:
    idx = _index(ipr, name)
    if idx is not None:
        with contextlib.suppress(NetlinkError):  # already gone (a veth goes with its peer)
            ipr.link("del", index=idx)


def add_veth(
    ipr: IPRoute, host_name: str, peer_name: str, netns_fd: int, mac: str, mtu: int, bridge: str
) -> None:
    """A veth pair: `host_name` on `bridge` here, `peer_name` (with `mac`) created right inside
    the namespace `netns_fd`, so its name only has to be unique there. A leftover pair from a
    crashed attempt is replaced."""
    delete_link(ipr, host_name)
    ipr.link(
        "add", ifname=host_name, kind="veth", mtu=mtu,
        peer={"ifname": peer_name, "address": mac, "mtu": mtu, "net_ns_fd": netns_fd},
    )  # fmt: skip
    ipr.link("set", index=_must(ipr, host_name), master=_must(ipr, bridge), state="up")


def configure_container(ipr: IPRoute, ifaces: list[tuple[str, str]], gateway: str) -> None:
    """Inside the container's namespace: lo up, each (ifname, "ip/prefix") addressed and up,
    and a default route via `gateway` (the first network's)."""
    ipr.link("set", index=_must(ipr, "lo"), state="up")
    for name, cidr in ifaces:
        idx = _must(ipr, name)
        iface = ipaddress.IPv4Interface(cidr)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)}
        if (str(iface.ip), iface.network.prefixlen) not in have:
            ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=idx, state="up")
    if gateway and ifaces:
        ipr.route("replace", dst="0.0.0.0/0", gateway=gateway)


def shoal_links(ipr: IPRoute) -> list[str]:
    """Names of every shoal bridge, VXLAN and host veth in this namespace."""
    names = (link.get_attr("IFLA_IFNAME") for link in ipr.get_links())
    return sorted(n for n in names if n and n.startswith(PREFIXES))


def list_peers(ipr: IPRoute, vni: int) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """What the VXLAN device of `vni` holds: FDB entries {(mac, node_addr)} we added (self, with
    a remote destination; the bridge's learned `master` entries are not ours) and permanent
    neighbor entries {(ip, mac)}."""
    vx = _index(ipr, vxlan_name(vni))
    if vx is None:
        return set(), set()
    fdb = {
        (e.get_attr("NDA_LLADDR"), e.get_attr("NDA_DST"))
        for e in ipr.fdb("dump", ifindex=vx)
        if e.get_attr("NDA_DST") and e["flags"] & NTF_SELF and e["ifindex"] == vx
    }
    neigh = {
        (e.get_attr("NDA_DST"), e.get_attr("NDA_LLADDR"))
        for e in ipr.neigh("dump", ifindex=vx, family=2)
        if e["state"] & NUD_PERMANENT and e["ifindex"] == vx
    }
    return fdb, neigh


def sync_peers(ipr: IPRoute, vni: int, peers: Iterable[Peer]) -> tuple[int, int]:
    """Make the VXLAN device's FDB and neighbor entries exactly `peers`: add the missing, delete
    the stale. Returns (added, removed) entry counts."""
    vx = _must(ipr, vxlan_name(vni))
    want_fdb = {(p.mac, p.node_addr) for p in peers}
    want_neigh = {(p.ip, p.mac) for p in peers}
    have_fdb, have_neigh = list_peers(ipr, vni)
    added = removed = 0
    for mac, dst in have_fdb - want_fdb:
        with contextlib.suppress(NetlinkError):
            ipr.fdb("del", ifindex=vx, lladdr=mac, dst=dst, flags=NTF_SELF, state=NUD_PERMANENT | NUD_NOARP)
            removed += 1
    for ip, mac in have_neigh - want_neigh:
        with contextlib.suppress(NetlinkError):
            ipr.neigh("del", ifindex=vx, dst=ip, lladdr=mac)
            removed += 1
    for mac, dst in want_fdb - have_fdb:
        # Explicit self (the VXLAN device's own table, not its bridge's) and permanent: pyroute2
        # fills these in for "add" only. "replace" so that a MAC moving between nodes just moves.
        ipr.fdb("replace", ifindex=vx, lladdr=mac, dst=dst, flags=NTF_SELF, state=NUD_PERMANENT | NUD_NOARP)
        added += 1
    for ip, mac in want_neigh - have_neigh:
        ipr.neigh("replace", ifindex=vx, dst=ip, lladdr=mac, state=NUD_PERMANENT)
        added += 1
    return added, removed


__all__ = [
    "VXLAN_OVERHEAD",
    "Peer",
    "add_veth",
    "bridge_name",
    "configure_container",
    "delete_link",
    "ensure_network",
    "host_veth",
    "list_peers",
    "remove_network",
    "shoal_links",
    "sync_peers",
    "underlay_mtu",
    "vni_of",
    "vxlan_name",
]
