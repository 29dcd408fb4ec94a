"""The dispatcher's network tables (NetworkPeers) from a store without Raft."""

from __future__ import annotations

from manager.dispatcher import peers
from manager.store import MemoryStore, Tx
from shoal import ids
from shoal.api import Network, Service, Task, TaskState
from shoal.api.specs_pb2 import EndpointSpec, PortConfig
from shoal.netaddr import mac_for
from tests.manager.test_orchestrators import add_node, add_service, run_all, settle


async def _network(store: MemoryStore, name: str, subnet: str) -> Network:
    net = Network(id=ids.new_id())
    net.spec.annotations.name = name
    net.spec.driver = "overlay"
    net.driver_state.name = "overlay"
    net.driver_state.options["vni"] = "4096"
    net.ipam.add(subnet=subnet, gateway=subnet.rsplit(".", 1)[0] + ".1")
    await store.update(lambda tx: tx.create(net))
    return net


async def _attach(store: MemoryStore, svc: Service, net: Network, mode: int = EndpointSpec.VIP) -> None:
    def write(tx: Tx) -> None:
        s = tx.get(Service, svc.id)
        assert s is not None
        s.spec.task.networks.add(target=net.id)
        s.spec.endpoint.mode = mode  # type: ignore[assignment]
        s.spec.endpoint.ports.add(published_port=8080, target_port=80, publish_mode=PortConfig.HOST)
        tx.update(s)

    await store.update(write)


async def _addr_nodes(store: MemoryStore) -> dict[str, str]:
    out = {}
    for i, name in enumerate(("w1", "w2")):
        node_id = await add_node(store, name)
        out[node_id] = f"10.77.0.{11 + i}"

    def write(tx: Tx) -> None:
        for n in tx.nodes():
            n.status.addr = out[n.id]
            tx.update(n)

    await store.update(write)
    return out


async def test_tables_list_every_endpoint_with_its_node_and_the_vip() -> None:
    store = MemoryStore()
    addrs = await _addr_nodes(store)
    net = await _network(store, "app", "10.0.1.0/24")
    other = await _network(store, "other", "10.0.2.0/24")
    web = await add_service(store, "web", 3)
    await _attach(store, web, net)
    await settle(store)
    # Two nodes, one host port: the third task waits, and says why.
    (waiting,) = [t for t in store.view().tasks() if t.status.state == TaskState.PENDING]
    assert "host-mode port 8080 already in use on 2 nodes" in waiting.status.err
    tables = peers.build_tables(store.view())
    assert set(tables) == {net.id, other.id}
    assert not tables[other.id].endpoints and not tables[other.id].services
    app = tables[net.id]
    assert len(app.endpoints) == 2
    assert not any(e.running for e in app.endpoints)  # assigned, not yet running
    for e in app.endpoints:
        assert e.node_addr == addrs[e.node_id]
        assert e.addr.startswith("10.0.1.") and e.addr.endswith("/24")
        assert e.mac == mac_for(e.addr)
        assert e.service_id == web.id
    assert len({e.addr for e in app.endpoints}) == 2
    (svc,) = app.services
    assert svc.name == "web" and svc.vip.startswith("10.0.1.") and "/" not in svc.vip
    assert svc.vip not in {e.addr.split("/")[0] for e in app.endpoints}
    assert [(p.published_port, p.target_port) for p in svc.ports] == [(8080, 80)]

    await run_all(store)
    tables = peers.build_tables(store.view())
    assert all(e.running for e in tables[net.id].endpoints)


async def test_ended_tasks_leave_the_table_and_diff_says_what_to_send() -> None:
    store = MemoryStore()
    await _addr_nodes(store)
    net = await _network(store, "app", "10.0.1.0/24")
    web = await add_service(store, "web", 2)
    await _attach(store, web, net, EndpointSpec.DNSRR)
    await settle(store)
    await run_all(store)
    before = peers.build_tables(store.view())
    assert before[net.id].services[0].vip == ""  # DNSRR: no VIP

    def fail_one(tx: Tx) -> None:
        t = tx.find(Task)[0]
        t.status.state = TaskState.FAILED
        tx.update(t)

    await store.update(fail_one)
    after = peers.build_tables(store.view())
    assert len(after[net.id].endpoints) == 1
    updates, removes = peers.diff(before, after)
    assert [u.network.id for u in updates] == [net.id] and removes == []
    assert peers.diff(after, after) == ([], [])
    assert peers.diff(after, {}) == ([], [net.id])


def test_only_network_related_batches_rebuild() -> None:
    from manager.store import Action, Event

    plain = Task(id="t1")
    networked = Task(id="t2")
    networked.networks_attachments.add(addresses=["10.0.1.2/24"])
    assert not peers.touches_networks([Event(Action.UPDATE, plain, plain)])
    assert peers.touches_networks([Event(Action.UPDATE, networked, networked)])
    assert peers.touches_networks([Event(Action.DELETE, Network(id="n"))])


def test_the_shared_memo_answers_as_touches_networks_and_stays_bounded() -> None:
    from manager.store import Action, Event

    plain = Task(id="t1")
    networked = Task(id="t2")
    networked.networks_attachments.add(addresses=["10.0.1.2/24"])
    quiet = [Event(Action.UPDATE, plain, plain) for _ in range(3)]
    loud = [*quiet, Event(Action.UPDATE, networked, networked)]
    memo = peers.PeerTables()
    memo.MEMO = 5
    for _ in range(2):  # the second time from the memo
        assert memo.touches(quiet) is False
        assert memo.touches(loud) is True
    assert len(memo._memo) <= 5
