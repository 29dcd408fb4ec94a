"""What a benchmark produces: rows of figures with their raw samples, medians and ratios.

A row holds shoal's samples and, where a peer exists, the peer's samples *from the same run*
(both sides measured one after the other in one `make bench`). The ratio is always
"how many times faster shoal is": peer/shoal for durations (lower is better), shoal/peer for
rates (higher is better). A side that could not be measured keeps its reason in `note`.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    workload: str
    unit: str  # "s", "ms", "tasks/s", "MiB", "Gbit/s"...
    shoal: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    higher_is_better: bool = False
    note: str = ""  # why a figure is missing, or what the peer figure is
    peer_fixed: float | None = None  # a reference figure, not a measurement (SwarmKit's 10 s)
    peer_name: str = "docker swarm"

    @property
    def shoal_median(self) -> float | None:
        return median(self.shoal)

    @property
    def peer_median(self) -> float | None:
        return self.peer_fixed if self.peer_fixed is not None else median(self.peer)

    @property
    def ratio(self) -> float | None:
        """How many times faster (or better) shoal is than the peer; None without both."""
        return speedup(self.shoal_median, self.peer_median, self.higher_is_better)

    @property
    def runs(self) -> int:
        return max(len(self.shoal), len(self.peer))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(shoal_median=self.shoal_median, peer_median=self.peer_median, ratio=self.ratio)
        return d


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def speedup(ours: float | None, theirs: float | None, higher_is_better: bool = False) -> float | None:
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return None
    return ours / theirs if higher_is_better else theirs / ours


def fmt_value(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return f"{s} {unit}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 1:
        return f"{r:.2f}x faster"
    return f"{1 / r:.2f}x slower"


def cells(row: Row) -> list[str]:
    """workload | shoal | peer | ratio | runs, as printed."""
    peer = fmt_value(row.peer_median, row.unit)
    if row.peer_fixed is not None:
        peer += f" ({row.peer_name} default)"
    shoal = fmt_value(row.shoal_median, row.unit)
    if row.shoal_median is None and row.note:
        shoal = row.note
    elif row.peer_median is None and row.note:
        peer = row.note
    return [row.workload, shoal, peer, fmt_ratio(row.ratio), str(row.runs)]
