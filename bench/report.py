"""The table on stdout and the JSON file in bench/results/."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.results import Row, cells

HEADERS = ["workload", "shoal", "docker swarm", "ratio (shoal vs peer)", "runs"]
RESULTS = Path(__file__).resolve().parent / "results"


def plain_table(rows: list[Row]) -> str:
    """Columns padded to their widest cell: nothing is cut, whatever the terminal."""
    table = [HEADERS, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table
    )


def print_table(rows: list[Row], notes: list[str]) -> None:
    if sys.stdout.isatty():
        t = Table(box=None)
        for h in HEADERS:
            t.add_column(h, overflow="fold")
        for r in rows:
            t.add_row(*cells(r))
        Console().print(t)
    else:
        print(plain_table(rows))
    for n in notes:
        print(f"note: {n}")
    sys.stdout.flush()


def write_json(rows: list[Row], notes: list[str], extra: dict[str, Any], directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    doc = {
        "created": time.time(),
        "host": platform.node(),
        "ratio": "how many times faster shoal is (peer/shoal for durations, shoal/peer for rates)",
        "notes": notes,
        "rows": [r.to_json() for r in rows],
        **extra,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
