"""Health checks, run by the supervisor inside the container's namespaces and cgroup, as
Docker's HEALTHCHECK: a check every `interval`, killed after `timeout`; `retries` failures in a
row make the container unhealthy; failures during `start_period` do not count."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field

from agent.runtime import cgroups, linux
from agent.runtime.bundle import HealthSpec

NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")  # mnt last: it changes our root


@dataclass
class HealthCheck:
    test: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    interval: float
    timeout: float
    retries: int
    start_period: float
    started: float = field(default_factory=time.monotonic)
    status: str = "starting"
    failures: int = 0
    output: str = ""
    _pid: int = 0
    _out: int = -1
    _deadline: float = 0.0
    _next: float = 0.0

    @classmethod
    def of(cls, spec: HealthSpec, env: list[str], uid: int = 0, gid: int = 0) -> HealthCheck:
        c = cls(
            test=list(spec.test),
            env=dict(e.split("=", 1) for e in env if "=" in e),
            uid=uid,
            gid=gid,
            interval=spec.interval,
            timeout=spec.timeout,
            retries=spec.retries,
            start_period=spec.start_period,
        )
        c._next = c.started + min(c.interval, 1.0)  # a first look soon after start
        return c

    def poll(self, container_pid: int, cgroup: cgroups.Cgroup) -> bool:
        """Drive the check; returns True when the status changed."""
        now = time.monotonic()
        if self._pid:
            done, status = os.waitpid(self._pid, os.WNOHANG)
            if not done:
                if now > self._deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self._pid, signal.SIGKILL)
                return False
            output = self._collect()
            self._pid = 0
            ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            if not ok and now - self._deadline >= 0:
                output = f"health check timed out after {self.timeout:g}s"
            return self._record(ok, output, now)
        if now >= self._next:
            self._start(container_pid, cgroup)
            self._next = now + self.interval
        return False

    def _record(self, ok: bool, output: str, now: float) -> bool:
        before = self.status
        self.output = output[-500:]
        if ok:
            self.failures, self.status = 0, "healthy"
        elif now - self.started >= self.start_period:
            self.failures += 1
            if self.failures >= max(self.retries, 1):
                self.status = "unhealthy"
        return self.status != before

    def _collect(self) -> str:
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := os.read(self._out, 4096):
                chunks.append(chunk)
        os.close(self._out)
        self._out = -1
        return b"".join(chunks).decode(errors="replace")

    def _start(self, container_pid: int, cgroup: cgroups.Cgroup) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                fds = [os.open(f"/proc/{container_pid}/ns/{ns}", os.O_RDONLY) for ns in NAMESPACES]
                cgroup.add(os.getpid())
                for fd in fds:
                    linux.setns(fd)
                if os.fork():  # a new pid namespace only applies to children
                    _, status = os.wait()
                    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
                os.chdir("/")
                # As the container's own user, with no more privileges than the container has.
                linux.limit_capabilities(linux.DEFAULT_CAPS)
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
                os.dup2(w, 1)
                os.dup2(w, 2)
                os.execvpe(self.test[0], self.test, self.env)
            except BaseException as e:
                with contextlib.suppress(OSError):
                    os.write(w, f"health check could not run: {e}".encode())
            os._exit(127)
        os.close(w)
        os.set_blocking(r, False)
        self._pid, self._out, self._deadline = pid, r, time.monotonic() + self.timeout
