"""Two fake hosts (namespaces on an underlay of their own) with a NetworkManager each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agent.network.fakehosts import Lab, make_lab


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    lab = make_lab(tmp_path, ["h1", "h2"])
    try:
        yield lab
    finally:
        await lab.close()
