"""Address management for overlay networks, as pure functions of what the store holds:
subnets carved as /24s from the default pool (Swarm's default-addr-pool), VNIs from 4096 up, and
the lowest free address of a subnet. The callers run them inside a store transaction that also
bumps a version the concurrent callers read, so two leaders (or two calls) can never hand out
the same subnet, VNI or address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from shoal.errors import FailedPrecondition, InvalidSpec

DEFAULT_POOL = ipaddress.IPv4Network("10.0.0.0/8")
POOL_PREFIX = 24
FIRST_VNI = 4096
MAX_VNI = (1 << 24) - 1

Net = ipaddress.IPv4Network


def parse_subnet(cidr: str) -> Net:
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as e:
        raise InvalidSpec(f"invalid subnet {cidr!r}: {e}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidSpec(f"invalid subnet {cidr!r}: only IPv4 overlays are supported")
    if net.num_addresses < 4:
        raise InvalidSpec(f"subnet {cidr} is too small")
    return net


def check_free(subnet: Net, taken: Iterable[Net]) -> None:
    for other in taken:
        if subnet.overlaps(other):
            raise InvalidSpec(f"subnet {subnet} overlaps with {other}, already in use by another network")


def next_subnet(taken: Iterable[Net]) -> Net:
    used = list(taken)
    for candidate in DEFAULT_POOL.subnets(new_prefix=POOL_PREFIX):
        if candidate.network_address.packed[2] == 0:
            continue  # 10.0.0.0/24 stays out, as Docker leaves its first pool subnet
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise FailedPrecondition("the default address pool is exhausted")


def next_vni(taken: Iterable[int]) -> int:
    used = set(taken)
    for vni in range(FIRST_VNI, MAX_VNI):
        if vni not in used:
            return vni
    raise FailedPrecondition("no VXLAN id left")


def gateway(subnet: Net) -> str:
    return str(subnet.network_address + 1)


def next_address(subnet: Net, taken: set[str]) -> str:
    """The lowest free host address (the gateway counts as taken), as "a.b.c.d/prefix"."""
    gw = gateway(subnet)
    for host in subnet.hosts():
        ip = str(host)
        if ip != gw and ip not in taken:
            return f"{ip}/{subnet.prefixlen}"
    raise FailedPrecondition(f"no address left in {subnet}")


def mac_of(address: str) -> str:
    """MACs derived from IPs, as Docker's overlay driver does (02:42 + the four IPv4 bytes)."""
    ip = ipaddress.ip_address(address.split("/")[0])
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)
