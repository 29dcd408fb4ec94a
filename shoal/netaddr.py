"""Overlay addressing both halves agree on: a MAC is derived from the IPv4 address, as Docker
does (02:42 + the four address bytes), so the manager never has to store or push MACs it could
compute, and two tasks can only share a MAC if they share an address."""

from __future__ import annotations

import ipaddress


def mac_for(addr: str) -> str:
    """`10.0.1.5` or `10.0.1.5/24` -> `02:42:0a:00:01:05`."""
    ip = ipaddress.IPv4Address(addr.split("/")[0])
    return ":".join(f"{b:02x}" for b in (0x02, 0x42, *ip.packed))


__all__ = ["mac_for"]
