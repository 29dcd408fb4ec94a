"""A fresh lab per test (or per module, through a fixture), always removed afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from swarmlab.lab import Lab
from swarmlab.layout import LabExists


def unique_name() -> str:
    return "t" + secrets.token_hex(3)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces)")


@contextmanager
def running_lab(
    managers: int = 3, workers: int = 2, executor: str = "container", name: str | None = None
) -> Iterator[Lab]:
    """Up a lab with a unique name (unless one is given), yield it, and always take it down."""
    require_root()
    lab = Lab(name or unique_name())
    try:
        lab = Lab.up(managers=managers, workers=workers, executor=executor, name=lab.name)
    except LabExists:
        raise  # somebody else's lab: never take it down
    except BaseException:
        lab.down()  # up removes what it made on failure; make sure of it
        raise
    try:
        yield lab
    finally:
        lab.down()
