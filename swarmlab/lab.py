"""A lab: many swarmd "hosts" on one machine, each in its own network namespace on an isolated
underlay bridge, joined into one cluster.

Everything the lab is lives under `/run/swarmlab/<name>/` (`lab.json`, per-host state dirs,
sockets, logs, pid files) and in namespaces named `sl-<name>-*`. A `Lab` object holds no state
that matters: any process can open `Lab(name)` and drive or remove the lab, even after the one
that made it crashed.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import psutil
from structlog.stdlib import BoundLogger

from shoal.log import get_logger
from swarmlab import control, net, registry, sweep
from swarmlab.layout import LAB_ROOT, REMOTE_PORT, LabError, LabExists, LabLayout


def _log() -> BoundLogger:
    """Looked up per call: shoal.log binds loggers when made, so one made at import time would
    miss the level the CLI configures later."""
    return get_logger("swarmlab")


T = TypeVar("T")

EXECUTORS = ("test", "container")
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def in_netns(ns: str) -> list[str]:
    """The command prefix that runs a swarmd inside a host's network namespace.

    `nsenter --net` rather than `ip netns exec`: the latter also gives the process a mount
    namespace of its own (to remount /sys), so the mounts a swarmd makes for its containers would
    be invisible to everyone else, to `down`, and to the same host's swarmd once restarted. Lab
    hosts share one file system and one mount table, like containers' mounts on a real host do.
    """
    return ["nsenter", f"--net={net.NETNS_DIR / ns}", "--"]


def _env(**extra: str) -> dict[str, str]:
    """Our environment, with this checkout first on PYTHONPATH: swarmd and swarmctl then run the
    same code as swarmlab even when the venv's editable install predates a package."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


STOP_GRACE = 10.0
REGISTRY_PORT = 5000
JOIN_ATTEMPT_TIMEOUT = 20.0


