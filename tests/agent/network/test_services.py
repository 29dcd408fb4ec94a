"""Services on the data plane (two fake hosts): VIP load balancing with nftables following the
running flag, the embedded DNS answering from the tables, and a published port forwarded by
the node to its own task."""

from __future__ import annotations

import asyncio
import os

import dns.message
import dns.query
import dns.rcode
import pytest

from agent.network import netns
from tests.agent.network.fakehosts import Lab, fetch, network, serve, table, task

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

NET = network("neta", 4096, "10.0.1.0/24")
VIP = "10.0.1.100"


async def resolve(ns: str, name: str) -> tuple[int, list[str]]:
    def work() -> tuple[int, list[str]]:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.11", timeout=2)
        return reply.rcode(), sorted(rd.address for rrset in reply.answer for rd in rrset)

    return await asyncio.to_thread(netns.call_in, ns, work)


async def test_vip_dns_and_published_port(lab: Lab) -> None:
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    client = task("c1ccccccccccc", "cli", (NET, "10.0.1.10/24"))
    b1 = task("b1bbbbbbbbbbb", "web", (NET, "10.0.1.11/24"))
    b2 = task("b2bbbbbbbbbbb", "web", (NET, "10.0.1.12/24"))
    ns_c = await h1.mgr.attach(client)
    ns_b1 = await h1.mgr.attach(b1)
    ns_b2 = await h2.mgr.attach(b2)
    serve(lab, ns_b1, "10.0.1.11", 80, b"b1")
    serve(lab, ns_b2, "10.0.1.12", 80, b"b2")
    services = [("web", "web", VIP, [(8080, 80)]), ("cli", "client", "", [])]

    async def push(b1_running: bool, b2_running: bool) -> None:
        t = table(NET, [(client, h1, True), (b1, h1, b1_running), (b2, h2, b2_running)], services)
        for h in (h1, h2):
            await h.mgr.set_network_peers({"neta": t})

    await push(True, True)
    seen = {await fetch(ns_c, VIP, 80) for _ in range(6)}
    assert seen == {b"b1", b"b2"}

    assert await resolve(ns_c, "web") == (dns.rcode.NOERROR, [VIP])
    assert await resolve(ns_c, "tasks.web") == (dns.rcode.NOERROR, ["10.0.1.11", "10.0.1.12"])
    assert await resolve(ns_c, "client") == (dns.rcode.NOERROR, ["10.0.1.10"])  # dnsrr: task IPs
    assert (await resolve(ns_c, "nothing.here"))[0] == dns.rcode.NXDOMAIN

    # Published port 8080 on h1 goes to h1's own task, from another host and from h1 itself.
    assert await fetch(h2.ns, h1.addr, 8080) == b"b1"
    assert await fetch(h1.ns, h1.addr, 8080) == b"b1"
    assert await fetch(h2.ns, h2.addr, 8080) == b"b2"

    # b2 stops running: the VIP, DNS and h2's published port follow.
    await push(True, False)
    assert {await fetch(ns_c, VIP, 80) for _ in range(4)} == {b"b1"}
    assert await resolve(ns_c, "tasks.web") == (dns.rcode.NOERROR, ["10.0.1.11"])
    assert await fetch(h1.ns, h2.addr, 8080) == "ConnectionRefusedError"

    # No backend at all: refused at once, not a timeout.
    await push(False, False)
    assert await fetch(ns_c, VIP, 80) == "ConnectionRefusedError"
    assert await resolve(ns_c, "web") == (dns.rcode.NOERROR, [VIP])
    assert await resolve(ns_c, "tasks.web") == (dns.rcode.NOERROR, [])
