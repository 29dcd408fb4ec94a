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
from dataclasses import dataclass
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
SMALL_TASKS = 500  # a size it converges at, for a figure when 5,000 do not
INTERVAL = 2.0  # listing 5,000 tasks is itself load on the leader: poll less often here
TIMEOUT = 240.0
VERBOSE = bool(os.environ.get("BENCH_VERBOSE"))


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


@dataclass
class Figures:
    scheduled_per_s: float | None = None  # to ASSIGNED; over what was assigned when not all were
    converge_s: float | None = None
    leader_rss_peak_mib: float = 0.0
    leader_rss_idle_mib: float = 0.0
    node_downs: int = 0  # agents the leader declared down meanwhile (it should be 0)
    note: str = ""


def _node_downs(lab: Any) -> int:
    try:
        return lab.log_path("m1").read_text(errors="replace").count("node_down")
    except OSError:
        return 0


def run(tasks: int = TASKS) -> Figures:
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
                spec = _spec(f"scale{i}", tasks // SERVICES, "busybox")
                sids.append(
                    client.call("CreateService", control_pb2.CreateServiceRequest(spec=spec)).service.id
                )
            last = {"assigned": 0, "running": 0}
            assigned_at: list[float] = []
            answered: list[bool] = []

            def counts() -> bool:
                assigned = running = 0
                try:
                    for sid in sids:
                        for t in client.tasks(service_ids=[sid]):
                            if t.desired_state != TaskState.RUNNING:
                                continue  # replaced (its node went down)
                            assigned += bool(t.node_id) and t.status.state >= TaskState.ASSIGNED
                            running += t.status.state == TaskState.RUNNING
                except grpc.RpcError as e:
                    if VERBOSE:
                        print(f"scale: {time.monotonic() - start:.0f}s ListTasks: {e.code()}", flush=True)
                    return False  # a leader this busy may miss a deadline: ask again
                answered.append(True)
                last.update(assigned=assigned, running=running)
                if VERBOSE:
                    print(f"scale: {time.monotonic() - start:.0f}s {last}", flush=True)
                if assigned >= tasks and not assigned_at:
                    assigned_at.append(time.monotonic())
                return running >= tasks

            fig = Figures(leader_rss_idle_mib=base)
            try:
                fig.converge_s = poll(counts, TIMEOUT, f"{tasks} tasks running", interval=INTERVAL) - start
            except TimeoutError:
                fig.note = f"not converged after {TIMEOUT:.0f}s: {last['running']}/{tasks} running"
            done.set()
            sampler.join()
            if assigned_at:
                fig.scheduled_per_s = tasks / (assigned_at[0] - start)
            elif answered:
                fig.scheduled_per_s = last["assigned"] / (time.monotonic() - start)
            else:
                fig.note = f"no ListTasks answered within {TIMEOUT:.0f}s (leader saturated)"
            fig.leader_rss_peak_mib = max(peak[0], _rss_mib(pid, "VmHWM"))
            fig.node_downs = _node_downs(lab)
            return fig
        finally:
            client.close()
            _stop(procs)
