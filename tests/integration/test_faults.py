"""Issue 6: a worker killed during a rolling update; a manager whose Raft journal is truncated
or garbage. Both restore what they broke (the worker is started again, the journal put back)."""

from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Cli, wait_for
from tests.integration.faultkit import MANAGERS, all_ready, create, leader, service_names, wait_leader

pytestmark = pytest.mark.lab

UPDATE_SETTLES_WITHIN = 90.0


def _service(cli: Cli, name: str) -> dict[str, Any]:
    return next(s for s in cli.services() if s["spec"]["annotations"]["name"] == name)


def test_worker_killed_mid_update(cluster: Cli) -> None:
    lab = cluster.lab
    wait_for(lambda: all_ready(cluster), 30, "a whole cluster")
    name = "rolling"
    proc, _ = create(cluster, name, "--replicas", "6", "--env", "V=1")
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: len(cluster.running(name)) == 6, 30, "6 tasks running")
    names = cluster.hostnames()
    assert any(names[t["node_id"]] == "w1" for t in cluster.running(name)), "no task on w1"

    cluster.run(
        "service", "update", "--detach", "--update-parallelism", "2", "--update-delay", "1s",
        "--env-add", "V=2", name,
    )  # fmt: skip
    assert _service(cluster, name).get("update_status", {}).get("state") == "UPDATING"
    lab.kill("w1")
    killed_at = time.monotonic()
    try:

        def settled() -> dict[str, Any] | None:
            st = _service(cluster, name).get("update_status", {})
            return st if st.get("state") in ("COMPLETED", "PAUSED") else None

        status = wait_for(settled, UPDATE_SETTLES_WITHIN, "the update to end COMPLETED or PAUSED", 0.3)
        took = time.monotonic() - killed_at
        msg = status.get("message")
        print(f"\nupdate_after_worker_kill state={status['state']} message={msg!r} s={took:.1f}")
        if status["state"] == "PAUSED":
            assert status.get("message"), "a paused update says why"
        else:
            running = cluster.running(name)
            assert len(running) == 6
            assert all("V=2" in t["spec"]["container"].get("env", []) for t in running)
            assert all(names[t["node_id"]] != "w1" for t in running)
    finally:
        lab.start("w1")
    wait_for(lambda: all_ready(cluster), 40, "w1 READY again")
    cluster.run("service", "rm", name)


def _entries(journal: Path) -> list[tuple[int, int]]:
    """(offset, length) of each entry of a pysyncobj journal."""
    data = journal.read_bytes()
    (end,) = struct.unpack_from("<I", data, 36)
    out, offset = [], 40
    while offset < end:
        (length,) = struct.unpack_from("<I", data, offset)
        out.append((offset, length))
        offset += length + 8
    return out


def _refuses(cluster: Cli, host: str, expect: str) -> str:
    """Start the host on its broken state dir: swarmd must exit with the one-line message."""
    lab = cluster.lab
    log = lab.log_path(host)
    before = log.stat().st_size
    lab.start(host, wait=False)
    wait_for(lambda: not lab.is_running(host), 30, f"swarmd on {host} to refuse to start")
    lines = log.read_text(errors="replace")[before:].splitlines()
    refusal = [ln for ln in lines if ln.startswith("swarmd: ")]
    assert refusal, "\n".join(lines[-20:])
    assert not any("Traceback" in ln for ln in lines), "\n".join(lines[-30:])
    msg = refusal[-1]
    assert str(lab.state_dir(host) / "raft" / "journal") in msg and expect in msg, msg
    assert "refusing to start" in msg
    return msg


def test_corrupt_journal_refuses_to_start(cluster: Cli) -> None:
    lab = cluster.lab
    wait_for(lambda: all_ready(cluster), 30, "a whole cluster")
    lead = leader(cluster)
    victim = "m3" if lead != "m3" else "m2"
    others = [m for m in MANAGERS if m != victim]
    raft = lab.state_dir(victim) / "raft"
    journal = raft / "journal"
    backup = lab.host_dir(victim) / "raft.backup"
    shutil.rmtree(backup, ignore_errors=True)

    lab.stop(victim)
    shutil.copytree(raft, backup)
    try:
        offset, length = _entries(journal)[-1]
        data = journal.read_bytes()
        # Truncated half way through its last entry.
        journal.write_bytes(data[: offset + 4 + length // 2])
        truncated = _refuses(cluster, victim, f"truncated entry at offset {offset}")
        # Garbage where the last entries were.
        first = _entries(backup / "journal")[-3][0]
        (end,) = struct.unpack_from("<I", data, 36)
        journal.write_bytes(data[:first] + b"\xa5" * (end - first) + data[end:])
        garbage = _refuses(cluster, victim, "is corrupt")
        print(f"\njournal_truncated: {truncated}\njournal_garbage: {garbage}")

        # The other two carry on, without the victim's diverged state in the picture.
        wait_leader(lab, others)
        proc, _ = create(cluster.at(others[0]), "while-m-broken")
        assert proc.returncode == 0, proc.stderr
    finally:
        shutil.rmtree(raft)
        shutil.copytree(backup, raft)
        shutil.rmtree(backup)
    lab.start(victim)
    victim_cli = cluster.at(victim)
    wait_for(lambda: "while-m-broken" in service_names(victim_cli), 30, f"{victim} back with its journal")
    wait_for(lambda: all_ready(cluster), 40, "every node READY")
    cluster.run("service", "rm", "while-m-broken")
