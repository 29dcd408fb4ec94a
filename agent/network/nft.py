"""nftables for the data plane: VIP load balancing inside each container's namespace, and
published ports plus network isolation in the host's. This kernel has no IPVS; nf_tables with
numgen and NAT does the same job for TCP and UDP (one DNAT decision per connection, which
conntrack then keeps).

Every change is one whole table, rendered from scratch and applied as one `nft -f -`
transaction ("create if missing, delete, define"), so a table is never half updated and never
drifts from what we rendered. Callers apply only when the text changed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTAINER_TABLE = "shoal"
HOST_TABLE = "shoal-host"
NFT_TIMEOUT = 10.0


class NftError(Exception):
    """nft refused a ruleset or could not run."""


@dataclass(frozen=True)
class Vip:
    vip: str
    backends: tuple[str, ...]  # running task IPs, no prefix


@dataclass(frozen=True)
class PublishedPort:
    protocol: str  # "tcp" | "udp"
    published: int
    target: int
    backends: tuple[str, ...]  # this node's running tasks of the service


@dataclass
class HostRules:
    bridges: list[str] = field(default_factory=list)
    ports: list[PublishedPort] = field(default_factory=list)


def _numgen(backends: tuple[str, ...]) -> str:
    items = ", ".join(f"{i} : {ip}" for i, ip in enumerate(backends))
    return f"numgen inc mod {len(backends)} map {{ {items} }}"


def _replace(table: str, body: list[str]) -> str:
    lines = [f"table ip {table} {{}}", f"delete table ip {table}", f"table ip {table} {{", *body, "}"]
    return "\n".join(lines) + "\n"


def render_container(vips: Iterable[Vip]) -> str:
    """The container namespace's table: connections to a VIP go to one of its running backends
    (round robin); a VIP with none is refused at once rather than left to time out (in a filter
    chain: a nat chain sees only a flow's first packet and cannot reject)."""
    dnat, reject = [], []
    for v in sorted(vips, key=lambda v: v.vip):
        if v.backends:
            dnat.append(f"    ip daddr {v.vip} dnat to {_numgen(v.backends)}")
        else:
            reject.append(f"    ip daddr {v.vip} meta l4proto tcp reject with tcp reset")
            reject.append(f"    ip daddr {v.vip} reject")
    body = [
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        *dnat,
        "  }",
        "  chain nobackend {",
        "    type filter hook output priority 0; policy accept;",
        *reject,
        "  }",
    ]
    return _replace(CONTAINER_TABLE, body)


def render_host(rules: HostRules) -> str:
    """The host's table. Published ports: connections to one of this node's own addresses go
    to a local running task (from outside: prerouting; from the node itself: output). Forward:
    traffic stays within its own network's bridge (with br_netfilter, bridged frames pass here
    too), apart from published-port connections and their replies; nothing else goes in or out
    of a shoal bridge, so two overlay networks on one node cannot reach each other."""
    dnat = []
    for p in sorted(rules.ports, key=lambda p: (p.protocol, p.published)):
        if p.backends:
            dnat.append(
                f"    fib daddr type local {p.protocol} dport {p.published} "
                f"dnat to {_numgen(p.backends)} : {p.target}"
            )
    forward = [f'    iifname "{b}" oifname "{b}" accept' for b in sorted(rules.bridges)]
    body = [
        "  chain prerouting {",
        "    type nat hook prerouting priority -100; policy accept;",
        *dnat,
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        *(r.replace("fib daddr", "ip daddr != 127.0.0.0/8 fib daddr", 1) for r in dnat),
        "  }",
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        *forward,
        "    ct status dnat accept",
        "    ct state established,related accept",
        '    iifname "shb*" drop',
        '    oifname "shb*" drop',
        "  }",
    ]
    return _replace(HOST_TABLE, body)


def delete_text(table: str) -> str:
    return f"table ip {table} {{}}\ndelete table ip {table}\n"


def apply(netns_path: str | None, text: str) -> None:
    """Load `text` with `nft -f -` in the namespace at `netns_path` (None: ours). Blocking."""
    argv = ["nft", "-f", "-"]
    if netns_path:
        argv = ["nsenter", f"--net={netns_path}", *argv]
    try:
        proc = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=NFT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NftError(f"cannot run nft: {e}") from e
    if proc.returncode != 0:
        raise NftError(f"nft failed: {proc.stderr.strip()[-500:]}")


__all__ = [
    "CONTAINER_TABLE",
    "HOST_TABLE",
    "HostRules",
    "NftError",
    "PublishedPort",
    "Vip",
    "apply",
    "delete_text",
    "render_container",
    "render_host",
]
