"""Issue 5 acceptance (on the lab, real containers): rolling updates, rollback, restart policies,
CLI progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from swarmlab.testing import running_lab
from tests.integration.cli import Cli, wait_for

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cli]:
    with running_lab(managers=1, workers=2, executor="container") as lab:
        yield Cli(lab)


def img(cli: Cli, tag: str = "latest") -> str:
    return f"{cli.lab.registry}/busybox:{tag}"


def on(cli: Cli, tag: str, tasks: list[dict[str, Any]]) -> bool:
    """Every task runs busybox:tag (pinned to its digest by the manager)."""
    return all(t["spec"]["container"]["image"].startswith(img(cli, tag) + "@sha256:") for t in tasks)


def create(cli: Cli, name: str, replicas: int, *args: str) -> None:
    cli.run(
        "service", "create", "--name", name, "--replicas", str(replicas), "--stop-grace-period", "1s",
        *args, img(cli), "sleep", "1000",
    )  # fmt: skip


class Watcher:
    """Samples the service's tasks in the background while a command runs."""

    def __init__(self, cli: Cli, service: str, measure: Callable[[list[dict[str, Any]]], int]) -> None:
        self.cli, self.service, self.measure = cli, service, measure
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.measure(self.cli.tasks(self.service)))
            except Exception:
                pass
            time.sleep(0.1)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def status(cli: Cli, service: str) -> dict[str, Any]:
    return dict(cli.json("service", "inspect", service).get("update_status", {}))


def slots_without_running(tasks: list[dict[str, Any]]) -> int:
    running = {t["slot"] for t in tasks if t["status"]["state"] == "RUNNING"}
    wanted = {t["slot"] for t in tasks if t["desired_state"] == "RUNNING"}
    return len(wanted - running)


def test_rolling_update_parallelism_and_delay(cluster: Cli) -> None:
    create(cluster, "roll", 10)
    with Watcher(cluster, "roll", slots_without_running) as w:
        proc = cluster.run(
            "service", "update", "roll", "--image", img(cluster, "2"), "--update-parallelism", "2",
            "--update-delay", "1s", "--update-monitor", "1s",
        )  # fmt: skip
    assert "overall progress" in proc.stderr and "converged" in proc.stderr
    assert "  1/10: running" in proc.stderr and "  10/10: running" in proc.stderr  # per slot
    assert w.samples and max(w.samples) <= 2, w.samples
    running = cluster.running("roll")
    assert len(running) == 10 and on(cluster, "2", running)
    assert status(cluster, "roll")["state"] == "COMPLETED"
    cluster.run("service", "rm", "roll")


def test_start_first_keeps_every_slot_running(cluster: Cli) -> None:
    create(cluster, "sf", 10)

    def running(tasks: list[dict[str, Any]]) -> int:
        return sum(t["status"]["state"] == "RUNNING" for t in tasks)

    with Watcher(cluster, "sf", running) as w:
        cluster.run(
            "service", "update", "sf", "--image", img(cluster, "2"), "--update-order", "start-first",
            "--update-parallelism", "3", "--update-monitor", "500ms",
        )  # fmt: skip
    assert w.samples and min(w.samples) >= 10, w.samples
    assert status(cluster, "sf")["state"] == "COMPLETED"
    cluster.run("service", "rm", "sf")


