"""Overlay address management: pools, VNIs, addresses, and the allocator over a local store."""

from __future__ import annotations

import pytest

from manager import ipam
from manager.controlapi import ControlServicer
from manager.membership.bootstrap import new_cluster
from manager.store import MemoryStore
from shoal.api import NetworkSpec, Task, TaskState, control_pb2
from shoal.errors import InvalidSpec, NotFound
from tests.manager.test_orchestrators import add_node, settle
from tests.manager.test_updater import StubSpec


def test_pool_vni_and_addresses() -> None:
    first = ipam.next_subnet([])
    assert str(first) == "10.0.1.0/24"
    assert str(ipam.next_subnet([first])) == "10.0.2.0/24"
    with pytest.raises(InvalidSpec, match="overlaps"):
        ipam.check_free(ipam.parse_subnet("10.0.1.128/25"), [first])
    assert ipam.next_vni([4096, 4097]) == 4098
    assert ipam.next_address(first, set()) == "10.0.1.2/24"  # .1 is the gateway
    assert ipam.next_address(first, {"10.0.1.2", "10.0.1.3"}) == "10.0.1.4/24"
    assert ipam.mac_of("10.0.1.2/24") == "02:42:0a:00:01:02"
    with pytest.raises(InvalidSpec):
        ipam.parse_subnet("10.0.1.1/24")  # host bits set


async def store_with_cluster() -> tuple[MemoryStore, ControlServicer]:
    store = MemoryStore()
    await store.update(lambda tx: tx.create(new_cluster("c1", "secret")))

    async def no_registry(ref: str) -> str:
        return ref

    return store, ControlServicer(store, resolver=no_registry)


async def create_network(ctl: ControlServicer, name: str, subnet: str = "") -> str:
    spec = NetworkSpec()
    spec.annotations.name = name
    if subnet:
        spec.ipam.add(subnet=subnet)
    resp = await ctl.CreateNetwork(control_pb2.CreateNetworkRequest(spec=spec), None)  # type: ignore[arg-type]
    return str(resp.network.id)


async def test_networks_get_subnets_and_vnis_and_refuse_overlaps() -> None:
    store, ctl = await store_with_cluster()
    await create_network(ctl, "a")
    await create_network(ctl, "b", "192.168.5.0/24")
    with pytest.raises(InvalidSpec, match="overlaps"):
        await create_network(ctl, "c", "192.168.5.0/25")
    nets = {n.spec.annotations.name: n for n in store.view().networks()}
    assert set(nets) == {"a", "b"}
    assert nets["a"].ipam[0].subnet == "10.0.1.0/24" and nets["a"].ipam[0].gateway == "10.0.1.1"
    assert {n.driver_state.options["vni"] for n in nets.values()} == {"4096", "4097"}


async def test_tasks_and_services_get_unique_addresses() -> None:
    store, ctl = await store_with_cluster()
    await add_node(store, "n1")
    net = await create_network(ctl, "app")
    spec = StubSpec("web", 20)
    spec.task.networks.add(target="app")  # by name: the API resolves it
    await ctl.CreateService(control_pb2.CreateServiceRequest(spec=spec, no_resolve_image=True), None)  # type: ignore[arg-type]
    await settle(store)
    tasks = store.view().find(Task)
    addrs = [a.addresses[0] for t in tasks for a in t.networks_attachments]
    assert len(tasks) == 20 and len(set(addrs)) == 20
    assert all(a.network.id == net for t in tasks for a in t.networks_attachments)
    (svc,) = store.view().services()
    (vip,) = svc.endpoint.virtual_ips
    assert vip.network_id == net and vip.addr.split("/")[0] not in {a.split("/")[0] for a in addrs}
    assert all(t.status.state >= TaskState.PENDING for t in tasks)

    spec2 = StubSpec("ghost", 1)
    spec2.task.networks.add(target="nope")
    with pytest.raises(NotFound, match="network nope not found"):
        await ctl.CreateService(control_pb2.CreateServiceRequest(spec=spec2), None)  # type: ignore[arg-type]
