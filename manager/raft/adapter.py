"""The one module that uses pysyncobj (imported through pysyncobj_fixed). Everything else sees `RaftNode`.

Why this way: pysyncobj runs its own tick thread and pickles its transport and snapshots. We keep
the thread behind this adapter and hand results to asyncio with call_soon_threadsafe; log entries
are our own protobuf bytes (StoreTransaction), snapshots are the store's protobuf snapshot. Latency
settings follow the measurements in DESIGN.md section 8: no append batching (~1 ms commits instead
of ~100 ms) and a long connectionTimeout (idle follower links stay open, so failover takes one
election, not two).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from manager.raft.journal import check_raft_files
from manager.raft.pysyncobj_fixed import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from manager.store import ApplyResult, MemoryStore
from shoal.errors import FailedPrecondition, NoQuorum, NotLeader
from shoal.log import get_logger

log = get_logger("raft")

# A write that is not committed within this time is reported as UNAVAILABLE, not left hanging.
PROPOSE_TIMEOUT = 5.0
# How often a pending write checks that this replica still leads (see _call).
_LEADERSHIP_POLL = 0.05
_LEADER_STATE = 2


class _StoreMachine(SyncObjConsumer):  # type: ignore[misc]
    """The replicated state machine: applies StoreTransaction bytes to the store."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    @replicated  # type: ignore[misc]
    def apply(self, data: bytes) -> ApplyResult:
        return self._store.apply(data)

    def _serialize(self) -> dict[str, bytes]:
        return {"store": self._store.snapshot_bytes()}

    def _deserialize(self, data: dict[str, bytes]) -> None:
        self._store.restore(data["store"])


class RaftNode:
    """A manager's Raft replica of the store."""

    def __init__(
        self,
        store: MemoryStore,
        *,
        self_addr: str,
        peers: list[str],
        state_dir: Path,
        password: str,
        on_state_change: Callable[[bool], None] | None = None,
    ) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        # pysyncobj would crash on a truncated journal, or worse, replay garbage as entries.
        check_raft_files(state_dir / "journal", state_dir / "snapshot")
        self.self_addr = self_addr
        self._store = store
        self._on_state_change = on_state_change
        self._machine = _StoreMachine(store)
        conf = SyncObjConf(
            password=password or None,
            appendEntriesUseBatch=False,
            raftMinTimeout=0.5,
            raftMaxTimeout=1.2,
            appendEntriesPeriod=0.1,
            connectionTimeout=15.0,
            connectionRetryTime=0.5,
            # A leader cut off from the majority steps down instead of serving stale reads.
            leaderFallbackTimeout=2.0,
            dynamicMembershipChange=True,
            journalFile=str(state_dir / "journal"),
            fullDumpFile=str(state_dir / "snapshot"),
            useFork=False,  # forking next to grpcio threads is unsafe
            commandsWaitLeader=False,
            onStateChanged=self._state_changed,
            tcp_keepalive=(5, 2, 3),
        )
        self._sync = SyncObj(self_addr, peers, conf=conf, consumers=[self._machine])
        store.proposer = self

    # ---- state -------------------------------------------------------------------------------
    def _state_changed(self, old: int, new: int) -> None:
        log.info("raft_state_changed", old=old, new=new, term=self._sync.raftCurrentTerm)
        if self._on_state_change is not None and (old == _LEADER_STATE) != (new == _LEADER_STATE):
            self._on_state_change(new == _LEADER_STATE)

    def is_leader(self) -> bool:
        return bool(self._sync._isLeader())

    def leader_addr(self) -> str | None:
        leader = self._sync._getLeader()
        return None if leader is None else str(leader.address)

    def members(self) -> list[str]:
        nodes = [self._sync.selfNode, *self._sync.otherNodes]
        return sorted(str(n.address) for n in nodes)

    def connected(self, addr: str) -> bool:
        for n in self._sync.otherNodes:
            if n.address == addr:
                return bool(self._sync.isNodeConnected(n))
        return addr == self.self_addr

    def has_quorum(self) -> bool:
        return bool(self._sync.hasQuorum)

    def status(self) -> dict[str, Any]:
        return dict(self._sync.getStatus())

    def is_ready(self) -> bool:
        """True once this replica has applied everything the leader had committed at start."""
        return bool(self._sync.isReady())

    # ---- writes ------------------------------------------------------------------------------
    async def propose(self, data: bytes) -> ApplyResult:
        if not self.is_leader():
            raise NotLeader()
        result: ApplyResult = await self._call(
            lambda cb: self._machine.apply(data, callback=cb), while_leader=True
        )
        return result

    async def _call(
        self, start: Callable[[Callable[[Any, int], None]], None], *, while_leader: bool = False
    ) -> Any:
        """Start a pysyncobj call and await its callback. With while_leader, give up as soon as
        this replica stops leading: a leader cut off from the majority steps down after
        leaderFallbackTimeout, but pysyncobj leaves its pending writes waiting, and the client
        should hear UNAVAILABLE then rather than after PROPOSE_TIMEOUT."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, err: int) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if err == FAIL_REASON.SUCCESS:
                    fut.set_result(result)
                elif err in (FAIL_REASON.NOT_LEADER, FAIL_REASON.MISSING_LEADER, FAIL_REASON.LEADER_CHANGED):
                    fut.set_exception(NotLeader(f"raft: leadership lost ({err})"))
                elif err == FAIL_REASON.REQUEST_DENIED:
                    fut.set_exception(FailedPrecondition("raft: request denied"))
                else:
                    fut.set_exception(NoQuorum(f"raft: write failed ({err})"))

            loop.call_soon_threadsafe(settle)

        start(done)
        try:
            async with asyncio.timeout(PROPOSE_TIMEOUT):
                if not while_leader:
                    return await fut
                while True:
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(asyncio.shield(fut), _LEADERSHIP_POLL)
                    if not self.is_leader():
                        fut.cancel()
                        # It may still commit under the next leader: the outcome is unknown.
                        raise NoQuorum("raft: leadership lost before the write was committed (no quorum?)")
        except TimeoutError:
            raise NoQuorum("raft: write not committed in time (no quorum?)") from None

    async def barrier(self) -> None:
        """Commit an empty transaction: once it applies, this leader's store is up to date."""
        await self.propose(b"")

    # ---- membership --------------------------------------------------------------------------
    async def add_member(self, addr: str) -> None:
        if addr in self.members():
            return
        await self._call(lambda cb: self._sync.addNodeToCluster(addr, callback=cb))
        log.info("raft_member_added", addr=addr)

    async def remove_member(self, addr: str) -> None:
        if addr not in self.members():
            return
        if addr == self.self_addr:
            raise FailedPrecondition("the leader cannot remove itself: transfer leadership first")
        await self._call(lambda cb: self._sync.removeNodeFromCluster(addr, callback=cb))
        log.info("raft_member_removed", addr=addr)

    async def transfer_leadership(self, to: str | None = None) -> None:
        await self._call(lambda cb: self._sync.transferLeadership(to, callback=cb))

    def destroy(self) -> None:
        done = threading.Event()

        def stop() -> None:
            self._sync.destroy()
            done.set()

        threading.Thread(target=stop, daemon=True).start()
        done.wait(5.0)
