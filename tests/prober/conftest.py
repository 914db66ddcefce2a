"""Fixtures for the prober tests (helpers live in prober_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prober_support import farm_data, make_farm

from tokenpulse.mock import MockServerThread


@pytest.fixture(scope="module")
def farm_server() -> Iterator[MockServerThread]:
    with MockServerThread(make_farm(farm_data())) as server:
        yield server
