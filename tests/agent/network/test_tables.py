"""What the data plane derives from NetworkPeers tables (pure: no root, no namespaces)."""

from __future__ import annotations

from agent.network import TableResolver
from agent.network.links import Peer, host_veth
from agent.network.nft import HostRules, PublishedPort, Vip, render_container, render_host
from agent.network.tables import container_vips, host_ports, remote_peers
from shoal.api.dispatcher_pb2 import NetworkPeers
from shoal.api.specs_pb2 import EndpointSpec, PortConfig
from shoal.netaddr import mac_for

ME, OTHER = "10.99.0.1", "10.99.0.2"


def tbl(
    nid: str, eps: list[tuple[str, str, str, str, bool]], svcs: list[tuple[str, str, str]]
) -> NetworkPeers:
    """eps: (task, service, node_addr, addr, running); svcs: (service, name, vip or "" for dnsrr)."""
    t = NetworkPeers()
    t.network.id = nid
    for tid, sid, node, addr, running in eps:
        t.endpoints.add(task_id=tid, service_id=sid, node_addr=node, addr=addr, running=running)
    for sid, name, vip in svcs:
        t.services.add(
            service_id=sid, name=name, vip=vip, mode=EndpointSpec.VIP if vip else EndpointSpec.DNSRR
        )
    return t


A = tbl(
    "a",
    [("t1", "web", ME, "10.0.1.5/24", True), ("t2", "web", OTHER, "10.0.1.6/24", True),
     ("t3", "web", OTHER, "10.0.1.7/24", False), ("t4", "db", OTHER, "10.0.1.8/24", True)],
    [("web", "web", "10.0.1.100"), ("db", "db", "")],
)  # fmt: skip
A.endpoints[3].aliases.append("store")
B = tbl("b", [("t9", "web", ME, "10.0.2.5/24", True)], [("web", "web", "10.0.2.100"), ("x", "other", "")])


def test_remote_peers_are_the_other_nodes_endpoints_running_or_not() -> None:
    assert remote_peers(A, ME, {"t1"}) == [
        Peer("10.0.1.6", mac_for("10.0.1.6"), OTHER),
        Peer("10.0.1.7", mac_for("10.0.1.7"), OTHER),
        Peer("10.0.1.8", mac_for("10.0.1.8"), OTHER),
    ]


def test_vips_balance_over_running_backends_only() -> None:
    assert container_vips({"a": A, "b": B}, ["a"]) == [Vip("10.0.1.100", ("10.0.1.5", "10.0.1.6"))]
    text = render_container(container_vips({"a": A}, ["a"]))
    assert "ip daddr 10.0.1.100 dnat to numgen inc mod 2 map { 0 : 10.0.1.5, 1 : 10.0.1.6 }" in text
    assert text.startswith("table ip shoal {}\ndelete table ip shoal\n")
    assert "ip daddr 10.0.9.9 reject" in render_container([Vip("10.0.9.9", ())])


def test_resolver_names_follow_the_containers_networks() -> None:
    r = TableResolver(lambda: {"a": A, "b": B}, ["a"])
    assert r.lookup("web") == ["10.0.1.100"]
    assert r.lookup("WEB.") == ["10.0.1.100"]
    assert r.lookup("tasks.web") == ["10.0.1.5", "10.0.1.6"]
    assert r.lookup("db") == ["10.0.1.8"]  # dnsrr
    assert r.lookup("store") == ["10.0.1.8"]  # a task's network alias
    assert r.lookup("other") is None  # only on network b
    assert r.lookup("nothing") is None
    assert TableResolver(lambda: {"a": A, "b": B}, ["b", "a"]).lookup("web") == ["10.0.2.100"]
    assert TableResolver(dict, ["a"]).lookup("web") is None


def test_published_ports_go_to_local_running_tasks_on_their_first_network() -> None:
    a, b = NetworkPeers(), NetworkPeers()
    a.CopyFrom(A)
    b.CopyFrom(B)
    a.services[0].ports.add(protocol=PortConfig.TCP, published_port=8080, target_port=80)
    b.services[0].ports.add(protocol=PortConfig.TCP, published_port=8080, target_port=80)
    b.endpoints.add(task_id="t1", service_id="web", node_addr=ME, addr="10.0.2.6/24", running=True)
    assert host_ports({"a": a, "b": b}, {"t1": ["b", "a"], "t9": ["b"]}) == [
        PublishedPort("tcp", 8080, 80, ("10.0.2.5", "10.0.2.6"))
    ]
    text = render_host(HostRules(["shb4096"], host_ports({"a": a}, {"t1": ["a"]})))
    assert "fib daddr type local tcp dport 8080 dnat to numgen inc mod 1 map { 0 : 10.0.1.5 } : 80" in text
    assert 'iifname "shb4096" oifname "shb4096" accept' in text


def test_link_names_fit_ifnamsiz() -> None:
    assert len(host_veth("z" * 25, 9)) <= 15
