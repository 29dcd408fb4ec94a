"""`python -m bench [SUITE...]` (`make bench`): runs the suites (all by default), prints one
table and writes it, with every raw sample, to bench/results/bench-TIMESTAMP.json.

Suites: compare (workloads 1-3 against Docker Swarm), runtime (our runtime vs runc), faults
(leader failover, node failure), scale (50 agents, 5,000 tasks), overlay (vs plain veth).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback

from bench import report
from bench.suites import SUITES, Report, progress
from shoal import log as shoal_log

MAIN_PID = os.getpid()


def _interrupted(signum: int, frame: object) -> None:
    if os.getpid() != MAIN_PID:
        # A forked helper (pyroute2 forks one per netns socket and ends it with SIGTERM): die
        # as it would without our handler, never run on as a second copy of the bench.
        os._exit(128 + signum)
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    suites = argv or list(SUITES)
    for s in suites:
        if s not in SUITES:
            raise SystemExit(f"unknown suite {s!r} (one of {', '.join(SUITES)})")
    signal.signal(signal.SIGTERM, _interrupted)  # so every lab and engine is removed on the way out
    shoal_log.configure("warning")  # the labs' progress lines would drown the table
    rep = Report()
    started = time.monotonic()
    failed = 0
    for s in suites:
        t = time.monotonic()
        try:
            SUITES[s](rep)
        except Exception as e:  # one broken suite must not cost the others' figures
            failed += 1
            traceback.print_exc()
            rep.notes.append(f"suite {s} failed: {type(e).__name__}: {e}")
        progress(f"{s} took {time.monotonic() - t:.0f}s")
    took = time.monotonic() - started
    rep.notes.append(f"total time {took / 60:.1f} min; ratio = how many times faster shoal is than the peer")
    report.print_table(rep.rows, rep.notes)
    path = report.write_json(rep.rows, rep.notes, {"suites": suites, "seconds": took, "raw": rep.raw})
    print(f"results: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
