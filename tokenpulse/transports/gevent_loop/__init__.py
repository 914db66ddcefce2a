"""Byte transports for the sync driver. `make_sync_transport(name)` picks one by name.

One remains: the raw-socket reader (rawsocket.py), the only one that meets the wire contract
(tests/core/test_wire_contract.py; docs/load-testing.md says why geventhttpclient and httpx were removed).
"""

from __future__ import annotations

from tokenpulse.transports.gevent_loop.driver import SyncTransport

#: The Locust-path default, chosen by benchmarks/client_lag.py (see docs/benchmarks.md).
DEFAULT_SYNC_TRANSPORT = "raw"
SYNC_TRANSPORTS = ("raw",)


def make_sync_transport(name: str = DEFAULT_SYNC_TRANSPORT) -> SyncTransport:
    if name == "raw":
        from tokenpulse.transports.gevent_loop.rawsocket import RawSocketTransport

        return RawSocketTransport()
    raise ValueError(f"unknown sync transport {name!r}; choose one of {', '.join(SYNC_TRANSPORTS)}")
