"""Workload 7, the data plane: iperf3 throughput and ping RTT between two containers on two lab
hosts over a shoal overlay network, against two plain namespaces joined by a veth pair.

The tools are the host's (Debian's iperf3, busybox-static's ping), run inside each container's network
namespace with `nsenter --net=/proc/PID/ns/net`: lab hosts share one file system, so no image
needs them. When the overlay is not there (yet), `run` raises Unavailable with the reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc

from bench.faults import _spec
from bench.poll import poll
from shoal.api import TaskState, control_pb2
from shoal.api.specs_pb2 import NetworkSpec
from swarmctl.client import Client
from swarmlab.testing import running_lab

SECONDS = 4  # per iperf3 run
PINGS = ["-c", "20", "-i", "0.2", "-q"]
VETH_NS = ("shoal-bench-va", "shoal-bench-vb")
VETH_ADDRS = ("10.254.77.1", "10.254.77.2")


class Unavailable(Exception):
    pass


def _netns_cmd(pid: int) -> list[str]:
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "--"]


def _iperf(server: list[str], client: list[str], addr: str) -> float:
    """Gbit/s from client to server (both command prefixes enter a network namespace)."""
    srv = subprocess.Popen(
        [*server, "iperf3", "-s", "-1", "-B", addr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            proc = subprocess.run(
                [*client, "iperf3", "-c", addr, "-t", str(SECONDS), "-J"],
                capture_output=True,
                text=True,
                timeout=SECONDS + 20,
            )
            try:
                # A refused connection may still exit 0, with an "error" and no sums.
                return float(json.loads(proc.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e9
            except (ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"iperf3 to {addr} failed: {proc.stdout[-200:]}{proc.stderr[-200:]}")
            time.sleep(0.2)  # the server may not listen yet
    finally:
        srv.kill()
        srv.wait()


def _ping(client: list[str], addr: str) -> float:
    """Average RTT in ms."""
    proc = subprocess.run(
        [*client, "busybox", "ping", *PINGS, addr], capture_output=True, text=True, timeout=30
    )
    m = re.search(r"= [\d.]+/([\d.]+)/", proc.stdout)
    if proc.returncode != 0 or not m:
        raise Unavailable(f"ping {addr} failed: {proc.stdout.strip()[-200:]}")
    return float(m.group(1))


def _measure(server: list[str], client: list[str], addr: str, runs: int) -> tuple[list[float], list[float]]:
    gbits, rtts = [], []
    for _ in range(runs):
        gbits.append(_iperf(server, client, addr))
        rtts.append(_ping(client, addr))
    return gbits, rtts


@contextmanager
def _veth_pair() -> Iterator[tuple[list[str], list[str]]]:
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def remove() -> None:
        for ns in VETH_NS:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    remove()
    try:
        for ns in VETH_NS:
            ip("netns", "add", ns)
        ip(
            "link",
            "add",
            "sbv0",
            "netns",
            VETH_NS[0],
            "type",
            "veth",
            "peer",
            "name",
            "sbv1",
            "netns",
            VETH_NS[1],
        )
        for i, ns in enumerate(VETH_NS):
            ip("-n", ns, "addr", "add", f"{VETH_ADDRS[i]}/24", "dev", f"sbv{i}")
            ip("-n", ns, "link", "set", f"sbv{i}", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield ["ip", "netns", "exec", VETH_NS[0]], ["ip", "netns", "exec", VETH_NS[1]]
    finally:
        remove()


def _task_ends(client: Client, sid: str) -> tuple[dict[str, int], dict[str, str]]:
    """node id → container pid, node id → overlay address, of the service's running tasks."""
    pids: dict[str, int] = {}
    addrs: dict[str, str] = {}
    for t in client.tasks(service_ids=[sid]):
        if t.status.state == TaskState.RUNNING and t.status.container_status.pid:
            pids[t.node_id] = t.status.container_status.pid
            for att in t.networks_attachments:
                if att.addresses:
                    addrs[t.node_id] = att.addresses[0].split("/")[0]
    return pids, addrs


def _overlay(runs: int) -> tuple[list[float], list[float]]:
    with running_lab(managers=1, workers=1, executor="container") as lab:
        client = Client(str(lab.socket("m1")))
        try:
            spec = NetworkSpec(driver="overlay")
            spec.annotations.name = "benchnet"
            try:
                client.call("CreateNetwork", control_pb2.CreateNetworkRequest(spec=spec))
            except grpc.RpcError as e:
                raise Unavailable(f"network create failed: {e.details()}") from None  # type: ignore[attr-defined]
            svc = _spec("iperf", 2, f"{lab.registry}/busybox:latest")
            svc.task.networks.add(target="benchnet")
            svc.task.placement.max_replicas = 1  # one per host
            sid = client.call("CreateService", control_pb2.CreateServiceRequest(spec=svc)).service.id
            try:
                poll(lambda: len(_task_ends(client, sid)[0]) == 2, 90, "two tasks running")
            except TimeoutError:
                raise Unavailable("the two tasks on the overlay did not both run") from None
            pids, addrs = _task_ends(client, sid)
            if len(addrs) != 2:
                raise Unavailable("tasks have no overlay addresses")
            (a, pa), (_, pb) = sorted(pids.items())
            return _measure(_netns_cmd(pa), _netns_cmd(pb), addrs[a], runs)
        finally:
            client.close()


@dataclass
class Figures:
    veth_gbit: list[float]
    veth_rtt_ms: list[float]
    overlay_gbit: list[float]
    overlay_rtt_ms: list[float]
    unavailable: str = ""  # why the overlay has no figures


def run(runs: int = 3) -> Figures:
    """Overlay and veth figures; the overlay's are missing, with the reason, when unavailable."""
    for tool in ("iperf3", "busybox", "nsenter"):
        if not shutil.which(tool):
            raise Unavailable(f"{tool} is missing")
    with _veth_pair() as (a, b):
        gbit, rtt = _measure(a, b, VETH_ADDRS[0], runs)
    try:
        return Figures(gbit, rtt, *_overlay(runs))
    except Unavailable as e:
        return Figures(gbit, rtt, [], [], str(e))
