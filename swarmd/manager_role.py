"""The manager half of swarmd: a Raft replica, the gRPC servers, and the Manager, as one unit
that can be started at boot or on promotion and stopped on demotion."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from manager.manager import Manager
from manager.membership import bootstrap
from manager.raft import RaftNode
from manager.store import MemoryStore
from shoal import rpc
from shoal.log import get_logger
from swarmd.config import Config
from swarmd.state import NodeState

log = get_logger("swarmd")


def raft_dir(cfg: Config) -> Path:
    return cfg.state_dir / "raft"


class ManagerRole:
    def __init__(self, cfg: Config, state: NodeState) -> None:
        self.cfg = cfg
        self.state = state
        self.ready = asyncio.Event()

    async def run(self, *, init_cluster: bool = False) -> None:
        from manager.controlapi import ControlServicer
        from manager.dispatcher import Dispatcher
        from manager.loops import control_loops

        cfg, state = self.cfg, self.state
        store = MemoryStore()
        loop = asyncio.get_running_loop()
        raft = await asyncio.to_thread(
            RaftNode,
            store,
            self_addr=cfg.raft_addr,
            peers=[p for p in state.raft_peers if p != cfg.raft_addr],
            state_dir=raft_dir(cfg),
            password=state.raft_password,
        )
        mgr = Manager(
            store=store,
            raft=raft,
            node_id=state.node_id,
            node_secret=state.node_secret,
            control_servicer=ControlServicer(store),
            make_dispatcher=lambda s: Dispatcher(s),
            make_loops=control_loops,
        )
        raft._on_state_change = mgr.on_raft_state_change(loop)
        server = rpc.make_server()
        mgr.register(server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        rpc.add_listener(server, cfg.listen_remote_api)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cfg.control_socket)
        cfg.control_socket.parent.mkdir(parents=True, exist_ok=True)
        rpc.add_listener(server, rpc.socket_target(str(cfg.control_socket)))
        await server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "manager_started", node_id=state.node_id, raft_addr=cfg.raft_addr, api=cfg.advertise_remote_api
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(mgr.run())
                tg.create_task(self._persist_members(raft))
                if init_cluster:
                    await self._bootstrap(store, raft)
                self.ready.set()
        finally:
            await server.stop(grace=1.0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(cfg.control_socket)
            await asyncio.to_thread(raft.destroy)
            log.info("manager_stopped", node_id=state.node_id)

    async def _bootstrap(self, store: MemoryStore, raft: RaftNode) -> None:
        async with asyncio.timeout(30):
            while not raft.is_leader():  # noqa: ASYNC110 - pysyncobj offers no awaitable for this
                await asyncio.sleep(0.05)
        await bootstrap(
            store,
            cluster_id=self.state.cluster_id,
            secret=self.state.raft_password,
            node_id=self.state.node_id,
            hostname=self.cfg.hostname,
            api_addr=self.cfg.advertise_remote_api,
            raft_addr=self.cfg.raft_addr,
        )
        log.info("cluster_initialised", cluster_id=self.state.cluster_id)

    async def _persist_members(self, raft: RaftNode) -> None:
        """Keep the Raft membership in node.json: a restarted manager must start with its real
        peers, or it could elect itself alone before replaying the journal's membership changes."""
        while True:
            peers = [m for m in raft.members() if m != self.cfg.raft_addr]
            if peers != self.state.raft_peers:
                self.state.raft_peers = peers
                self.state.save(self.cfg.state_dir)
            await asyncio.sleep(1.0)


def forget_raft(cfg: Config) -> None:
    shutil.rmtree(raft_dir(cfg), ignore_errors=True)
