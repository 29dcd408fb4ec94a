"""Issue 6: a manager cut off the underlay (`swarmlab partition`). The majority keeps accepting
writes; the minority refuses them with UNAVAILABLE within seconds instead of hanging; after
`heal` it catches up. Once as a follower (m3), once as the leader (a stale leader must step
down and fail its pending write, pysyncobj having no leader lease)."""

from __future__ import annotations

import time

import grpc
import pytest

from shoal.api import ServiceSpec, control_pb2
from tests.integration.cli import Cli, wait_for
from tests.integration.faultkit import (
    IMAGE,
    MANAGERS,
    all_ready,
    control_stub,
    create,
    leader,
    rpc_code,
    service_names,
    wait_leader,
)

pytestmark = pytest.mark.lab

# The first write may already be on its way to the leader over the cut link: the follower gives
# it up as soon as Raft says the leader is gone (election timeout, ~1.2 s), not when the kernel
# gives up on the neighbour (~5 s). Once the minority knows it has no leader, it refuses at once.
FIRST_REFUSAL_WITHIN = 4.0
FAST_REFUSAL = 3.0


def _spec(name: str) -> ServiceSpec:
    spec = ServiceSpec()
    spec.annotations.name = name
    spec.task.container.image = IMAGE
    spec.replicated.replicas = 1
    return spec


def _partition_round(cluster: Cli, victim: str) -> None:
    lab = cluster.lab
    role = "leader" if leader(cluster) == victim else "follower"
    majority = [m for m in MANAGERS if m != victim]
    minority = cluster.at(victim)
    tag = f"{victim}{role[0]}"
    acked: set[str] = set()
    tried_minority: list[str] = []

    lab.partition(victim)
    cut_at = time.monotonic()
    try:
        # The minority: every write refused, none hangs, and soon each is refused at once.
        first_refusal = fast_since = 0.0
        for i in range(20):
            name = f"minority-{tag}-{i}"
            tried_minority.append(name)
            proc, took = create(minority, name, timeout=40)
            assert proc.returncode != 0, f"a write through partitioned {victim} succeeded: {name}"
            assert proc.stderr.strip(), "the CLI failed without a message"
            assert took < FIRST_REFUSAL_WITHIN, f"write through {victim} took {took:.1f}s: {proc.stderr}"
            if not first_refusal:
                first_refusal = time.monotonic() - cut_at
            if took < FAST_REFUSAL and i >= 1:
                fast_since = time.monotonic() - cut_at
                message = proc.stderr.strip()
                break
        else:
            raise AssertionError(f"{victim} never refused writes quickly")
        with control_stub(lab, victim) as stub:
            req = control_pb2.CreateServiceRequest(spec=_spec(f"minority-{tag}-rpc"), no_resolve_image=True)
            tried_minority.append(req.spec.annotations.name)
            started = time.monotonic()
            code = rpc_code(stub.CreateService, req, timeout=20)
            rpc_took = time.monotonic() - started
        assert code == grpc.StatusCode.UNAVAILABLE, code
        assert rpc_took < FAST_REFUSAL

        # The majority: a leader among the two, and writes through either of them.
        wait_leader(lab, majority)
        for j in range(4):
            name = f"majority-{tag}-{j}"
            via = cluster.at(majority[j % 2])
            wait_for(lambda via=via, name=name: create(via, name)[0].returncode == 0, 20, f"{name} accepted")
            acked.add(name)
    finally:
        lab.heal(victim)
    healed_at = time.monotonic()

    # Catch-up: the minority's socket serves the majority's writes again ...
    wait_for(lambda: acked <= service_names(minority), 30, f"{victim} to see the majority's writes", 0.1)
    catchup = time.monotonic() - healed_at
    names = service_names(cluster)
    assert acked <= names
    assert not names & set(tried_minority), "a write refused by the minority was applied"
    # ... and its own replica holds the log: with the third manager stopped, a write commits only
    # if the victim accepts it, which Raft allows only when its log matches the leader's.
    lead = wait_leader(lab, list(MANAGERS))
    third = next(m for m in MANAGERS if m not in (victim, lead))
    lab.stop(third)
    try:
        wait_for(lambda: create(minority, f"pair-{tag}")[0].returncode == 0, 30, f"a write needing {victim}")
    finally:
        lab.start(third)
    wait_for(lambda: all_ready(cluster), 40, "every node READY again")
    print(
        f"\npartition victim={victim} role={role} first_refusal_s={first_refusal:.2f} "
        f"fast_refusal_after_s={fast_since:.2f} rpc_refusal_s={rpc_took:.2f} catchup_s={catchup:.2f} "
        f"message={message!r}"
    )
    for name in [*acked, f"pair-{tag}"]:
        cluster.run("service", "rm", name)


def test_partitioned_follower(cluster: Cli) -> None:
    wait_for(lambda: all_ready(cluster), 30, "a whole cluster")
    lead = leader(cluster)
    victim = "m3" if lead != "m3" else "m2"
    _partition_round(cluster, victim)


def test_partitioned_leader(cluster: Cli) -> None:
    wait_for(lambda: all_ready(cluster), 30, "a whole cluster")
    _partition_round(cluster, leader(cluster))
