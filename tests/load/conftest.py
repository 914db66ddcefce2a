"""Fixtures for the Locust runs: the mock farm in its own process.

Every run is a real `tokenpulse load` (Locust in a subprocess) against the mock on loopback; assertions
compare figures with each other or with the farm's configuration, never with wall-clock limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tokenpulse.mock import MockServerProcess


@pytest.fixture(scope="session")
def mock() -> Iterator[MockServerProcess]:
    """The default farm in a child process: the mock has its own core, apart from Locust's."""
    with MockServerProcess() as srv:
        yield srv
