"""The supervisor: one small process per container, started by the executor as
`python -m agent.runtime.supervisor BUNDLE` in a session of its own. It owns the container: it
creates it, keeps its output (JSON lines) and its exit status, stops it when asked, and outlives
swarmd, so that a restarted agent finds its containers still running.

The order of operations is the one DESIGN.md section 8 verified: overlay rootfs and cgroups
first; fork a child that waits on a pipe until it has been put into the cgroups; the child
unshares the namespaces and forks the container's PID 1, which sets up its mounts, pivots and
execs. The supervisor is a child subreaper, so PID 1 is reparented to it and it reaps it."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from agent.logformat import encode
from agent.runtime import cgroups, linux
from agent.runtime.bundle import Bundle, Config, State
from agent.runtime.container import setup_and_exec
from agent.runtime.health import HealthCheck

UNHEALTHY_GRACE = 5.0


def _signal_number(name: str) -> int:
    name = name.strip().upper()
    if name.isdigit():
        return int(name)
    return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


class Supervisor:
    def __init__(self, bundle: Bundle, ready_fd: int = -1) -> None:
        self.bundle = bundle
        self._ready_fd = ready_fd
        self.cfg: Config = bundle.config()
        self.cgroup = cgroups.for_container(self.cfg.cgroup_parent, self.cfg.task_id)
        self.pid = 0
        self.log = bundle.log.open("a", buffering=1)
        self.partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self.stop_deadline: float | None = None
        self.state = State(status="created", supervisor=os.getpid())
        cfg = self.cfg
        self.health = HealthCheck.of(cfg.health, cfg.env, cfg.uid, cfg.gid) if cfg.health else None

    # ---- start -------------------------------------------------------------------------------
    def _mount_rootfs(self) -> None:
        lower = ":".join(reversed(self.cfg.lowerdirs))  # overlayfs wants the top layer first
        data = f"lowerdir={lower},upperdir={self.bundle.upper},workdir={self.bundle.work}"
        linux.mount("overlay", str(self.bundle.rootfs), "overlay", 0, data)

    def start(self) -> tuple[int, int]:
        """Returns the read ends of the container's stdout and stderr."""
        self._mount_rootfs()
        self.cgroup.create(cgroups.Limits(self.cfg.memory_bytes, self.cfg.nano_cpus, self.cfg.pids_limit))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        go_r, go_w = os.pipe()
        pid_r, pid_w = os.pipe()
        fail_r, fail_w = os.pipe()
        os.set_inheritable(fail_w, False)
        child = os.fork()
        if child == 0:  # the intermediate child: joins the cgroups (by our hand), then unshares
            try:
                for fd in (out_r, err_r, go_w, pid_r, fail_r):
                    os.close(fd)
                os.read(go_r, 1)
                namespaces = linux.CONTAINER_NAMESPACES
                if self.cfg.netns:  # the agent's prepared namespace, with the overlay interfaces
                    fd = os.open(self.cfg.netns, os.O_RDONLY | os.O_CLOEXEC)
                    linux.setns(fd, linux.CLONE_NEWNET)
                    os.close(fd)
                    namespaces &= ~linux.CLONE_NEWNET
                linux.unshare(namespaces)
                init = os.fork()
                if init == 0:
                    self._container_init(out_w, err_w, fail_w)
                os.write(pid_w, str(init).encode())
                os._exit(0)
            except BaseException:
                os.write(fail_w, traceback.format_exc().encode()[-4000:])
                os._exit(127)
        for fd in (out_w, err_w, go_r, pid_w, fail_w):
            os.close(fd)
        self.cgroup.add(child)
        os.write(go_w, b"1")
        os.close(go_w)
        _, status = os.waitpid(child, 0)
        raw = os.read(pid_r, 32)
        os.close(pid_r)
        error = _read_all(fail_r)  # empty once PID 1 has exec'd (the pipe is close-on-exec)
        if error or not raw:
            raise RuntimeError(error.decode(errors="replace").strip() or f"container setup failed ({status})")
        self.pid = int(raw)
        return out_r, err_r

    def _container_init(self, out_w: int, err_w: int, fail_w: int) -> None:
        try:
            fd = os.open("/dev/null", os.O_RDONLY)
            os.dup2(fd, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            setup_and_exec(self.cfg, self.bundle.rootfs)
        except BaseException as e:
            msg = f"{type(e).__name__}: {e}" if isinstance(e, OSError) else traceback.format_exc()
            os.write(fail_w, msg.encode()[-4000:])
        os._exit(127)

    # ---- life --------------------------------------------------------------------------------
    def _pump(self, fd: int, stream: str) -> bool:
        data = os.read(fd, 65536)
        if not data:
            if self.partial[stream]:  # the last line had no newline
                self.log.write(encode(stream, self.partial[stream]))
                self.partial[stream] = ""
            return False
        text = self.partial[stream] + data.decode(errors="replace")
        *lines, self.partial[stream] = text.split("\n")
        for line in lines:
            self.log.write(encode(stream, line + "\n"))
        return True

    def _stop(self, grace: float) -> None:
        if self.stop_deadline is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, _signal_number(self.cfg.stop_signal))
            self.stop_deadline = time.monotonic() + grace

    def _command(self, conn: socket.socket) -> None:
        with conn:
            words = conn.recv(256).decode().split()
            if words[:1] == ["stop"]:
                self._stop(float(words[1]) if len(words) > 1 else 10.0)
            conn.sendall(b"ok\n")

    def _check_health(self) -> None:
        assert self.health is not None
        if self.health.poll(self.pid, self.cgroup):
            self.state.health, self.state.health_output = self.health.status, self.health.output
            self.bundle.write_state(self.state)
            if self.health.status == "unhealthy":
                self._stop(UNHEALTHY_GRACE)  # as SwarmKit does: an unhealthy task is replaced

    def run(self) -> int:
        state = self.state
        if self.health is not None:
            state.health = "starting"
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ctl.bind(self.bundle.socket)
            ctl.listen(4)
            out_r, err_r = self.start()
        except Exception as e:
            state.status, state.exit_code, state.error = "exited", 127, str(e)
            state.finished_at = time.time()
            self.bundle.write_state(state)
            self._ready()
            self._cleanup()
            return 1
        state.status, state.pid, state.started_at = "running", self.pid, time.time()
        self.bundle.write_state(state)
        self._ready()
        try:
            exit_status = self._supervise(ctl, out_r, err_r)
        finally:
            ctl.close()
            if self.pid and not _reaped(self.pid):
                os.kill(self.pid, signal.SIGKILL)  # we are going: the container goes with us
        state.status = "exited"
        state.exit_code = _exit_code(exit_status) if exit_status is not None else 137
        state.oom_killed = self.cgroup.oom_killed()
        state.finished_at = time.time()
        self.bundle.write_state(state)
        self._cleanup()
        return 0

    def _supervise(self, ctl: socket.socket, out_r: int, err_r: int) -> int | None:
        """Pump output, serve commands; returns PID 1's wait status once it has exited."""
        sel = selectors.DefaultSelector()
        sel.register(out_r, selectors.EVENT_READ, "stdout")
        sel.register(err_r, selectors.EVENT_READ, "stderr")
        sel.register(ctl, selectors.EVENT_READ, "ctl")
        exit_status: int | None = None
        exited_at = 0.0
        open_streams = 2
        while exit_status is None or open_streams:
            for key, _ in sel.select(timeout=0.1):
                if key.data == "ctl":
                    conn, _ = ctl.accept()
                    self._command(conn)
                elif not self._pump(key.fd, key.data):
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    open_streams -= 1
            if exit_status is None and self.health is not None and self.stop_deadline is None:
                self._check_health()
            if exit_status is None:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    exit_status, exited_at = status, time.monotonic()
                    self.cgroup.kill_all()  # the pid namespace is gone; anything left outside it goes too
                elif self.stop_deadline is not None and time.monotonic() > self.stop_deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
            elif time.monotonic() - exited_at > 5:
                break  # something kept the output pipe open past the container: don't wait forever
        return exit_status

    def _ready(self) -> None:
        if self._ready_fd >= 0:
            os.write(self._ready_fd, b"1")
            os.close(self._ready_fd)
            self._ready_fd = -1

    def _cleanup(self) -> None:
        self.log.close()
        with contextlib.suppress(OSError):
            linux.umount2(str(self.bundle.rootfs), linux.MNT_DETACH)


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m agent.runtime.supervisor BUNDLE", file=sys.stderr)
        return 2
    # Daemonize: the executor's direct child exits once the container has started (or failed
    # to), so the executor needs no polling, and swarmd never has a long-lived child to reap.
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        os.read(ready_r, 1)
        os._exit(0)
    os.close(ready_r)
    os.setsid()
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only the executor's "stop" stops a container
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return Supervisor(Bundle(Path(argv[0])), ready_w).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
