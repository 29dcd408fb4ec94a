"""The updater on a local store: batches, start-first, failure actions, rollback."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from manager.store import MemoryStore, Tx
from shoal.api import Service, ServiceSpec, Task, TaskState
from shoal.api.types_pb2 import UpdateConfig, UpdateStatus
from tests.manager.test_orchestrators import add_node, add_service, settle


def StubSpec(name: str, replicas: int) -> ServiceSpec:
    spec = ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox"
    spec.replicated.replicas = replicas
    return spec


async def agents(store: MemoryStore, fail_image: str = "") -> None:
    """Assigned tasks run (or fail, for fail_image); stopped ones end SHUTDOWN."""

    def write(tx: Tx) -> None:
        for t in tx.find(Task):
            if (
                TaskState.ASSIGNED <= t.status.state < TaskState.RUNNING
                and t.desired_state == TaskState.RUNNING
            ):
                bad = fail_image and t.spec.container.image == fail_image
                t.status.state = TaskState.FAILED if bad else TaskState.RUNNING
                t.status.timestamp.GetCurrentTime()
                tx.update(t)
            elif t.status.state <= TaskState.RUNNING and t.desired_state > TaskState.RUNNING:
                t.status.state = TaskState.SHUTDOWN
                tx.update(t)

    await store.update(write)


async def quick(store: MemoryStore, svc: Service) -> None:
    """No monitor period, so a test needs no real time to pass."""

    def write(tx: Tx) -> None:
        s = tx.get_service(svc.id)
        assert s is not None
        s.spec.update.monitor.CopyFrom(Duration())
        s.spec.rollback.monitor.CopyFrom(Duration())
        tx.update(s)

    await store.update(write)


async def update(store: MemoryStore, svc: Service, image: str, **cfg: object) -> None:
    from manager.controlapi import ControlServicer
    from shoal.api import control_pb2

    current = store.view().get_service(svc.id)
    assert current is not None
    spec = type(current.spec)()
    spec.CopyFrom(current.spec)
    spec.task.container.image = image
    spec.update.CopyFrom(UpdateConfig(monitor=Duration(), **cfg))  # type: ignore[arg-type]
    spec.rollback.CopyFrom(UpdateConfig(monitor=Duration()))
    req = control_pb2.UpdateServiceRequest(service_id=svc.id, spec=spec, no_resolve_image=True)
    await ControlServicer(store).UpdateService(req, None)  # type: ignore[arg-type]


def live(store: MemoryStore, svc: Service) -> list[Task]:
    return [t for t in store.view().tasks(service_id=svc.id) if t.desired_state == TaskState.RUNNING]


def status(store: MemoryStore, svc: Service) -> int:
    s = store.view().get_service(svc.id)
    assert s is not None
    return s.update_status.state


async def step(store: MemoryStore, fail_image: str = "") -> None:
    await settle(store, rounds=2)
    await agents(store, fail_image)


async def test_batches_respect_parallelism() -> None:
    store = MemoryStore()
    for h in "abc":
        await add_node(store, h)
    svc = await add_service(store, "web", 10)
    await step(store)
    await update(store, svc, "busybox:2", parallelism=2)
    for _ in range(40):
        await settle(store, rounds=1)
        not_running = [t for t in live(store, svc) if t.status.state != TaskState.RUNNING]
        assert len({t.slot for t in not_running}) <= 2
        await agents(store)
        if status(store, svc) == UpdateStatus.COMPLETED:
            break
    assert status(store, svc) == UpdateStatus.COMPLETED
    tasks = live(store, svc)
    assert len(tasks) == 10 and all(t.spec.container.image == "busybox:2" for t in tasks)


async def test_start_first_keeps_old_until_new_runs() -> None:
    store = MemoryStore()
    await add_node(store, "a")
    svc = await add_service(store, "web", 3)
    await step(store)
    await update(store, svc, "busybox:2", parallelism=1, order=UpdateConfig.START_FIRST)
    for _ in range(40):
        await settle(store, rounds=1)
        running = [t for t in store.view().tasks(service_id=svc.id) if t.status.state == TaskState.RUNNING]
        assert len(running) >= 3
        await agents(store)
        if status(store, svc) == UpdateStatus.COMPLETED:
            break
    assert status(store, svc) == UpdateStatus.COMPLETED
    assert {t.spec.container.image for t in live(store, svc)} == {"busybox:2"}


async def test_failure_rolls_back_or_pauses() -> None:
    store = MemoryStore()
    await add_node(store, "a")
    svc = await add_service(store, "web", 4)
    await quick(store, svc)
    await step(store)
    await update(store, svc, "broken", parallelism=1, failure_action=UpdateConfig.ROLLBACK)
    for _ in range(40):
        await step(store, fail_image="broken")
        if status(store, svc) == UpdateStatus.ROLLBACK_COMPLETED:
            break
    assert status(store, svc) == UpdateStatus.ROLLBACK_COMPLETED
    tasks = live(store, svc)
    assert len(tasks) == 4 and all(t.spec.container.image == "busybox" for t in tasks)

    await update(store, svc, "broken", parallelism=1, failure_action=UpdateConfig.PAUSE)
    for _ in range(20):
        await step(store, fail_image="broken")
        if status(store, svc) == UpdateStatus.PAUSED:
            break
    assert status(store, svc) == UpdateStatus.PAUSED
    running = [t for t in live(store, svc) if t.status.state == TaskState.RUNNING]
    assert len(running) == 3 and all(t.spec.container.image == "busybox" for t in running)

    # The next update resumes a paused one.
    await update(store, svc, "busybox:3", parallelism=1, failure_action=UpdateConfig.PAUSE)
    for _ in range(40):
        await step(store, fail_image="broken")
        if status(store, svc) == UpdateStatus.COMPLETED:
            break
    assert status(store, svc) == UpdateStatus.COMPLETED
    assert {t.spec.container.image for t in live(store, svc)} == {"busybox:3"}
