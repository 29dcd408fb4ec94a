"""Acceptance tests on the lab: real swarmd processes, each in its own network namespace on an
isolated underlay, driven through the swarmctl CLI exactly as an operator would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from swarmlab.testing import running_lab
from tests.integration.cli import Cli


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cli]:
    """3 managers + 2 workers with the test executor, shared by the tests of one module."""
    with running_lab(managers=3, workers=2, executor="test") as lab:
        yield Cli(lab)
