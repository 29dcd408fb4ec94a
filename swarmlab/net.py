"""The lab's network: an underlay bridge in its own namespace, one namespace per host.

Every link is created from inside the underlay namespace (never in the machine's own namespace),
so link names only have to be unique within one lab and two labs can never collide. The underlay
has no uplink and no route out: lab traffic stays between the lab's own namespaces.
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

NETNS_DIR = Path("/run/netns")
BRIDGE = "br0"
PREFIXLEN = 24
NUD_PERMANENT = 0x80


class NetError(Exception):
    """A namespace or link operation failed."""


def ns_prefix(lab: str) -> str:
    return f"sl-{lab}-"


def underlay_ns(lab: str) -> str:
    return f"{ns_prefix(lab)}ul"


def host_ns(lab: str, host: str) -> str:
    return f"{ns_prefix(lab)}{host}"


def underlay_link(host: str) -> str:
    """The underlay-side end of a host's veth (inside the underlay namespace)."""
    name = f"ul-{host}"
    if len(name) > 15:
        raise NetError(f"host name {host!r} is too long for a link name (at most 12 characters)")
    return name


def subnet(lab: str) -> str:
    """10.77.X.0/24, X derived from the lab name (labs are isolated anyway; this eases reading logs)."""
    return f"10.77.{zlib.crc32(lab.encode()) % 256}"


def registry_addr(lab: str) -> str:
    return f"{subnet(lab)}.1"


def host_addr(lab: str, index: int) -> str:
    if not 0 <= index <= 240:
        raise NetError(f"no address left for host index {index}")
    return f"{subnet(lab)}.{10 + index}"


def list_lab_namespaces(lab: str) -> list[str]:
    prefix = ns_prefix(lab)
    try:
        names = netns.listnetns()
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def ns_identity(ns: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a named namespace, comparable with /proc/PID/ns/net."""
    try:
        st = os.stat(NETNS_DIR / ns)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _up(ipr: IPRoute, ifname: str) -> int:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise NetError(f"link {ifname} not found")
    ipr.link("set", index=idx[0], state="up")
    return int(idx[0])


def create_underlay(lab: str) -> None:
    ns = underlay_ns(lab)
    try:
        netns.create(ns)
        with IPRoute(netns=ns, flags=0) as ipr:
            _up(ipr, "lo")
            ipr.link("add", ifname=BRIDGE, kind="bridge")
            idx = _up(ipr, BRIDGE)
            # The bridge's own address is where the lab's registry listens.
            ipr.addr("add", index=idx, address=registry_addr(lab), prefixlen=PREFIXLEN)
    except (NetlinkError, OSError) as e:
        raise NetError(f"cannot create underlay namespace {ns}: {e}") from e


def create_host(lab: str, host: str, addr: str) -> None:
    """A host namespace with `eth0` (addr/24) wired to the underlay bridge by a veth pair."""
    ns, ul = host_ns(lab, host), underlay_ns(lab)
    link = underlay_link(host)
    try:
        netns.create(ns)
        with IPRoute(netns=ul, flags=0) as ipr:
            ipr.link("add", ifname=link, kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
            br = ipr.link_lookup(ifname=BRIDGE)[0]
            idx = ipr.link_lookup(ifname=link)[0]
            ipr.link("set", index=idx, master=br, state="up")
        with IPRoute(netns=ns, flags=0) as ipr:
            _up(ipr, "lo")
            idx = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=idx, address=addr, prefixlen=PREFIXLEN)
            ipr.link("set", index=idx, state="up")
    except (NetlinkError, OSError, IndexError) as e:
        raise NetError(f"cannot create host namespace {ns}: {e}") from e


def set_host_link(lab: str, host: str, up: bool) -> None:
    """Cut (or restore) a host's wire to the underlay: its veth end on the bridge goes down (up)."""
    link = underlay_link(host)
    try:
        with IPRoute(netns=underlay_ns(lab), flags=0) as ipr:
            idx = ipr.link_lookup(ifname=link)
            if not idx:
                raise NetError(f"link {link} not found in {underlay_ns(lab)}")
            ipr.link("set", index=idx[0], state="up" if up else "down")
    except (NetlinkError, OSError) as e:
        raise NetError(f"cannot set {link} {'up' if up else 'down'}: {e}") from e


def wait_carrier(lab: str, host: str, timeout: float = 3.0) -> bool:
    """Wait until the host's eth0 sees its peer again (operstate UP) after a heal."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with IPRoute(netns=host_ns(lab, host), flags=0) as ipr:
                idx = ipr.link_lookup(ifname="eth0")
                if idx and ipr.get_links(idx[0])[0].get_attr("IFLA_OPERSTATE") == "UP":
                    return True
        except (NetlinkError, OSError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def forget_neighbors(lab: str, host: str, addr: str, others: list[str]) -> None:
    """After a heal: drop the host's ARP entries, and the other hosts' entries for its address.
    An ARP resolution started during the partition would otherwise fail just after the heal and
    take the first new connections down with it (EHOSTUNREACH)."""
    for h in [host, *others]:
        try:
            with IPRoute(netns=host_ns(lab, h), flags=0) as ipr:
                idx = ipr.link_lookup(ifname="eth0")
                if not idx:
                    continue
                for entry in ipr.neigh("dump", ifindex=idx[0]):
                    dst = entry.get_attr("NDA_DST")
                    if dst and (h == host or dst == addr) and not entry["state"] & NUD_PERMANENT:
                        with contextlib.suppress(NetlinkError):
                            ipr.neigh("del", dst=dst, ifindex=idx[0])
        except (NetlinkError, OSError):
            continue


def host_link_up(lab: str, host: str) -> bool | None:
    """Whether a host's underlay link is administratively up (None: no such link)."""
    try:
        with IPRoute(netns=underlay_ns(lab), flags=0) as ipr:
            idx = ipr.link_lookup(ifname=underlay_link(host))
            if not idx:
                return None
            link = ipr.get_links(idx[0])[0]
            return bool(link["flags"] & 1)  # IFF_UP
    except (NetlinkError, OSError, NetError):
        return None


def remove_namespace(ns: str) -> None:
    """Remove a named namespace; its links go with it (a veth dies with either end)."""
    try:
        netns.remove(ns)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise NetError(f"cannot remove namespace {ns}: {e}") from e
