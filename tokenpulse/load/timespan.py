"""Durations on the command line: `90`, `90s`, `5m`, `1h30m`, `1.5h` (seconds as a float).

Locust has its own parser, but importing anything from `locust` monkey-patches the process with gevent;
the CLI process must stay unpatched, so it parses durations itself."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare number is seconds. Raises ValueError with the offending text."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h30m)")
    return total
