"""Issue 6: bad input. Every Control RPC gets malformed requests, sent straight over gRPC to a
manager's control socket (a follower's, so forwarding is on the path too). Each must end with
INVALID_ARGUMENT or NOT_FOUND (ABORTED for a stale version: CONVENTIONS.md 5 maps VersionConflict
there), never INTERNAL/UNKNOWN and never a hang. Hypothesis-generated ServiceSpecs against
CreateService get OK or INVALID_ARGUMENT. Afterwards the leader is healthy and nothing invalid
was stored (every service still encodes to JSON and passes validation)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manager.controlapi import validate
from shoal.api import ServiceSpec, control_pb2, control_pb2_grpc
from shoal.api.specs_pb2 import ClusterSpec, NetworkSpec, NodeSpec
from shoal.errors import InvalidSpec
from tests.integration.cli import Cli, wait_for
from tests.integration.faultkit import IMAGE, MANAGERS, all_ready, control_stub, create, leader, rpc_code

pytestmark = pytest.mark.lab

C = control_pb2
OK, BAD, MISSING, STALE = (
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ABORTED,
)
ANSWER_WITHIN = 15.0


@pytest.fixture(scope="module")
def stub(cluster: Cli) -> Iterator[control_pb2_grpc.ControlStub]:
    follower = next(m for m in MANAGERS if m != leader(cluster))
    with control_stub(cluster.lab, follower) as s:
        yield s


def _spec(name: str = "ok", **mutate: Any) -> ServiceSpec:
    spec = ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = IMAGE
    spec.replicated.replicas = 1
    return spec


def _with(spec: ServiceSpec, change: Callable[[ServiceSpec], object]) -> ServiceSpec:
    change(spec)
    return spec


def _ids(stub: control_pb2_grpc.ControlStub) -> dict[str, Any]:
    """A real node, task, service, network and cluster to aim stale/invalid updates at."""
    svc = stub.CreateService(
        C.CreateServiceRequest(spec=_spec("bad-input-target"), no_resolve_image=True), timeout=20
    ).service
    net = stub.CreateNetwork(
        C.CreateNetworkRequest(spec=NetworkSpec(annotations={"name": "bad-input-net"})), timeout=20
    ).network
    node = stub.ListNodes(C.ListNodesRequest(), timeout=20).nodes[0]
    cluster = stub.ListClusters(C.ListClustersRequest(), timeout=20).clusters[0]
    return {"service": svc, "network": net, "node": node, "cluster": cluster}


def _cases(t: dict[str, Any]) -> list[tuple[str, Any, set[grpc.StatusCode]]]:
    svc, net, node, cluster = t["service"], t["network"], t["node"], t["cluster"]
    stale = {"index": 1}
    bad_filters = C.ListFilters(desired_states=[7777], roles=[99])
    return [
        ("GetNode", C.GetNodeRequest(node_id=""), {BAD}),
        ("GetNode", C.GetNodeRequest(node_id="nosuchnode"), {MISSING}),
        ("ListNodes", C.ListNodesRequest(filters=C.ListFilters(roles=[42])), {BAD}),
        ("UpdateNode", C.UpdateNodeRequest(node_id="nosuchnode", spec=node.spec), {MISSING}),
        ("UpdateNode", C.UpdateNodeRequest(node_id=node.id, spec=NodeSpec(availability=9)), {BAD}),  # type: ignore[arg-type]
        ("UpdateNode", C.UpdateNodeRequest(node_id=node.id, node_version=stale, spec=node.spec), {STALE}),
        ("RemoveNode", C.RemoveNodeRequest(node_id="nosuchnode"), {MISSING}),
        ("GetTask", C.GetTaskRequest(task_id=""), {BAD}),
        ("GetTask", C.GetTaskRequest(task_id="nosuchtask"), {MISSING}),
        ("ListTasks", C.ListTasksRequest(filters=bad_filters), {BAD}),
        ("CreateService", C.CreateServiceRequest(spec=_spec("")), {BAD}),
        ("CreateService", C.CreateServiceRequest(spec=_spec("has space")), {BAD}),
        (
            "CreateService",
            C.CreateServiceRequest(spec=_with(_spec("neg"), lambda s: setattr(s.replicated, "replicas", -3))),
            {BAD},
        ),
        (
            "CreateService",
            C.CreateServiceRequest(
                spec=_with(_spec("noimg"), lambda s: s.task.container.ClearField("image"))
            ),
            {BAD},
        ),
        (
            "CreateService",
            C.CreateServiceRequest(
                spec=_with(_spec("badc"), lambda s: s.task.placement.constraints.append("node.role ~~ x"))
            ),
            {BAD},
        ),
        (
            "CreateService",
            C.CreateServiceRequest(
                spec=_with(_spec("bade"), lambda s: s.task.container.env.append("=novar"))
            ),
            {BAD},
        ),
        (
            "CreateService",
            C.CreateServiceRequest(
                spec=_with(_spec("badd"), lambda s: setattr(s.update.delay, "nanos", 2_000_000_000))
            ),
            {BAD},
        ),
        (
            "CreateService",
            C.CreateServiceRequest(
                spec=_with(_spec("badn"), lambda s: s.task.networks.add(target="nosuchnet"))
            ),
            {MISSING},
        ),
        (
            "CreateService",
            C.CreateServiceRequest(
                spec=_with(_spec("badr"), lambda s: setattr(s.update, "max_failure_ratio", math.nan))
            ),
            {BAD},
        ),
        ("GetService", C.GetServiceRequest(service_id="nosuchsvc"), {MISSING}),
        ("UpdateService", C.UpdateServiceRequest(service_id="nosuchsvc", spec=svc.spec), {MISSING}),
        (
            "UpdateService",
            C.UpdateServiceRequest(
                service_id=svc.id,
                spec=_with(_spec(svc.spec.annotations.name), lambda s: setattr(s.replicated, "replicas", -1)),
            ),
            {BAD},
        ),
        (
            "UpdateService",
            C.UpdateServiceRequest(
                service_id=svc.id,
                spec=_with(_spec(svc.spec.annotations.name), lambda s: s.ClearField("replicated")),
            ),
            {BAD},
        ),
        (
            "UpdateService",
            C.UpdateServiceRequest(
                service_id=svc.id,
                spec=_with(
                    _spec(svc.spec.annotations.name),
                    lambda s: setattr(s.task.container.stop_grace_period, "seconds", -5),
                ),
            ),
            {BAD},
        ),
        (
            "UpdateService",
            C.UpdateServiceRequest(service_id=svc.id, service_version=stale, spec=svc.spec),
            {STALE},
        ),
        ("RemoveService", C.RemoveServiceRequest(service_id="nosuchsvc"), {MISSING}),
        ("ListServices", C.ListServicesRequest(filters=bad_filters), {BAD}),
        ("CreateNetwork", C.CreateNetworkRequest(spec=NetworkSpec()), {BAD}),
        (
            "CreateNetwork",
            C.CreateNetworkRequest(spec=NetworkSpec(annotations={"name": "n1"}, driver="bridge")),
            {BAD},
        ),
        (
            "CreateNetwork",
            C.CreateNetworkRequest(
                spec=NetworkSpec(annotations={"name": "n2"}, ipam=[{"subnet": "10.300.0.0/24"}])
            ),
            {BAD},
        ),
        (
            "CreateNetwork",
            C.CreateNetworkRequest(
                spec=NetworkSpec(annotations={"name": "n3"}, ipam=[{"subnet": net.ipam[0].subnet}])
            ),
            {BAD},
        ),
        (
            "CreateNetwork",
            C.CreateNetworkRequest(
                spec=NetworkSpec(
                    annotations={"name": "n4"}, ipam=[{"subnet": "10.99.0.0/24", "gateway": "banana"}]
                )
            ),
            {BAD},
        ),
        (
            "CreateNetwork",
            C.CreateNetworkRequest(
                spec=NetworkSpec(
                    annotations={"name": "n5"}, ipam=[{"subnet": "10.98.0.0/24", "gateway": "10.1.1.1"}]
                )
            ),
            {BAD},
        ),
        ("GetNetwork", C.GetNetworkRequest(network_id="nosuchnet"), {MISSING}),
        ("RemoveNetwork", C.RemoveNetworkRequest(network_id="nosuchnet"), {MISSING}),
        ("ListNetworks", C.ListNetworksRequest(filters=bad_filters), {BAD}),
        ("GetCluster", C.GetClusterRequest(cluster_id="nosuchcluster"), {MISSING}),
        ("ListClusters", C.ListClustersRequest(filters=bad_filters), {BAD}),
        ("UpdateCluster", C.UpdateClusterRequest(cluster_id="nosuchcluster", spec=cluster.spec), {MISSING}),
        (
            "UpdateCluster",
            C.UpdateClusterRequest(
                cluster_id=cluster.id, spec=ClusterSpec(orchestration={"task_history_retention_limit": -1})
            ),
            {BAD},
        ),
        (
            "UpdateCluster",
            C.UpdateClusterRequest(
                cluster_id=cluster.id, spec=ClusterSpec(dispatcher={"heartbeat_period": {"nanos": 1000}})
            ),
            {BAD},
        ),
        (
            "UpdateCluster",
            C.UpdateClusterRequest(cluster_id=cluster.id, cluster_version=stale, spec=cluster.spec),
            {STALE},
        ),
    ]


def test_every_rpc_refuses_malformed_requests(cluster: Cli, stub: control_pb2_grpc.ControlStub) -> None:
    cases = _cases(_ids(stub))
    rpcs = {m.name for m in control_pb2.DESCRIPTOR.services_by_name["Control"].methods}
    assert {name for name, _, _ in cases} == rpcs, "every Control RPC gets a malformed request"
    wrong = []
    for name, req, allowed in cases:
        code = rpc_code(getattr(stub, name), req, timeout=ANSWER_WITHIN)
        if code not in allowed:
            short = " ".join(str(req).split())[:160]
            wrong.append(f"{name}({short}) -> {code.name}, want {sorted(c.name for c in allowed)}")
    print(f"\nbad_input cases={len(cases)} rpcs={len(rpcs)} wrong={len(wrong)}")
    assert not wrong, "\n".join(wrong)


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
# Mostly valid values, so that a fair share of specs is accepted, with invalid ones mixed in.
_duration = st.fixed_dictionaries(
    {
        "seconds": st.integers(-1, 3),
        "nanos": st.integers(0, 999_999_999) | st.integers(-2_000_000_000, 2_000_000_000),
    }
)
_name = st.from_regex(r"\Ahyp-[a-z0-9]{1,8}\Z")
_constraint = st.sampled_from(["node.role==manager", "node.labels.x!=y"])


@st.composite
def service_specs(draw: st.DrawFn) -> ServiceSpec:
    spec = ServiceSpec()
    spec.annotations.name = draw(st.one_of(_name, _name, _name, _text))
    spec.task.container.image = draw(
        st.sampled_from([IMAGE] * 8 + ["", " ", "bad image", "busybox@sha256:zz"])
    )
    spec.task.container.env.extend(
        draw(st.lists(st.just("A=1") | st.just("B=two words") | _text, max_size=2))
    )
    spec.task.container.args.extend(draw(st.lists(_text, max_size=2)))
    if draw(st.booleans()):
        spec.replicated.replicas = draw(st.one_of(st.integers(0, 2), st.integers(-(2**63), -1)))
    else:
        spec.__getattribute__("global").SetInParent()
    spec.task.placement.constraints.extend(draw(st.lists(_constraint | _constraint | _text, max_size=1)))
    spec.task.resources.limits.nano_cpus = draw(st.integers(-1, 10**9))
    spec.task.resources.limits.memory_bytes = draw(st.integers(-1, 2**40))
    spec.task.resources.pids_limit = draw(st.integers(-1, 100))
    for d in (
        spec.update.delay,
        spec.update.monitor,
        spec.task.restart.delay,
        spec.task.container.stop_grace_period,
    ):
        if draw(st.integers(0, 3)) == 0:
            d.seconds, d.nanos = draw(_duration).values()
    spec.update.max_failure_ratio = draw(
        st.floats(0, 1, width=32) | st.floats(-1, 2, width=32) | st.just(math.nan)
    )
    spec.update.parallelism = draw(st.integers(0, 5))
    spec.task.container.healthcheck.retries = draw(st.integers(-1, 3))
    return spec


def _stored_ok(svc: Any) -> bool:
    try:
        validate.service_spec(svc.spec)
        json_format.MessageToJson(svc)
    except (InvalidSpec, json_format.SerializeToJsonError, ValueError):
        return False
    return True


def test_generated_specs_get_ok_or_invalid_argument(cluster: Cli, stub: control_pb2_grpc.ControlStub) -> None:
    answers: dict[str, int] = {}

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(spec=service_specs())
    def check(spec: ServiceSpec) -> None:
        req = C.CreateServiceRequest(spec=spec, no_resolve_image=True)
        code = rpc_code(stub.CreateService, req, timeout=ANSWER_WITHIN)
        answers[code.name] = answers.get(code.name, 0) + 1
        # ALREADY_EXISTS: hypothesis may draw a valid name twice.
        assert code in (OK, BAD, grpc.StatusCode.ALREADY_EXISTS), f"{code.name} for {spec}"

    check()
    print(f"\ngenerated_specs answers={answers}")
    services = stub.ListServices(C.ListServicesRequest(), timeout=20).services
    stored_bad = [s.spec.annotations.name for s in services if not _stored_ok(s)]
    assert not stored_bad, f"invalid specs were stored: {stored_bad}"


def test_leader_is_healthy_afterwards(cluster: Cli) -> None:
    proc, _ = create(cluster, "after-bad-input")
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: all_ready(cluster), 20, "every node READY")
    assert cluster.json("service", "ls")  # every stored service still encodes
    leader(cluster)
