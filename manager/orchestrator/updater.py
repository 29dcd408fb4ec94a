"""The updater: replaces the tasks whose spec differs from their service's ("dirty" slots), a
batch at a time, as `UpdateConfig` says (parallelism, delay, monitor, order, failure action, max
failure ratio), and rolls back with `rollback` when told to.

It keeps no memory of its own: every pass works out where the update stands from the store (the
service's update_status and the tasks), so a new leader carries on where the last one was.
Unlike SwarmKit's updater it never waits forever: a replacement that is not RUNNING within the
task timeout counts as a failure."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Literal

from manager.orchestrator.tasks import epoch, new_task, now, stop_task, task_is_live
from manager.reconciler import Reconciler
from manager.store import Tx
from shoal.api import Service, Task, TaskState
from shoal.api.types_pb2 import UpdateConfig, UpdateStatus
from shoal.log import get_logger

log = get_logger("orchestrator.updater")
DEFAULT_MONITOR = 5.0
DEFAULT_TASK_TIMEOUT = 60.0
ACTIVE = (UpdateStatus.UPDATING, UpdateStatus.ROLLBACK_STARTED)


def _seconds(cfg: UpdateConfig, field: Literal["delay", "monitor", "task_timeout"], default: float) -> float:
    return getattr(cfg, field).ToTimedelta().total_seconds() if cfg.HasField(field) else default


def _key(t: Task) -> object:
    return t.slot if t.slot else t.node_id


class Updater(Reconciler):
    tick = 0.25

    def reconcile(self, tx: Tx) -> None:
        if not any(s.update_status.state in ACTIVE for s in tx.scan(Service)):
            return
        by_service: dict[str, list[Task]] = defaultdict(list)
        for t in tx.scan(Task):
            by_service[t.service_id].append(t)
        for svc in tx.services():
            if svc.update_status.state in ACTIVE:
                update_service(tx, svc, by_service.get(svc.id, []), time.time())


def update_service(tx: Tx, svc: Service, tasks: list[Task], clock: float) -> None:
    rolling_back = svc.update_status.state == UpdateStatus.ROLLBACK_STARTED
    cfg = svc.spec.rollback if rolling_back else svc.spec.update
    started = epoch(svc.update_status.started_at)
    monitor = _seconds(cfg, "monitor", DEFAULT_MONITOR)
    timeout = _seconds(cfg, "task_timeout", DEFAULT_TASK_TIMEOUT)
    want = svc.spec.task

    slots: dict[object, list[Task]] = defaultdict(list)
    for t in tasks:
        if task_is_live(t):
            slots[_key(t)].append(t)
    fresh = [t for t in tasks if t.spec == want and epoch(t.meta.created_at) >= started]
    failed = [
        t
        for t in fresh
        if t.status.state in (TaskState.FAILED, TaskState.REJECTED)
        or (t.status.state < TaskState.RUNNING and clock - epoch(t.meta.created_at) > timeout)
        or (t.status.state == TaskState.COMPLETE and epoch(t.status.timestamp) - _running_since(t) < monitor)
    ]
    total = max(len(slots), 1)
    if failed and len(failed) / total > cfg.max_failure_ratio:
        _on_failure(tx, svc, cfg, failed[0], rolling_back)
        return

    dirty: list[object] = []
    in_flight = 0
    last_done = started
    for key, live in slots.items():
        newest = max(live, key=lambda t: t.meta.created_at.ToNanoseconds())
        if newest.spec != want:
            dirty.append(key)
        elif len(live) > 1 or newest.status.state < TaskState.RUNNING:
            in_flight += 1  # the replacement is starting (or the old one not yet stopped)
        elif epoch(newest.meta.created_at) >= started:
            running_at = _running_since(newest)
            if clock - running_at < monitor:
                in_flight += 1  # still being watched
            last_done = max(last_done, running_at + monitor)

    if not dirty and not in_flight:
        _finish(tx, svc, rolling_back)
        return
    parallelism = cfg.parallelism or len(slots)
    if not dirty or in_flight >= parallelism:
        return
    delay = _seconds(cfg, "delay", 0.0)
    if in_flight == 0 and last_done > started and clock < last_done + delay:
        return
    start_first = cfg.order == UpdateConfig.START_FIRST
    for key in sorted(dirty, key=str)[: parallelism - in_flight]:
        live = slots[key]
        if not start_first:
            for old in live:
                stop_task(tx, old, why="replaced by the service update")
        slot = live[0].slot
        tx.create(new_task(svc, slot, node_id="" if slot else live[0].node_id))


def _running_since(t: Task) -> float:
    """When the task reached RUNNING (its status timestamp while RUNNING; else creation)."""
    if t.status.state == TaskState.RUNNING:
        return epoch(t.status.timestamp)
    return epoch(t.meta.created_at)


def _set_status(tx: Tx, svc: Service, state: int, message: str, done: bool = False) -> None:
    svc.update_status.state = state  # type: ignore[assignment]
    svc.update_status.message = message
    if done:
        svc.update_status.completed_at.CopyFrom(now())
    tx.update(svc)
    name = UpdateStatus.UpdateState.Name(state)  # type: ignore[arg-type]
    log.info("update_status", service=svc.spec.annotations.name, state=name)


def _finish(tx: Tx, svc: Service, rolling_back: bool) -> None:
    if rolling_back:
        why = svc.update_status.message.removeprefix("update rolled back: ")
        _set_status(tx, svc, UpdateStatus.ROLLBACK_COMPLETED, f"rollback completed ({why})", done=True)
    else:
        _set_status(tx, svc, UpdateStatus.COMPLETED, "update completed", done=True)


def _on_failure(tx: Tx, svc: Service, cfg: UpdateConfig, task: Task, rolling_back: bool) -> None:
    why = f"task {task.id} {_failure(task)}"
    action = cfg.failure_action
    if action == UpdateConfig.CONTINUE:
        return
    if action == UpdateConfig.ROLLBACK and not rolling_back and svc.HasField("previous_spec"):
        current = type(svc.spec)()
        current.CopyFrom(svc.spec)
        svc.spec.CopyFrom(svc.previous_spec)
        svc.previous_spec.CopyFrom(current)
        svc.spec_version.index += 1
        svc.update_status.started_at.CopyFrom(now())
        _set_status(tx, svc, UpdateStatus.ROLLBACK_STARTED, f"update rolled back: {why}")
        return
    if rolling_back:
        _set_status(tx, svc, UpdateStatus.ROLLBACK_PAUSED, f"rollback paused: {why}")
    else:
        _set_status(tx, svc, UpdateStatus.PAUSED, f"update paused: {why}")


def _failure(t: Task) -> str:
    if t.status.state in (TaskState.FAILED, TaskState.REJECTED):
        return f"{TaskState.Name(t.status.state).lower()}: {t.status.err or t.status.message}"
    if t.status.state == TaskState.COMPLETE:
        return "exited during the monitor period"
    return f"did not reach RUNNING in time (stuck in {TaskState.Name(t.status.state)})"
