"""A task's attachments as the data plane keeps them: what was created for it (names, addresses,
VNIs), written to disk before anything is created, so that a restarted agent, or a detach after
a half-made attach, knows exactly what to re-adopt or remove."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.exec import ExecError
from agent.network.links import host_veth
from shoal.api import Task


@dataclass(frozen=True)
class Attachment:
    network_id: str
    vni: int
    address: str  # "10.0.1.5/24"
    gateway: str  # the network's gateway, on the bridge of every node
    ifname: str  # in the container: eth0, eth1, ...
    host_veth: str

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Interface(self.address).network.prefixlen


@dataclass
class Endpoint:
    task_id: str
    service_id: str
    netns: str
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def network_ids(self) -> list[str]:
        return [a.network_id for a in self.attachments]


def attachments_of(task: Task) -> list[Attachment]:
    """The overlay attachments of a task, with the names their links get. Raises ExecError for
    an attachment the manager has not allocated (no VNI or no address)."""
    out: list[Attachment] = []
    for att in task.networks_attachments:
        net = att.network
        driver = net.driver_state.name or net.spec.driver or "overlay"
        if driver != "overlay":
            continue
        vni = int(net.driver_state.options.get("vni", "0") or 0)
        if not vni or not att.addresses:
            raise ExecError(f"network {net.id} is not allocated for task {task.id} (no VNI or address)")
        subnet = net.ipam[0].subnet if net.ipam else ""
        address = att.addresses[0]
        try:
            if "/" not in address:
                if not subnet:
                    raise ValueError("no prefix and no subnet")
                address = f"{address}/{ipaddress.IPv4Network(subnet).prefixlen}"
            iface = ipaddress.IPv4Interface(address)
            gateway = (
                net.ipam[0].gateway if net.ipam and net.ipam[0].gateway else str(next(iface.network.hosts()))
            )
        except ValueError as e:
            raise ExecError(f"bad address {address!r} on network {net.id}: {e}") from None
        i = len(out)
        out.append(Attachment(net.id, vni, address, gateway, f"eth{i}", host_veth(task.id, i)))
    return out


class EndpointStore:
    """One JSON file per task under `dir`."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir

    def save(self, ep: Endpoint) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{ep.task_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(ep)))
        os.replace(tmp, path)

    def delete(self, task_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{task_id}.json").unlink()

    def load(self) -> dict[str, Endpoint]:
        out: dict[str, Endpoint] = {}
        for path in sorted(self.dir.glob("*.json")) if self.dir.exists() else []:
            try:
                raw = json.loads(path.read_text())
                atts = [Attachment(**a) for a in raw.pop("attachments")]
                out[raw["task_id"]] = Endpoint(**raw, attachments=atts)
            except (ValueError, KeyError, TypeError):
                path.unlink()  # a torn write: the restore sweep removes what it named
        return out


__all__ = ["Attachment", "Endpoint", "EndpointStore", "attachments_of"]
