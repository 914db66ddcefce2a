"""Fixtures shared by the mock tests: one fast in-process server per module and an httpx client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mock_helpers import make_farm

from tokenpulse.mock import MockServerThread


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerThread]:
    with MockServerThread(make_farm()) as srv:
        yield srv


@pytest.fixture()
def client(server: MockServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.root_url, timeout=10) as c:
        yield c
