"""The dispatcher (leader only), after SwarmKit's manager/dispatcher.

- Session: authenticates the node (id + secret in metadata), marks it READY, and streams the
  node object, the manager list and the heartbeat period whenever they change.
- Heartbeat: a node silent for 3 periods is marked DOWN. A new leader gives every node 3
  periods of grace from its start, so a failover does not mark the whole cluster DOWN.
- UpdateTaskStatus: updates are queued and committed in batches (one Raft entry for many
  reports); the RPC answers once its batch is committed, so an acknowledged report is durable.
  Task states only move forward.
- Assignments: the node's whole assignment set, then incremental changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import timedelta

from grpc import aio

from manager.dispatcher import peers
from manager.dispatcher.assignments import assignment_set, changed_for_agent, in_assignment_set
from manager.dispatcher.logbroker import LogBroker
from manager.dispatcher.sessions import Session, Sessions
from manager.membership.servicer import update_node
from manager.store import Event, MemoryStore, ReadView, Tx
from shoal import auth
from shoal.api import Cluster, Node, NodeRole, Task, dispatcher_pb2
from shoal.api.types_pb2 import NodeStatus, TaskStatus
from shoal.errors import NotFound, PermissionDenied, ShoalError, VersionConflict
from shoal.log import get_logger

log = get_logger("dispatcher")
DEFAULT_PERIOD = 5.0
MISSED_HEARTBEATS = 3
STATUS_BATCH_INTERVAL = 0.05
STALL = 0.05  # the expiry loop waking this much later than asked for means the event loop was busy


@dataclass
class _Pending:
    updates: list[tuple[str, str, TaskStatus]]  # (node id, task id, status)
    done: asyncio.Future[None]


class Dispatcher:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._sessions = Sessions()
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._peer_tables = peers.PeerTables()
        self.logs = LogBroker(lambda context, session_id: self._session(context, session_id).node_id)

    # ---- helpers -----------------------------------------------------------------------------
    def heartbeat_period(self) -> float:
        cluster = self._store.view().cluster()
        if cluster is not None and cluster.spec.dispatcher.HasField("heartbeat_period"):
            return cluster.spec.dispatcher.heartbeat_period.ToTimedelta().total_seconds() or DEFAULT_PERIOD
        return DEFAULT_PERIOD

    def _authenticate(self, context: aio.ServicerContext) -> Node:
        node_id, secret = auth.metadata_identity(context.invocation_metadata())
        view = self._store.view()
        cluster = view.cluster()
        if cluster is None or not node_id or not auth.verify_node_secret(cluster.secret, node_id, secret):
            raise PermissionDenied("unknown node identity")
        node = view.get_node(node_id)
        if node is None:
            raise NotFound(f"node {node_id} is not a member of this cluster (removed?)")
        return node

    def _session(self, context: aio.ServicerContext, session_id: str) -> Session:
        node = self._authenticate(context)
        return self._sessions.check(node.id, session_id)

    def _session_message(self, session: Session) -> dispatcher_pb2.SessionMessage:
        view = self._store.view()
        msg = dispatcher_pb2.SessionMessage(session_id=session.session_id)
        node = view.get_node(session.node_id)
        if node is not None:
            msg.node.CopyFrom(node)
        for n in view.nodes():
            if n.role == NodeRole.MANAGER and n.manager_status.addr:
                msg.managers.add(node_id=n.id, addr=n.manager_status.addr, weight=1)
        msg.heartbeat_period.FromTimedelta(timedelta(seconds=self.heartbeat_period()))
        return msg

    # ---- RPCs --------------------------------------------------------------------------------
    async def Session(
        self, request: dispatcher_pb2.SessionRequest, context: aio.ServicerContext
    ) -> AsyncIterator[dispatcher_pb2.SessionMessage]:
        node = self._authenticate(context)
        session = self._sessions.open(node.id)

        def ready(n: Node) -> None:
            n.description.CopyFrom(request.description)
            n.status.state = NodeStatus.READY
            n.status.message = ""

        await update_node(self._store, node.id, ready)
        log.info("session_opened", node_id=node.id, hostname=request.description.hostname)
        watch = self._store.watch()
        with watch:
            last = self._session_message(session)
            yield last
            while not session.closed:
                events: list[Event] = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        events = await watch.get()
                        events += watch.get_nowait_all()
                # The message is made of nodes and the cluster: task traffic (most commits) is not
                # worth a rebuild for every session.
                if not any(isinstance(ev.obj, (Node, Cluster)) for ev in events):
                    continue
                msg = self._session_message(session)
                if msg != last:
                    last = msg
                    yield msg
        log.info("session_closed", node_id=node.id)

    async def Heartbeat(
        self, request: dispatcher_pb2.HeartbeatRequest, context: aio.ServicerContext
    ) -> dispatcher_pb2.HeartbeatResponse:
        session = self._session(context, request.session_id)
        session.last_seen = time.monotonic()
        resp = dispatcher_pb2.HeartbeatResponse()
        resp.period.FromTimedelta(timedelta(seconds=self.heartbeat_period()))
        return resp

    async def UpdateTaskStatus(
        self, request: dispatcher_pb2.UpdateTaskStatusRequest, context: aio.ServicerContext
    ) -> dispatcher_pb2.UpdateTaskStatusResponse:
        session = self._session(context, request.session_id)
        session.last_seen = time.monotonic()
        pending = _Pending(
            [(session.node_id, u.task_id, u.status) for u in request.updates],
            asyncio.get_running_loop().create_future(),
        )
        self._queue.append(pending)
        self._wakeup.set()
        await pending.done
        return dispatcher_pb2.UpdateTaskStatusResponse()

    async def Assignments(
        self, request: dispatcher_pb2.AssignmentsRequest, context: aio.ServicerContext
    ) -> AsyncIterator[dispatcher_pb2.AssignmentsMessage]:
        session = self._session(context, request.session_id)
        node_id = session.node_id
        view, watch = self._store.view_and_watch()
        with watch:
            tasks = assignment_set(view, node_id)
            known = {t.id: peers.networks_of([t]) for t in tasks}
            sent = self._wanted_peers(view, known)
            yield _message(dispatcher_pb2.AssignmentsMessage.COMPLETE, tasks, [], sent.values())
            while not session.closed:
                events: list[Event] = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        events = await watch.get()
                        events += watch.get_nowait_all()
                updates: dict[str, Task] = {}
                removes: set[str] = set()
                for ev in events:
                    if not isinstance(ev.obj, Task):
                        continue
                    task: Task = ev.obj
                    now_in = ev.action.value != "delete" and in_assignment_set(task, node_id)
                    if now_in:
                        was = task.id in known
                        old = ev.old if isinstance(ev.old, Task) else None
                        if not was or old is None or changed_for_agent(old, task):
                            updates[task.id] = task
                        removes.discard(task.id)
                        known[task.id] = peers.networks_of([task])
                    elif task.id in known:
                        del known[task.id]
                        updates.pop(task.id, None)
                        removes.add(task.id)
                peer_updates: list[dispatcher_pb2.NetworkPeers] = []
                peer_removes: list[str] = []
                if self._peer_tables.touches(events):
                    wanted = self._wanted_peers(self._store.view(), known)
                    peer_updates, peer_removes = peers.diff(sent, wanted)
                    sent = wanted
                if updates or removes or peer_updates or peer_removes:
                    yield _message(
                        dispatcher_pb2.AssignmentsMessage.INCREMENTAL,
                        updates.values(),
                        removes,
                        peer_updates,
                        peer_removes,
                    )

    def _wanted_peers(
        self, view: ReadView, known: dict[str, set[str]]
    ) -> dict[str, dispatcher_pb2.NetworkPeers]:
        """The tables of the networks this node's tasks attach to."""
        used = set().union(*known.values()) if known else set()
        if not used:
            return {}
        tables = self._peer_tables.at(view)
        return {net_id: tables[net_id] for net_id in used if net_id in tables}

    # ---- background work ---------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._expire_nodes())
            tg.create_task(self._write_statuses())

    async def _expire_nodes(self) -> None:
        while True:
            period = self.heartbeat_period()
            deadline = time.monotonic() - period * MISSED_HEARTBEATS
            for node in self._store.view().nodes():
                if node.status.state == NodeStatus.READY and self._sessions.last_seen(node.id) < deadline:
                    self._sessions.expire(node.id)
                    try:
                        await update_node(self._store, node.id, _mark_down)
                        log.warning("node_down", node_id=node.id, hostname=node.description.hostname)
                    except ShoalError as e:
                        log.warning("node_down_write_failed", node_id=node.id, error=e.message)
            nap = min(period / 2, 0.5)
            before = time.monotonic()
            await asyncio.sleep(nap)
            overslept = time.monotonic() - before - nap
            if overslept > STALL:
                # Our own event loop was late: heartbeats may sit unread; that is not the nodes'
                # fault. Small delays count too: under a storm of commits they add up.
                if overslept > period / 2:
                    log.warning("dispatcher_stalled", seconds=round(overslept, 2))
                self._sessions.forgive(overslept)

    async def _write_statuses(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(STATUS_BATCH_INTERVAL)  # let more reports join this batch
            batch, self._queue = self._queue, []
            if not batch:
                continue
            error: BaseException | None = None
            for _ in range(10):
                try:
                    await self._store.update(functools.partial(_apply_statuses, batch=batch))
                    error = None
                    break
                except VersionConflict as e:
                    error = e
                except ShoalError as e:
                    error = e
                    break
            for p in batch:
                if p.done.done():
                    continue
                if error is None:
                    p.done.set_result(None)
                else:
                    p.done.set_exception(error)


def _apply_statuses(tx: Tx, *, batch: list[_Pending]) -> None:
    latest: dict[str, tuple[str, TaskStatus]] = {}
    for p in batch:
        for node_id, task_id, status in p.updates:
            prev = latest.get(task_id)
            if prev is None or status.state >= prev[1].state:
                latest[task_id] = (node_id, status)
    for task_id, (node_id, status) in latest.items():
        task = tx.get_task(task_id)
        if task is None or task.node_id != node_id:
            continue  # deleted meanwhile, or not this node's: ignored
        if status.state < task.status.state:
            continue  # states are monotonic
        if status.state == task.status.state and status == task.status:
            continue
        task.status.CopyFrom(status)
        tx.update(task)


def _mark_down(n: Node) -> None:
    n.status.state = NodeStatus.DOWN
    n.status.message = "heartbeat failure"


def _message(
    kind: int,
    updates: Iterable[Task],
    removes: Iterable[str],
    peer_updates: Iterable[dispatcher_pb2.NetworkPeers] = (),
    peer_removes: Iterable[str] = (),
) -> dispatcher_pb2.AssignmentsMessage:
    msg = dispatcher_pb2.AssignmentsMessage(type=kind)  # type: ignore[arg-type]
    for t in updates:
        ch = msg.changes.add(action=dispatcher_pb2.AssignmentChange.UPDATE)
        ch.assignment.task.CopyFrom(t)
    for task_id in removes:
        ch = msg.changes.add(action=dispatcher_pb2.AssignmentChange.REMOVE)
        ch.assignment.task.id = task_id
    for table in peer_updates:
        ch = msg.changes.add(action=dispatcher_pb2.AssignmentChange.UPDATE)
        ch.assignment.peers.CopyFrom(table)
    for net_id in peer_removes:
        ch = msg.changes.add(action=dispatcher_pb2.AssignmentChange.REMOVE)
        ch.assignment.peers.network.id = net_id
    return msg
