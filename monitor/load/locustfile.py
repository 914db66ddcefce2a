"""The locustfile `tokenpulse load` runs (locustfiles/tokenpulse_locust.py re-exports it for plain
`locust -f`). Importing it registers tokenpulse's Locust listeners once per process and exposes exactly
one user class and one shape class, which is what Locust picks up."""

from __future__ import annotations

from locust import events

from monitor.load.session import install
from monitor.load.shapes import TokenpulseShape
from monitor.load.user import TokenpulseUser

install(events)

__all__ = ["TokenpulseShape", "TokenpulseUser"]
