"""`python -m bench.agents --join ADDR --token T --count N --prefix P --state-dir DIR`: N worker
swarmds (test executor) in this one process and event loop, until SIGTERM. The scale workload
runs a few of these inside a lab host's network namespace: 50 agents for the price of a few
interpreters."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from shoal import log as shoal_log
from swarmd.config import Config
from swarmd.daemon import Daemon

STAGGER = 0.2  # between joins: nodes of a real cluster do not all join in the same instant


async def _main(join: str, token: str, count: int, prefix: str, state_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with asyncio.TaskGroup() as tg:
        for i in range(count):
            name = f"{prefix}{i}"
            cfg = Config(
                state_dir=state_dir / name,
                hostname=name,
                listen_remote_api="127.0.0.1:1",  # workers serve no API
                advertise_remote_api="127.0.0.1:1",
                control_socket=state_dir / f"{name}.sock",
                join_addr=join,
                join_token=token,
                executor="test",
            )
            tg.create_task(Daemon(cfg).run(stop))
            await asyncio.sleep(STAGGER)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--join", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    a = p.parse_args()
    shoal_log.configure("warning")
    asyncio.run(_main(a.join, a.token, a.count, a.prefix, a.state_dir))


if __name__ == "__main__":
    main()
