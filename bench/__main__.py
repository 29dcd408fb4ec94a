"""`python -m bench [controlplane]`: prints one `name=value` line per measurement."""

from __future__ import annotations

import sys

from bench import controlplane


def main(argv: list[str]) -> None:
    wanted = set(argv) or {"controlplane"}
    if "controlplane" in wanted:
        for name, value in controlplane.run().items():
            print(f"{name}={value:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
