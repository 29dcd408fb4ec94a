"""The overlay data plane on two fake hosts (namespaces on an underlay bridge): VXLAN
reachability, FDB/neighbor entries equal to the peers, isolation between networks, restore
after a restart, and detach leaving nothing behind."""

from __future__ import annotations

import os

import pytest

from agent.network import NetworkManager
from shoal.netaddr import mac_for
from tests.agent.network.fakehosts import Lab, network, nft_tables, ping, table, task

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

NET_A = network("neta", 4096, "10.0.1.0/24")
NET_B = network("netb", 4097, "10.0.2.0/24")


def entries(*peers: tuple[str, str]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """Expected (fdb, neigh) for [(overlay ip, node addr)]."""
    return {(mac_for(ip), node) for ip, node in peers}, {(ip, mac_for(ip)) for ip, _ in peers}


async def test_vxlan_peers_follow_the_tables(lab: Lab) -> None:
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    t1 = task("t1aaaaaaaaaaa", "web", (NET_A, "10.0.1.5/24"))
    t2 = task("t2bbbbbbbbbbb", "web", (NET_A, "10.0.1.6/24"))
    t3 = task("t3ccccccccccc", "web", (NET_A, "10.0.1.7/24"))
    ns1 = await h1.mgr.attach(t1)
    ns2 = await h2.mgr.attach(t2)
    tables = {"neta": table(NET_A, [(t1, h1, True), (t2, h2, True)])}
    for h in (h1, h2):
        await h.mgr.set_network_peers(tables)
    assert await ping(ns1, "10.0.1.6")
    assert await ping(ns2, "10.0.1.5")
    assert await ping(ns1, "10.0.1.1")  # the anycast gateway, answered by h1's own bridge
    assert await h1.mgr.peers(4096) == entries(("10.0.1.6", h2.addr))
    assert await h2.mgr.peers(4096) == entries(("10.0.1.5", h1.addr))

    # A third task on h2; then t2 goes.
    ns3 = await h2.mgr.attach(t3)
    tables = {"neta": table(NET_A, [(t1, h1, True), (t2, h2, True), (t3, h2, False)])}
    for h in (h1, h2):
        await h.mgr.set_network_peers(tables)
    assert await h1.mgr.peers(4096) == entries(("10.0.1.6", h2.addr), ("10.0.1.7", h2.addr))
    assert await h2.mgr.peers(4096) == entries(("10.0.1.5", h1.addr))  # local ones need none
    await h2.mgr.detach(t2.id)
    await h2.mgr.detach(t2.id)  # idempotent
    tables = {"neta": table(NET_A, [(t1, h1, True), (t3, h2, True)])}
    for h in (h1, h2):
        await h.mgr.set_network_peers(tables)
    assert await h1.mgr.peers(4096) == entries(("10.0.1.7", h2.addr))
    assert await ping(ns1, "10.0.1.7")
    assert await ping(ns3, "10.0.1.5")
    assert not await ping(ns1, "10.0.1.6")
    assert sorted(await h2.mgr.links()) == ["shb4096", "shvt3cccccc0", "shx4096"]


async def test_networks_are_isolated(lab: Lab) -> None:
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    a1 = task("a1aaaaaaaaaaa", "sa", (NET_A, "10.0.1.5/24"))
    a2 = task("a2aaaaaaaaaaa", "sa", (NET_A, "10.0.1.6/24"))
    b1 = task("b1bbbbbbbbbbb", "sb", (NET_B, "10.0.2.5/24"))
    b2 = task("b2bbbbbbbbbbb", "sb", (NET_B, "10.0.2.6/24"))
    ns_a1 = await h1.mgr.attach(a1)
    await h2.mgr.attach(a2)
    ns_b1 = await h1.mgr.attach(b1)
    await h2.mgr.attach(b2)
    tables = {
        "neta": table(NET_A, [(a1, h1, True), (a2, h2, True)]),
        "netb": table(NET_B, [(b1, h1, True), (b2, h2, True)]),
    }
    for h in (h1, h2):
        await h.mgr.set_network_peers(tables)
    assert await ping(ns_b1, "10.0.2.6")
    assert await ping(ns_a1, "10.0.1.6")
    assert not await ping(ns_b1, "10.0.1.5")  # same host, other network
    assert not await ping(ns_b1, "10.0.1.6")  # other host, other network
    assert not await ping(ns_a1, "10.0.2.5")


async def test_a_container_on_two_networks(lab: Lab) -> None:
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    both = task("d1ddddddddddd", "sd", (NET_A, "10.0.1.9/24"), (NET_B, "10.0.2.9/24"))
    a2 = task("a2aaaaaaaaaaa", "sa", (NET_A, "10.0.1.6/24"))
    b2 = task("b2bbbbbbbbbbb", "sb", (NET_B, "10.0.2.6/24"))
    ns = await h1.mgr.attach(both)
    await h2.mgr.attach(a2)
    await h2.mgr.attach(b2)
    tables = {
        "neta": table(NET_A, [(both, h1, True), (a2, h2, True)]),
        "netb": table(NET_B, [(both, h1, True), (b2, h2, True)]),
    }
    for h in (h1, h2):
        await h.mgr.set_network_peers(tables)
    assert await ping(ns, "10.0.1.6")  # via eth0
    assert await ping(ns, "10.0.2.6")  # via eth1


async def test_restore_keeps_one_set_and_detach_removes_everything(lab: Lab) -> None:
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    t1 = task("t1aaaaaaaaaaa", "web", (NET_A, "10.0.1.5/24"))
    t2 = task("t2bbbbbbbbbbb", "web", (NET_A, "10.0.1.6/24"))
    gone = task("g1ggggggggggg", "sb", (NET_B, "10.0.2.5/24"))
    r1 = task("r1rrrrrrrrrrr", "web", (NET_A, "10.0.1.8/24"))
    ns1 = await h1.mgr.attach(t1)
    await h1.mgr.attach(gone)
    await h2.mgr.attach(t2)
    tables = {"neta": table(NET_A, [(t1, h1, True), (t2, h2, True), (r1, h2, True)])}
    for h in (h1, h2):
        await h.mgr.set_network_peers(tables)

    # "swarmlab kill h1; swarmlab start h1": a new manager on the same state, which knows
    # only t1 (gone's container went while the agent was down).
    await h1.mgr.close()
    h1.mgr = NetworkManager("h1", h1.addr, h1.state, host_netns=h1.ns)
    await h1.mgr.restore([t1.id])
    assert sorted(await h1.mgr.links()) == ["shb4096", "shvt1aaaaaa0", "shx4096"]
    assert not (h1.state / "netns" / gone.id).exists()
    assert await h1.mgr.attach(t1) == ns1  # re-adopted, not rebuilt
    await h1.mgr.set_network_peers(tables)
    await h1.mgr.set_network_peers(tables)
    assert await h1.mgr.peers(4096) == entries(("10.0.1.6", h2.addr), ("10.0.1.8", h2.addr))
    assert sorted(await h1.mgr.links()) == ["shb4096", "shvt1aaaaaa0", "shx4096"]
    assert await ping(ns1, "10.0.1.6")

    await h1.mgr.detach(t1.id)
    assert await h1.mgr.links() == []
    assert list((h1.state / "netns").iterdir()) == []
    assert "shoal" not in await nft_tables(h1.ns)
