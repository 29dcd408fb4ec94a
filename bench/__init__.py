"""Benchmarks: numbers and ratios printed, never asserted (`python -m bench [SUITE...]`, see
bench/__main__.py)."""