def test_failed_update_rolls_back_or_pauses(cluster: Cli) -> None:
    create(cluster, "fail", 4)
    proc = cluster.run(
        "service", "update", "fail", "--args", "false", "--update-failure-action", "rollback",
        "--update-monitor", "1s", check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "roll" in proc.stderr and "Traceback" not in proc.stderr
    assert status(cluster, "fail")["state"] == "ROLLBACK_COMPLETED"
    running = cluster.running("fail")
    assert len(running) == 4 and all(t["spec"]["container"]["args"] == ["sleep", "1000"] for t in running)

    proc = cluster.run(
        "service", "update", "fail", "--args", "false", "--update-failure-action", "pause",
        "--update-monitor", "1s", check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "paused" in proc.stderr
    assert status(cluster, "fail")["state"] == "PAUSED"
    old = cluster.running("fail")
    assert len(old) == 3 and all(t["spec"]["container"]["args"] == ["sleep", "1000"] for t in old)
    cluster.run("service", "rm", "fail")


def test_max_failure_ratio_lets_a_partial_failure_continue(cluster: Cli) -> None:
    create(cluster, "ratio", 4)
    cluster.run(
        "service", "update", "ratio", "--args", "false", "--update-failure-action", "pause",
        "--update-max-failure-ratio", "0.5", "--update-monitor", "500ms", "--detach",
    )  # fmt: skip
    wait_for(lambda: status(cluster, "ratio")["state"] == "PAUSED", 60, "the update to pause past 50%")
    fresh = [t for t in cluster.tasks("ratio") if t["spec"]["container"]["args"] == ["false"]]
    assert len({t["slot"] for t in fresh}) >= 3, "the update went on after the first failures"
    cluster.run("service", "rm", "ratio")


def test_manual_rollback(cluster: Cli) -> None:
    create(cluster, "back", 3)
    cluster.run("service", "update", "back", "--image", img(cluster, "2"), "--update-monitor", "200ms")
    assert on(cluster, "2", cluster.running("back"))
    cluster.run("service", "rollback", "back")
    assert status(cluster, "back")["state"] == "ROLLBACK_COMPLETED"
    assert on(cluster, "latest", cluster.running("back"))
    cluster.run("service", "rm", "back")


@pytest.mark.parametrize(
    ("condition", "args", "attempts", "expect_runs"),
    [("on-failure", "false", "2", 3), ("none", "false", "0", 1), ("any", "true", "0", None)],
)
def test_restart_policy(
    cluster: Cli, condition: str, args: str, attempts: str, expect_runs: int | None
) -> None:
    name = f"rp-{condition}"
    cluster.run(
        "service", "create", "--detach", "--name", name, "--replicas", "1", "--restart-condition", condition,
        "--restart-delay", "200ms", "--restart-max-attempts", attempts, img(cluster), args,
    )  # fmt: skip
    if expect_runs is None:  # "any" restarts even after a clean exit
        wait_for(
            lambda: sum(t["status"]["state"] == "COMPLETE" for t in cluster.tasks(name)) >= 3, 30, "restarts"
        )
    else:
        wait_for(lambda: len(cluster.tasks(name)) >= expect_runs, 30, f"{expect_runs} runs")
        time.sleep(2)  # long enough for more restarts, if any were (wrongly) coming
        tasks = cluster.tasks(name)
        assert len(tasks) == expect_runs, [t["status"]["state"] for t in tasks]
        assert all(t["status"]["state"] == "FAILED" for t in tasks)
    cluster.run("service", "rm", name)


def test_unhealthy_task_is_restarted(cluster: Cli) -> None:
    cluster.run(
        "service", "create", "--detach", "--name", "sickly", "--replicas", "1", "--restart-delay", "500ms",
        "--health-cmd", "test -e /tmp/ok", "--health-interval", "500ms", "--health-retries", "2",
        "--stop-grace-period", "1s", img(cluster),
        "sh", "-c", "touch /tmp/ok; sleep 5; rm /tmp/ok; sleep 1000",
    )  # fmt: skip

    def restarted() -> bool:
        tasks = cluster.tasks("sickly")
        sick = [t for t in tasks if t["status"]["state"] == "FAILED" and "unhealthy" in t["status"]["err"]]
        return bool(sick) and any(t["status"]["state"] == "RUNNING" for t in tasks if t not in sick)

    wait_for(restarted, 40, "an unhealthy task FAILED and a new one RUNNING")
    cluster.run("service", "rm", "sickly")


def test_update_that_never_gets_healthy_times_out_and_rolls_back(cluster: Cli) -> None:
    create(cluster, "never", 2)
    proc = cluster.run(
        "service", "update", "never", "--health-cmd", "false", "--health-interval", "500ms",
        "--health-start-period", "60s", "--update-task-timeout", "4s", "--update-failure-action", "rollback",
        "--update-monitor", "500ms", check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "did not reach RUNNING in time" in proc.stderr, proc.stderr
    assert status(cluster, "never")["state"] == "ROLLBACK_COMPLETED"
    running = cluster.running("never")
    assert len(running) == 2 and all(not t["spec"]["container"].get("healthcheck") for t in running)
    cluster.run("service", "rm", "never")
