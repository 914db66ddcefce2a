"""Bounded GETs from a Locust process: the /generation lookups and the endpoints listing at start.

Why `http.client` and not the streaming transport: these are small JSON answers off the measured path,
where a plain client is enough; Locust's gevent monkey-patching makes it cooperative. One total deadline
(`gevent.Timeout`) covers connect, head and body; the body is read up to a byte cap; redirects are
never followed (http.client does not), so the key in `headers` reaches only the host of `url`, which
callers build from the endpoint's own `base_url`. Failures are `(None, b"")`, never an exception: a
lookup that cannot be made is counted, not raised into a user's greenlet.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import gevent


def bounded_get(url: str, headers: Mapping[str, str], *, total_s: float, max_bytes: int) -> tuple[int | None, bytes]:
    """(HTTP status, body) of GET `url`, or (None, b"") when it failed, timed out or was too large."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, b""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=total_s,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=total_s)
    try:
        with gevent.Timeout(total_s, False):
            conn.request("GET", path, headers={**headers, "Accept": "application/json",
                                               "Accept-Encoding": "identity", "Connection": "close"})
            resp = conn.getresponse()
            body = resp.read(max_bytes + 1)
            if len(body) > max_bytes:
                return None, b""
            return resp.status, body
        return None, b""  # the deadline passed (gevent.Timeout with False returns here)
    except (OSError, http.client.HTTPException, ValueError):
        return None, b""
    finally:
        conn.close()
