"""The suites `python -m bench` runs, each turning its measurements into table rows.

Runs per figure are kept small where a run is expensive; the table's `runs` column says how many
each median is over, and the JSON keeps every sample."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from bench import container_start, docker_peer, faults, overlay, scale
from bench.likeforlike import Side, converge, rolling_update, single_task
from bench.results import Row
from bench.shoal_side import Shoal
from swarmlab.testing import running_lab

CONVERGE = (20, 100)
RUNS = 3
SINGLE_RUNS = 5


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.raw: dict[str, Any] = {}

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


def progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _both(row: Row, runs: int, measure: Callable[[Side], float], ours: Side, peer: Side | None) -> None:
    """Alternate shoal and peer runs, so both see the same machine."""
    for i in range(runs):
        progress(f"{row.workload}: run {i + 1}/{runs}")
        row.shoal.append(measure(ours))
        if peer is not None:
            row.peer.append(measure(peer))


def _converge(n: int, side: Side) -> float:
    return converge(side, n)


def compare(report: Report) -> None:
    """Workloads 1-3 against a single-node Docker swarm, then convergence on a 5-node lab."""
    rows = {n: Row(f"converge {n} replicas, 1 node", "s") for n in CONVERGE}
    upd = Row("rolling update 20 replicas, par 5, monitor 1s", "s")
    single = Row("single task: create -> RUNNING", "s")
    unavailable = "not available (see note)"
    try:
        cm = docker_peer.docker_swarm()
        engine = cm.__enter__()
    except docker_peer.DockerUnavailable as e:
        report.notes.append(f"docker swarm: not available ({e}); shoal's figures alone")
        cm, engine = None, None
    try:
        peer = engine
        with running_lab(managers=1, workers=0, executor="container") as lab:
            ours = Shoal(lab)
            single_task(ours)  # warm-up: the image into the host's store, as `docker import` did
            _both(single, SINGLE_RUNS, single_task, ours, peer)
            for n, row in rows.items():
                _both(row, RUNS, partial(_converge, n), ours, peer)
            _both(upd, RUNS, rolling_update, ours, peer)
            ours.close()
    finally:
        if cm is not None:
            cm.__exit__(None, None, None)
    for row in (*rows.values(), upd, single):
        if engine is None:
            row.note = unavailable
        report.add(row)
    progress("5-node lab")
    with running_lab(managers=1, workers=4, executor="container") as lab:
        ours = Shoal(lab)
        converge(ours, len(lab.hosts))  # warm-up: the image onto every host
        for n in CONVERGE:
            row = report.add(Row(f"converge {n} replicas, 5-node lab", "s", note="(shoal only)"))
            _both(row, RUNS, partial(_converge, n), ours, None)
        ours.close()


def runtime(report: Report) -> None:
    progress("container start: runtime vs runc")
    ours, theirs = container_start.samples()
    report.add(Row("container start /bin/true (peer: runc run)", "ms", ours, theirs))


def failures(report: Report) -> None:
    progress("leader failover and node failure")
    fo, nf, ks = faults.run()
    report.add(
        Row(
            "leader failover, 3 managers: kill -> next write",
            "s",
            fo,
            peer_fixed=faults.SWARMKIT_ELECTION_S,
            peer_name="SwarmKit election timeout",
        )
    )
    k = ",".join(str(x) for x in sorted(set(ks)))
    report.add(Row(f"node failure: kill worker with k={k} tasks -> replaced", "s", nf, note="(shoal only)"))


def control_plane(report: Report) -> None:
    for tasks in (scale.SMALL_TASKS, scale.TASKS):
        progress(f"control-plane scale: {scale.AGENTS} agents, {tasks} tasks")
        r = scale.run(tasks)
        report.raw[f"scale_{tasks}"] = r.__dict__
        label = f"scale ({scale.AGENTS} agents, {tasks} tasks)"
        only = "(shoal only)"
        rate = [r.scheduled_per_s] if r.scheduled_per_s is not None else []
        report.add(Row(f"{label}: scheduled", "tasks/s", rate, higher_is_better=True, note=r.note or only))
        conv = [r.converge_s] if r.converge_s is not None else []
        report.add(Row(f"{label}: all RUNNING", "s", conv, note=r.note or only))
        report.add(Row(f"{label}: leader peak RSS", "MiB", [r.leader_rss_peak_mib], note=only))
        if r.note:
            report.notes.append(f"scale {tasks}: {r.note}")
        if r.node_downs:
            report.notes.append(
                f"scale {tasks}: agents declared down {r.node_downs} times (missed heartbeats)"
            )


def data_plane(report: Report) -> None:
    progress("overlay vs veth")
    r = overlay.run()
    report.raw["overlay"] = r.__dict__
    thr = Row("overlay iperf3, 2 hosts (peer: plain veth)", "Gbit/s", r.overlay_gbit, r.veth_gbit, True)
    rtt = Row("overlay ping RTT, 2 hosts (peer: plain veth)", "ms", r.overlay_rtt_ms, r.veth_rtt_ms)
    if r.unavailable:
        thr.note = rtt.note = "overlay: not available (see note)"
        report.notes.append(f"overlay: not available ({r.unavailable})")
    report.add(thr)
    report.add(rtt)


SUITES: dict[str, Callable[[Report], None]] = {
    "compare": compare,
    "runtime": runtime,
    "faults": failures,
    "scale": control_plane,
    "overlay": data_plane,
}
