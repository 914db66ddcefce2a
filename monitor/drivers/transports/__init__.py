"""Byte transports for the sync driver. `make_sync_transport(name)` picks one by name."""

from __future__ import annotations

from monitor.drivers.sync import SyncTransport

#: The Locust-path default, chosen by benchmarks/client_lag.py (see docs/benchmarks.md).
DEFAULT_SYNC_TRANSPORT = "geventhttpclient"
SYNC_TRANSPORTS = ("geventhttpclient", "httpx", "raw")


def make_sync_transport(name: str = DEFAULT_SYNC_TRANSPORT) -> SyncTransport:
    if name == "geventhttpclient":
        from monitor.drivers.transports.geventhttp import GeventHttpTransport

        return GeventHttpTransport()
    if name == "httpx":
        from monitor.drivers.transports.httpx_sync import HttpxSyncTransport

        return HttpxSyncTransport()
    if name == "raw":
        from monitor.drivers.transports.rawsocket import RawSocketTransport

        return RawSocketTransport()
    raise ValueError(f"unknown sync transport {name!r}; choose one of {', '.join(SYNC_TRANSPORTS)}")
