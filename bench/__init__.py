"""Benchmarks: numbers and ratios printed, never asserted (see `python -m bench --help`)."""