class Lab(LabLayout):
    """A lab on this machine, by name. See the module docstring."""

    def __init__(self, name: str = "lab") -> None:
        super().__init__(name)
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # swarmds we started, to reap

    # ---- creation -----------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        managers: int = 3,
        workers: int = 2,
        executor: str = "container",
        name: str = "lab",
        timeout: float = 120.0,
    ) -> Lab:
        """Make the network, start every host's swarmd and join them into one cluster. On failure
        the half-made lab is removed and the error carries the tail of the guilty host's log."""
        lab = cls(name)
        lab._create(managers, workers, executor)
        try:
            lab._create_network()
            lab._start_registry()
            lab._form_cluster(timeout)
        except BaseException:
            try:
                lab.down()
            except LabError as e:
                _log().warning("lab_cleanup_failed", lab=name, error=str(e))
            raise
        _log().info("lab_up", lab=name, hosts=lab.hosts)
        return lab

    def _create(self, managers: int, workers: int, executor: str) -> None:
        if managers < 1:
            raise LabError("a lab needs at least one manager")
        if workers < 0 or managers + workers > 200:
            raise LabError("a lab has 1 to 200 hosts")
        if executor not in EXECUTORS:
            raise LabError(f"unknown executor {executor!r} (one of {', '.join(EXECUTORS)})")
        if os.geteuid() != 0:
            raise LabError("swarmlab needs root (network namespaces)")
        if self.exists():
            raise LabExists(
                f"lab {self.name!r} already exists; `swarmlab down --name {self.name}` removes it"
            )
        LAB_ROOT.mkdir(parents=True, exist_ok=True)
        try:
            self.dir.mkdir()
        except FileExistsError:
            raise LabExists(f"lab {self.name!r} already exists") from None
        names = [(f"m{i}", "manager") for i in range(1, managers + 1)]
        names += [(f"w{i}", "worker") for i in range(1, workers + 1)]
        hosts = [
            {"name": n, "role": r, "index": i, "addr": net.host_addr(self.name, i)}
            for i, (n, r) in enumerate(names)
        ]
        self._write_info(
            {
                "name": self.name,
                "executor": executor,
                "subnet": f"{net.subnet(self.name)}.0/{net.PREFIXLEN}",
                "underlay_ns": net.underlay_ns(self.name),
                "remote_port": REMOTE_PORT,
                "next_index": len(hosts),
                "hosts": hosts,
                "created": time.time(),
            }
        )

    def _create_network(self) -> None:
        net.create_underlay(self.name)
        for h in self.info()["hosts"]:
            self._create_host(h["name"], h["addr"])

    @property
    def registry(self) -> str:
        """host:port of the lab's registry, reachable from every lab host."""
        return f"{net.registry_addr(self.name)}:{REGISTRY_PORT}"

    def _start_registry(self) -> None:
        ns = net.underlay_ns(self.name)
        proc = registry.start_registry(self.dir / "registry", self.registry, netns=ns)
        self._children[proc.pid] = proc  # type: ignore[assignment]
        (self.dir / "registry.pid").write_text(f"{proc.pid}\n")
        registry.seed(self.registry, netns=ns)
        _log().info("registry_seeded", lab=self.name, registry=self.registry)

    def _create_host(self, host: str, addr: str) -> None:
        net.create_host(self.name, host, addr)
        self.state_dir(host).mkdir(parents=True, exist_ok=True)

    def _start_standalone(self) -> None:
        """Start every host's swarmd with no join flags (each makes a cluster of its own). Only for
        tests of the plumbing that must not depend on the control API."""
        for host in self.hosts:
            self._spawn(host)

    def _form_cluster(self, timeout: float) -> None:
        managers, workers = self.managers(), self.workers()
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        first = managers[0]
        self._spawn(first)
        tokens = self._wait(
            partial(control.join_tokens, self.socket(first)),
            left(),
            "the first manager's join tokens",
            [first],
        )
        join_addr = self.remote_api(first)
        for m in managers[1:]:  # Raft membership changes one at a time
            self._spawn(m, join=(join_addr, tokens.manager))
            self._wait(partial(self._ready_via, first, [m]), left(), f"{m} to be READY", [first, m])
        for w in workers:
            self._spawn(w, join=(join_addr, tokens.worker))
        self._wait(partial(self._ready_via, first, self.hosts), left(), "every node to be READY", self.hosts)

    def _ready_via(self, manager: str, hosts: list[str]) -> bool:
        states = control.node_states(self.socket(manager))
        return all(states.get(h) == control.READY for h in hosts)

    def _wait(self, cond: Callable[[], T], timeout: float, what: str, watch: list[str]) -> T:
        """Poll cond() until it is truthy; fail early, with its log, if a watched swarmd dies."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            for host in watch:
                if not self.is_running(host):
                    raise LabError(
                        f"swarmd on {host} exited while waiting for {what}\n{self._log_tail(host)}"
                    )
            try:
                value = cond()
                if value:
                    return value
                last = value
            except Exception as e:
                last = control.describe_error(e)
            if time.monotonic() > deadline:
                tails = "\n".join(self._log_tail(h) for h in watch[:2])
                raise LabError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})\n{tails}")
            time.sleep(0.2)

    def _log_tail(self, host: str, lines: int = 15) -> str:
        try:
            text = self.log_path(host).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"[{host}: no log]"
        return "\n".join([f"--- last lines of {self.log_path(host)}:", *text])

    # ---- processes ----------------------------------------------------------------------------

    def _swarmd_cmd(
        self, host: str, addr: str, state_dir: Path, sock: Path, join: tuple[str, str] | None
    ) -> list[str]:
        remote = f"{addr}:{REMOTE_PORT}"
        cmd = [
            *in_netns(net.host_ns(self.name, host)), str(BIN / "swarmd"),
            "--state-dir", str(state_dir), "--hostname", host,
            "--listen-remote-api", remote, "--advertise-remote-api", remote,
            "--listen-control-api", str(sock), "--log-level", "info", "--log-format", "console",
            "--executor", self.executor, "--cgroup-parent", f"swarmlab-{self.name}-{host}",
        ]  # fmt: skip
        if join:
            cmd += ["--join-addr", join[0], "--join-token", join[1]]
        return cmd

    def _host_env(self, host: str) -> dict[str, str]:
        return _env(PYTHONUNBUFFERED="1", SWARMLAB_NAME=self.name, SWARMLAB_HOST=host)

    def _spawn(self, host: str, join: tuple[str, str] | None = None) -> int:
        cmd = self._swarmd_cmd(host, self.addr(host), self.state_dir(host), self.socket(host), join)
        self.host_dir(host).mkdir(parents=True, exist_ok=True)
        with open(self.log_path(host), "ab") as logf:
            logf.write(f"=== swarmlab: starting swarmd at {time.strftime('%H:%M:%S')}\n".encode())
            logf.flush()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, env=self._host_env(host),
            )  # fmt: skip
        self._children[proc.pid] = proc
        self._pid_path(host).write_text(f"{proc.pid}\n")
        _log().info("host_started", lab=self.name, host=host, pid=proc.pid, join=bool(join))
        return proc.pid

    def _process(self, host: str) -> psutil.Process | None:
        """The host's live swarmd, if any (checked against its command line: pids get reused)."""
        try:
            pid = int(self._pid_path(host).read_text().strip())
        except (OSError, ValueError):
            return None
        child = self._children.get(pid)
        if child is not None and child.poll() is None:
            # Our own child: trust it. Between fork and exec its cmdline is still ours.
            return psutil.Process(pid)
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if str(self.state_dir(host)) not in proc.cmdline():
                return None
        except psutil.Error:
            return None
        return proc

    def is_running(self, host: str) -> bool:
        self._host(host)
        return self._process(host) is not None

    def pid(self, host: str) -> int | None:
        proc = self._process(host)
        return proc.pid if proc else None

    def _wait_gone(self, proc: psutil.Process, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        child = self._children.get(proc.pid)
        while True:
            if child is not None:
                # Our own child is gone once reaped; a multi-threaded process shows a zombie
                # leader while its other threads still exit, and cannot be reaped before.
                if child.poll() is not None:
                    return True
            else:
                try:
                    if not proc.is_running() or (
                        proc.status() == psutil.STATUS_ZOMBIE and proc.num_threads() <= 1
                    ):
                        return True
                except psutil.Error:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def kill(self, host: str) -> None:
        """SIGKILL the host's swarmd and its process group: a crash."""
        self._host(host)
        proc = self._process(host)
        if proc is None:
            raise LabError(f"swarmd on {host} is not running")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not self._wait_gone(proc, 10):
            raise LabError(f"swarmd on {host} (pid {proc.pid}) survived SIGKILL")
        _log().info("host_killed", lab=self.name, host=host, pid=proc.pid)

    def stop(self, host: str) -> None:
        """SIGTERM, up to 10 s to exit cleanly, then SIGKILL."""
        self._host(host)
        proc = self._process(host)
        if proc is None:
            raise LabError(f"swarmd on {host} is not running")
        try:
            proc.terminate()
        except psutil.Error:
            pass
        if not self._wait_gone(proc, STOP_GRACE):
            _log().warning("host_stop_timeout", lab=self.name, host=host, pid=proc.pid)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait_gone(proc, 10)
        _log().info("host_stopped", lab=self.name, host=host, pid=proc.pid)

    def start(self, host: str, wait: bool = True, timeout: float = 30.0) -> None:
        """Start the host's swarmd again on its state dir (it rejoins as the same node). With
        wait: until a manager's control socket accepts connections, or a worker's process has
        stayed up for a moment."""
        self._host(host)
        if self.is_running(host):
            raise LabError(f"swarmd on {host} is already running")
        sock = self.socket(host)
        sock.unlink(missing_ok=True)  # stale: its process is gone
        self._spawn(host)
        if not wait:
            return
        if self.role(host) == "manager":
            self._wait(lambda: control.connectable(sock), timeout, f"{host}'s control socket", [host])
        else:
            until = time.monotonic() + 1.0
            self._wait(lambda: time.monotonic() > until, timeout, f"{host} to stay up", [host])

    # ---- network faults -----------------------------------------------------------------------

    def partition(self, host: str) -> None:
        """Cut the host off the underlay (its veth end on the bridge goes down)."""
        self._host(host)
        net.set_host_link(self.name, host, up=False)
        _log().info("host_partitioned", lab=self.name, host=host)

    def heal(self, host: str) -> None:
        self._host(host)
        net.set_host_link(self.name, host, up=True)
        net.wait_carrier(self.name, host)
        net.forget_neighbors(self.name, host, self.addr(host), [h for h in self.hosts if h != host])
        _log().info("host_healed", lab=self.name, host=host)

    def is_partitioned(self, host: str) -> bool:
        self._host(host)
        return net.host_link_up(self.name, host) is False

    # ---- talking to the cluster ---------------------------------------------------------------

    def manager_host(self) -> str:
        """The first host (managers first) whose swarmd runs and serves its control socket."""
        hosts = self.hosts
        ordered = [h for h in hosts if self.role(h) == "manager"] + [
            h for h in hosts if self.role(h) != "manager"
        ]
        for host in ordered:
            if self.is_running(host) and control.connectable(self.socket(host)):
                return host
        raise LabError(f"no manager of lab {self.name!r} is serving its control socket")

    def manager_socket(self) -> Path:
        return self.socket(self.manager_host())

    def ctl(
        self, *args: str, host: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `swarmctl -s SOCKET ARGS...` against the host's socket, or a live manager's (when
        none is live, the first manager's, so that swarmctl reports the failure itself)."""
        if host is not None:
            sock = self.socket(host)
        else:
            try:
                sock = self.manager_socket()
            except LabError:
                sock = self.socket(self.managers()[0] if self.managers() else self.hosts[0])
        cmd = [str(BIN / "swarmctl"), "-s", str(sock), *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=_env()
        )

    def exec(self, host: str, *cmd: str, timeout: float | None = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host's network namespace."""
        if not cmd:
            raise LabError("nothing to run")
        full = ["ip", "netns", "exec", self.netns(host), *cmd]
        return subprocess.run(full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    # ---- membership ---------------------------------------------------------------------------

    def add_worker(self, timeout: float = 60.0) -> str:
        """Create the next wN host and join it with the worker token; return its name."""
        via = self.manager_host()
        tokens = self._wait(lambda: control.join_tokens(self.socket(via)), 10, "the join tokens", [via])
        with self._locked() as info:
            taken = [int(h["name"][1:]) for h in info["hosts"] if re.fullmatch(r"w\d+", h["name"])]
            host = f"w{max(taken, default=0) + 1}"
            index = int(info["next_index"])
            info["next_index"] = index + 1
            addr = net.host_addr(self.name, index)
            info["hosts"].append({"name": host, "role": "worker", "index": index, "addr": addr})
        self._create_host(host, addr)
        self._spawn(host, join=(self.remote_api(via), tokens.worker))
        self._wait(lambda: self._ready_via(via, [host]), timeout, f"{host} to be READY", [host])
        _log().info("worker_added", lab=self.name, host=host)
        return host

    def join_attempt(self, hostname: str, token: str) -> subprocess.CompletedProcess[str]:
        """Run a swarmd that joins with `token` from a fresh, temporary host (its own namespace,
        address and state dir) and return how it ended; killed after 20 s if still running. The
        temporary host is removed afterwards."""
        via = self.manager_host()
        with self._locked() as info:
            index = int(info["next_index"])
            info["next_index"] = index + 1
        tag = "j" + secrets.token_hex(3)
        addr = net.host_addr(self.name, index)
        jdir = self.dir / "joins" / tag
        ns = net.host_ns(self.name, tag)
        try:
            net.create_host(self.name, tag, addr)
            cmd = self._swarmd_cmd(
                tag, addr, jdir / "state", jdir / "swarmd.sock", (self.remote_api(via), token)
            )
            cmd[cmd.index("--hostname") + 1] = hostname
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True, env=self._host_env(tag),
            )  # fmt: skip
            try:
                out, err = proc.communicate(timeout=JOIN_ATTEMPT_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        finally:
            ident = net.ns_identity(ns)
            sweep.kill_all(sweep.find_processes([ident] if ident else [], [str(jdir) + "/"]))
            net.remove_namespace(ns)
            sweep.unmount_under(jdir)
            sweep.remove_tree(jdir)

    # ---- removal ------------------------------------------------------------------------------

    def down(self) -> None:
        """Remove everything the lab made; fine when nothing (or only debris) is left."""
        problems = sweep.teardown_lab(self.name, self.dir, self._children.values())
        self._children.clear()
        if problems:
            raise LabError(f"lab {self.name!r} not fully removed: " + "; ".join(problems))
        _log().info("lab_down", lab=self.name)
