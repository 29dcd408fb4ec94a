"""Tier 2: a real cluster in one process (Raft, gRPC, dispatcher, agents with the test
executor) — the control plane end to end, without namespaces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.api import ServiceSpec, TaskState, control_pb2
from tests.cluster.harness import InProcessCluster, wait_until


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    c = InProcessCluster(tmp_path, managers=1, workers=2)
    try:
        await c.start()
        yield c
    finally:
        await c.close()


def _spec(name: str, replicas: int) -> ServiceSpec:
    spec = ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = "busybox:latest"
    spec.task.container.args.extend(["sleep", "1000"])
    spec.replicated.replicas = replicas
    return spec


async def _running(c: InProcessCluster, service_id: str) -> list:  # type: ignore[type-arg]
    f = control_pb2.ListFilters(service_ids=[service_id])
    tasks = (await c.control().ListTasks(control_pb2.ListTasksRequest(filters=f), timeout=5)).tasks
    return [t for t in tasks if t.desired_state == TaskState.RUNNING and t.status.state == TaskState.RUNNING]


async def test_replicated_service_runs_spread(cluster: InProcessCluster) -> None:
    ctl = cluster.control()
    svc = (
        await ctl.CreateService(
            control_pb2.CreateServiceRequest(no_resolve_image=True, spec=_spec("web", 6)), timeout=5
        )
    ).service

    async def six() -> bool:
        return len(await _running(cluster, svc.id)) == 6

    await wait_until(six, timeout=20, what="6 tasks running")
    running = await _running(cluster, svc.id)
    assert len({t.node_id for t in running}) == 3
    assert sorted(t.slot for t in running) == [1, 2, 3, 4, 5, 6]

    spec = _spec("web", 2)
    req = control_pb2.UpdateServiceRequest(
        service_id=svc.id, service_version=svc.meta.version, spec=spec, no_resolve_image=True
    )
    await ctl.UpdateService(req, timeout=5)

    async def scaled_down() -> bool:
        f = control_pb2.ListFilters(service_ids=[svc.id])
        tasks = (await ctl.ListTasks(control_pb2.ListTasksRequest(filters=f), timeout=5)).tasks
        gone = [t for t in tasks if t.desired_state != TaskState.RUNNING]
        return len(gone) == 4 and all(t.status.state == TaskState.SHUTDOWN for t in gone)

    await wait_until(scaled_down, timeout=20, what="4 tasks shut down")
    assert len(await _running(cluster, svc.id)) == 2


async def test_service_logs_stream_from_every_task(cluster: InProcessCluster) -> None:
    from shoal import rpc
    from shoal.api import logs_pb2, logs_pb2_grpc

    ctl = cluster.control()
    svc = (
        await ctl.CreateService(
            control_pb2.CreateServiceRequest(no_resolve_image=True, spec=_spec("talk", 3)), timeout=5
        )
    ).service

    async def three() -> bool:
        return len(await _running(cluster, svc.id)) == 3

    await wait_until(three, timeout=20, what="3 tasks running")
    async with rpc.channel(rpc.socket_target(str(cluster.hosts["m1"].socket))) as ch:
        req = logs_pb2.SubscribeLogsRequest(
            selector=logs_pb2.LogSelector(service_ids=[svc.id]), options=logs_pb2.LogOptions(tail=-1)
        )
        lines = [
            m
            async for batch in logs_pb2_grpc.LogsStub(ch).SubscribeLogs(req, timeout=20)
            for m in batch.messages
        ]
    running = {t.id: t.node_id for t in await _running(cluster, svc.id)}
    assert {m.context.task_id for m in lines} == set(running)
    assert all(m.context.node_id == running[m.context.task_id] for m in lines)
    assert all(m.data == b"test executor: sleep 1000\n" for m in lines)
