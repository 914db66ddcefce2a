"""Shared by every test directory: pytest puts this file's directory (tests/) on sys.path, so helper
modules here (paced_server.py) import by name from any test module."""

from __future__ import annotations

import sys

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fail at once, not hang: importing Locust (tokenpulse.load.session, user, locustfile) monkey-patches
    the whole pytest process with gevent, after which a test's mock server thread is a greenlet whose
    event loop blocks every other test (a suite stalled for 15 minutes this way). Locust code runs in
    subprocesses (`tokenpulse load`); its decisions live in modules without Locust (drain.py, ...)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        raise pytest.UsageError("a test module imported Locust (gevent monkey-patched this process); run "
                                "Locust code in a subprocess or test the Locust-free module instead")
