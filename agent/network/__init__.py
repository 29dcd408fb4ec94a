"""The agent's overlay data plane (bridges, VXLAN, veths, FDB/neighbor entries, VIP and
published-port rules) and the embedded DNS server. See docs/design/network.md."""

from agent.network.dns import DnsServer, Resolver, resolv_conf
from agent.network.manager import NetworkManager
from agent.network.tables import TableResolver

__all__ = ["DnsServer", "NetworkManager", "Resolver", "TableResolver", "resolv_conf"]
