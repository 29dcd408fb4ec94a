"""`python -m bench [controlplane] [update] [container]`: prints one `name=value` line per measurement."""

from __future__ import annotations

import sys

from bench import container_start, controlplane

SUITES = {
    "controlplane": controlplane.run,
    "update": controlplane.run_containers,
    "container": container_start.run,
}


def main(argv: list[str]) -> None:
    for suite in argv or list(SUITES):
        if suite not in SUITES:
            raise SystemExit(f"unknown benchmark {suite!r} (one of {', '.join(SUITES)})")
        for name, value in SUITES[suite]().items():
            print(f"{name}={value:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
