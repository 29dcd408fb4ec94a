"""Workload 6, control-plane scale: one manager (a lab host, test executor) and 50 simulated
agents (bench.agents, a few per process, inside the manager host's network namespace);
services totalling 5,000 tasks. Reports tasks scheduled per second (to ASSIGNED on a node),
the time until all run, and the leader's peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from bench.faults import _spec
from bench.poll import poll
from shoal.api import TaskState, control_pb2
from swarmctl.client import Client
from swarmlab import control
from swarmlab.lab import REPO, in_netns
from swarmlab.testing import running_lab

AGENTS = 50
PROCS = 2
SERVICES = 10
TASKS = 5000
INTERVAL = 0.5
VERBOSE = bool(
    os.environ.get("BENCH_VERBOSE")
)  # listing 5,000 tasks is itself load on the leader: poll less often here


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start_agents(lab: Any, work: Path) -> list[subprocess.Popen[bytes]]:
    tokens = control.join_tokens(lab.socket("m1"))
    procs = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    per = AGENTS // PROCS
    for i in range(PROCS):
        cmd = [
            *in_netns(lab.netns("m1")), sys.executable, "-m", "bench.agents",
            "--join", lab.remote_api("m1"), "--token", tokens.worker, "--count", str(per),
            "--prefix", f"a{i}-", "--state-dir", str(work / f"p{i}"),
        ]  # fmt: skip
        with (work / f"agents{i}.log").open("ab") as log:
            procs.append(
                subprocess.Popen(
                    cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True
                )
            )
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-agents-") as d, running_lab(1, 0, "test") as lab:
        procs = _start_agents(lab, Path(d))
        client = Client(str(lab.socket("m1")))
        try:
            ready = lambda: sum(n.status.state == 2 for n in client.nodes()) >= AGENTS + 1  # noqa: E731
            t0 = time.monotonic()
            poll(ready, 300, f"{AGENTS} agents READY")
            if VERBOSE:
                print(f"scale: agents ready after {time.monotonic() - t0:.1f}s", flush=True)
            pid = lab.pid("m1")
            assert pid is not None
            base = _rss_mib(pid)
            peak = [base]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.2):
                    try:
                        peak[0] = max(peak[0], _rss_mib(pid))
                    except OSError:
                        return

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            start = time.monotonic()
            sids = []
            for i in range(SERVICES):
                spec = _spec(f"scale{i}", TASKS // SERVICES, "busybox")
                sids.append(
                    client.call("CreateService", control_pb2.CreateServiceRequest(spec=spec)).service.id
                )
            assigned_at: list[float] = []

            def counts() -> bool:
                assigned = running = 0
                try:
                    for sid in sids:
                        for t in client.tasks(service_ids=[sid]):
                            assigned += bool(t.node_id) and t.status.state >= TaskState.ASSIGNED
                            running += t.status.state == TaskState.RUNNING
                except grpc.RpcError:
                    return False  # a leader this busy may miss a deadline: ask again
                if VERBOSE:
                    print(
                        f"scale: {time.monotonic() - start:.1f}s assigned={assigned} running={running}",
                        flush=True,
                    )
                if assigned >= TASKS and not assigned_at:
                    assigned_at.append(time.monotonic())
                return running >= TASKS

            end = poll(counts, 900, f"{TASKS} tasks running", interval=INTERVAL)
            done.set()
            sampler.join()
            return {
                "scheduled_per_s": TASKS / (assigned_at[0] - start),
                "converge_s": end - start,
                "leader_rss_peak_mib": max(peak[0], _rss_mib(pid, "VmHWM")),
                "leader_rss_idle_mib": base,
            }
        finally:
            client.close()
            _stop(procs)
