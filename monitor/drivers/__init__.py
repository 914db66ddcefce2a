"""Drivers: thin I/O that sends a chat request, stamps received bytes and feeds the recorder.

`AsyncStreamDriver` (httpx, asyncio) serves the prober and `tokenpulse measure`; `SyncStreamDriver`
over a byte transport serves Locust users under gevent. Neither decides anything about timing or tokens.
"""

from monitor.drivers.request import ChatRequest, MissingApiKey, PreparedRequest, Timeouts, prepare, read_api_key

__all__ = ["ChatRequest", "MissingApiKey", "PreparedRequest", "Timeouts", "prepare", "read_api_key"]
