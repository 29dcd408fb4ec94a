"""The allocator: NEW → PENDING, with an overlay address for each network a task attaches to,
and a virtual IP per network for each service (endpoint mode VIP).

Addresses in use are worked out from the store each pass (live tasks' attachments, services'
VIPs, gateways), so a removed task's address is free again. Every pass that allocates also
updates the networks it allocated from: two allocators (an old and a new leader) can then never
commit the same address, because the second transaction fails its version check and re-reads."""

from __future__ import annotations

from collections import defaultdict

from manager import ipam
from manager.orchestrator.tasks import now
from manager.reconciler import Reconciler
from manager.store import Tx, copy_of, is_terminal
from shoal.api import Service, Task, TaskState
from shoal.api.specs_pb2 import EndpointSpec


def _addresses_in_use(tx: Tx) -> dict[str, set[str]]:
    used: dict[str, set[str]] = defaultdict(set)
    for t in tx.scan(Task):
        if is_terminal(t.status.state) and t.desired_state > TaskState.RUNNING:
            continue  # ended for good: its address is free again
        for a in t.networks_attachments:
            used[a.network.id].update(addr.split("/")[0] for addr in a.addresses)
    for s in tx.scan(Service):
        for vip in s.endpoint.virtual_ips:
            used[vip.network_id].add(vip.addr.split("/")[0])
    return used


class Allocator(Reconciler):
    def reconcile(self, tx: Tx) -> None:
        new = tx.find(
            Task, lambda t: t.status.state == TaskState.NEW and t.desired_state <= TaskState.RUNNING
        )
        services = [s for s in tx.scan(Service) if _vips_wanted(s) != _vips_held(s)]
        if not new and not services:
            return
        networks = {n.id: n for n in tx.networks()}
        used = _addresses_in_use(tx)
        touched: set[str] = set()

        def allocate(net_id: str) -> str | None:
            net = networks.get(net_id)
            if net is None or not net.ipam:
                return None
            addr = ipam.next_address(ipam.parse_subnet(net.ipam[0].subnet), used[net_id])
            used[net_id].add(addr.split("/")[0])
            touched.add(net_id)
            return addr

        for svc in services:
            svc = copy_of(svc)
            wanted = _vips_wanted(svc)
            kept = [v for v in svc.endpoint.virtual_ips if v.network_id in wanted]
            del svc.endpoint.virtual_ips[:]
            svc.endpoint.virtual_ips.extend(kept)
            for net_id in sorted(wanted - {v.network_id for v in kept}):
                addr = allocate(net_id)
                if addr is not None:
                    svc.endpoint.virtual_ips.add(network_id=net_id, addr=addr)
            tx.update(svc)

        for t in new:
            missing = [a.target for a in t.spec.networks if a.target not in networks]
            if missing:
                if t.status.err != f"network {missing[0]} not found":
                    t.status.err = f"network {missing[0]} not found"
                    tx.update(t)
                continue
            del t.networks_attachments[:]
            for att in t.spec.networks:
                addr = allocate(att.target)
                na = t.networks_attachments.add(addresses=[addr] if addr else [], aliases=list(att.aliases))
                na.network.CopyFrom(networks[att.target])
            owner = tx.get(Service, t.service_id)
            if owner is not None:  # the ports it publishes, for the scheduler's host-port filter
                t.endpoint.spec.CopyFrom(owner.spec.endpoint)
            t.status.state = TaskState.PENDING
            t.status.message = "pending task scheduling"
            t.status.err = ""
            t.status.timestamp.CopyFrom(now())
            tx.update(t)
        for net_id in touched:
            # Written back unchanged: the version bump is what serialises concurrent allocators.
            tx.update(networks[net_id])


def _vips_wanted(svc: Service) -> set[str]:
    if svc.spec.endpoint.mode != EndpointSpec.VIP:
        return set()
    return {a.target for a in svc.spec.task.networks}


def _vips_held(svc: Service) -> set[str]:
    return {v.network_id for v in svc.endpoint.virtual_ips}
