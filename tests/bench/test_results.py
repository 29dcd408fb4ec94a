"""The bench's table arithmetic: medians, ratios, how rows print. No root, no lab."""

from __future__ import annotations

import json

from bench.report import plain_table, write_json
from bench.results import Row, cells, fmt_ratio, speedup


def test_median_and_ratio_of_durations() -> None:
    row = Row("converge", "s", shoal=[1.0, 3.0, 2.0], peer=[4.0, 8.0, 6.0])
    assert row.shoal_median == 2.0
    assert row.peer_median == 6.0
    assert row.ratio == 3.0  # shoal 3x faster
    assert cells(row) == ["converge", "2.00 s", "6.00 s", "3.00x faster", "3"]


def test_rates_are_better_when_higher() -> None:
    assert speedup(5.0, 10.0, higher_is_better=True) == 0.5
    assert fmt_ratio(0.5) == "2.00x slower"


def test_missing_figures_show_the_note() -> None:
    row = Row("update", "s", shoal=[1.0], note="not available (see note)")
    assert row.ratio is None
    assert cells(row)[2:4] == ["not available (see note)", "-"]
    row = Row("overlay", "Gbit/s", peer=[20.0], note="overlay: not available")
    assert cells(row)[1] == "overlay: not available"


def test_fixed_reference_figure() -> None:
    row = Row("failover", "s", shoal=[0.5], peer_fixed=10.0, peer_name="SwarmKit")
    assert row.ratio == 20.0
    assert "SwarmKit" in cells(row)[2]


def test_plain_table_cuts_nothing_and_json_keeps_samples(tmp_path) -> None:  # type: ignore[no-untyped-def]
    long = "x" * 150
    rows = [Row(long, "s", shoal=[1.0, 2.0])]
    assert long in plain_table(rows)
    path = write_json(rows, ["a note"], {"raw": {}}, directory=tmp_path)
    doc = json.loads(path.read_text())
    assert doc["rows"][0]["shoal"] == [1.0, 2.0]
    assert doc["rows"][0]["shoal_median"] == 1.5
    assert doc["notes"] == ["a note"]
