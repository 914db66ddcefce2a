"""The locustfile `tokenpulse load` runs (locustfiles/tokenpulse_locust.py re-exports it for plain
`locust -f`). Importing it installs the redaction of everything Locust stores, registers tokenpulse's
Locust listeners once per process and exposes exactly one user class and one shape class, which is what
Locust picks up."""

from __future__ import annotations

from locust import events

from tokenpulse.load import redaction
from tokenpulse.load.session import install
from tokenpulse.load.shapes import TokenpulseShape
from tokenpulse.load.user import TokenpulseUser

# First, so that the sinks are wrapped before any listener of ours can log or fail.
redaction.install(events)
install(events)

__all__ = ["TokenpulseShape", "TokenpulseUser"]
