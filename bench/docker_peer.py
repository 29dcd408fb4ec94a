"""The peer: a Docker engine of our own (Debian's docker.io), in single-node swarm mode.

It gets its own socket, data root, exec root, pidfile and containerd namespace, so it never
meets another Docker on the machine, and everything it made is removed afterwards (also when a
benchmark fails). No bridge, no iptables: tasks need no network. The image is the same busybox
tree the lab's registry is seeded with, `docker import`ed under a loopback registry name and with
DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1, so no pull ever leaves the machine.

We talk to the engine's HTTP API on its socket, as shoal's side talks gRPC to its manager: no CLI
start-up cost on either side.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from bench.poll import poll
from swarmlab.registry import busybox_tree

RUN = Path("/run/shoal-bench")
DATA = Path("/var/lib/shoal-bench")
SOCK = RUN / "docker.sock"
DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # Debian's CLI (a different docker may come first on PATH)
IMAGE = "localhost:5999/shoal-bench/busybox"  # a pull, were one tried, stays on loopback
NS = 1_000_000_000
CGROUP = "shoal-bench"  # the engine's cgroup parent, in every hierarchy


class DockerUnavailable(Exception):
    """No Docker engine could be had; the message says why."""


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Engine:
    """The engine's API, as far as the benchmarks need it (a bench.likeforlike.Side)."""

    image = IMAGE

    def __init__(self, sock: Path = SOCK) -> None:
        self.sock = sock

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        conn = _UnixHTTP(self.sock, timeout)
        try:
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"docker {method} {path}: {resp.status} {raw.decode(errors='replace')[:300]}")
        return json.loads(raw) if raw else None

    def ping(self) -> bool:
        try:
            conn = _UnixHTTP(self.sock, 2)
            conn.request("GET", "/_ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    # ---- services ------------------------------------------------------------------------------

    def create_service(
        self, name: str, replicas: int, image: str, args: list[str], parallelism: int = 1, monitor: float = 5
    ) -> str:
        spec = {
            "Name": name,
            "TaskTemplate": {
                "ContainerSpec": {"Image": image, "Args": args, "StopGracePeriod": NS},
                "RestartPolicy": {"Condition": "any"},
            },
            "Mode": {"Replicated": {"Replicas": replicas}},
            "UpdateConfig": {
                "Parallelism": parallelism,
                "Delay": 0,
                "Monitor": int(monitor * NS),
                "FailureAction": "pause",
                "Order": "stop-first",
            },
        }
        return str(self.call("POST", "/services/create", spec)["ID"])

    def service(self, sid: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/services/{sid}"))

    def update_image(self, sid: str, image: str) -> None:
        svc = self.service(sid)
        spec = svc["Spec"]
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = image
        self.call("POST", f"/services/{sid}/update?version={svc['Version']['Index']}", spec)

    def update_state(self, sid: str) -> str:
        return str(self.service(sid).get("UpdateStatus", {}).get("State", ""))

    def running(self, sid: str) -> int:
        filters = urllib.parse.quote(json.dumps({"service": {sid: True}}))
        tasks = self.call("GET", f"/tasks?filters={filters}")
        return sum(t["DesiredState"] == "running" and t["Status"]["State"] == "running" for t in tasks)

    def remove_service(self, sid: str) -> None:
        self.call("DELETE", f"/services/{sid}")
        # Until its containers are gone too: the next measurement starts from a quiet engine.
        poll(lambda: not self.call("GET", "/containers/json?all=1"), timeout=180, what="docker cleanup")


# ---- the engine's lifecycle ----------------------------------------------------------------------


def _install() -> None:
    """docker.io from Debian, on demand (too big for scripts/apt-packages.txt, which `make test`
    installs too)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"]
    if subprocess.run(cmd, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise DockerUnavailable(f"apt-get install docker.io failed: {proc.stderr.strip()[-300:]}")


def _import(engine_cmd: list[str], tree: Path, tag: str, work: Path) -> None:
    tar = work / f"{tag}.tar"
    with tarfile.open(tar, "w") as t:
        for p in sorted(tree.iterdir()):
            t.add(p, arcname=p.name)
    change = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    proc = subprocess.run(
        [*engine_cmd, "import", "--change", change, str(tar), f"{IMAGE}:{tag}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise DockerUnavailable(f"docker import failed: {proc.stderr.strip()[-300:]}")


def _ours() -> list[psutil.Process]:
    """dockerd, containerd and shims that belong to our engine (by their command lines)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if (str(RUN) in cmdline or str(DATA) in cmdline) and p.pid != os.getpid():
            found.append(p)
    return found


def _empty(cgroup: Path) -> bool:
    return not (cgroup / "cgroup.procs").read_text().strip()


def _kill_cgroups() -> None:
    """The containers' own processes (a shim killed first would leave them running)."""
    for ctl in Path("/sys/fs/cgroup").iterdir():
        parent = ctl / CGROUP
        if not parent.is_dir():
            continue
        for procs in sorted(parent.rglob("cgroup.procs"), reverse=True):
            for pid in procs.read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
        for d in [*sorted((p for p in parent.rglob("*") if p.is_dir()), reverse=True), parent]:
            try:
                poll(partial(_empty, d), timeout=5, what=str(d))
                d.rmdir()
            except (OSError, TimeoutError):
                pass


def _unmount_under(*roots: Path) -> None:
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if any(m.startswith(str(r)) for r in roots)), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


def teardown() -> list[str]:
    """Stop our dockerd (then anything of ours left) and remove its directories; returns what
    could not be removed."""
    try:
        pid = int((RUN / "docker.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)
    except (OSError, ValueError, psutil.Error):
        pass
    for p in _ours():
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(_ours(), timeout=10)
    _kill_cgroups()
    _unmount_under(RUN, DATA)
    for d in (RUN, DATA):
        shutil.rmtree(d, ignore_errors=True)
    problems = [f"process {p.pid} left" for p in _ours()]
    problems += [f"{d} left" for d in (RUN, DATA) if d.exists()]
    return problems


@contextmanager
def docker_swarm() -> Iterator[Engine]:
    """A single-node Docker swarm with our busybox imported as IMAGE:latest and IMAGE:2; raises
    DockerUnavailable (after cleaning up) if none can be had."""
    if os.geteuid() != 0:
        raise DockerUnavailable("needs root")
    if not Path(DOCKERD).exists():
        _install()
    teardown()  # debris of an earlier, crashed run
    RUN.mkdir(parents=True)
    DATA.mkdir(parents=True)
    engine = Engine()
    cli = [DOCKER, "-H", f"unix://{SOCK}"]
    log = RUN / "dockerd.log"
    try:
        cmd = [
            DOCKERD, "--host", f"unix://{SOCK}", "--data-root", str(DATA / "docker"),
            "--exec-root", str(RUN / "exec"), "--pidfile", str(RUN / "docker.pid"),
            "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=overlay2",
            "--cgroup-parent", CGROUP,
            "--containerd-namespace", "shoal-bench", "--containerd-plugins-namespace", "shoal-bench-plugins",
        ]  # fmt: skip
        env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
        with log.open("ab") as f:
            proc = subprocess.Popen(
                cmd, stdout=f, stderr=f, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while not engine.ping():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                how = f"exited {proc.returncode}" if proc.poll() is not None else "no answer in 60s"
                raise DockerUnavailable(f"dockerd did not start ({how}): " + " | ".join(tail))
            time.sleep(0.2)
        init = [*cli, "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"]
        done = subprocess.run(init, capture_output=True, text=True)
        if done.returncode != 0:
            raise DockerUnavailable(f"docker swarm init failed: {done.stderr.strip()[-300:]}")
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            busybox_tree(work / "latest")
            _import(cli, work / "latest", "latest", work)
            shutil.copytree(work / "latest", work / "2", symlinks=True)
            (work / "2" / "etc" / "version").write_text("2\n")  # another image, as busybox:2 is
            _import(cli, work / "2", "2", work)
        yield engine
    finally:
        left = teardown()
        if left:
            print(f"warning: docker peer not fully removed: {'; '.join(left)}", flush=True)
