"""Loopback ports for the native stack's services: picking free ones without racing outgoing connections,
and checking that the configured ones can be bound before anything starts."""

from __future__ import annotations

import random
import socket
from collections.abc import Mapping
from pathlib import Path

#: Where `free_port` looks first: below the kernel's ephemeral range, which the kernel draws from for the
#: source port of every outgoing connection and for every bind to port 0.
_LISTEN_PORTS_FROM = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Ports this process has handed out: a service is started some time after its port is picked, and a
#: second pick in between must not return the same port.
_handed_out: set[int] = set()
_pick = random.SystemRandom()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a child process that will listen on it soon after.

    Why not simply bind port 0: the kernel picks that from its ephemeral range, the same range it takes
    the source port of every outgoing connection from, so between our check and the service's own bind
    any connection on the machine can take the port (a `tokenpulse stack up` lost that race while
    tests ran beside it: "address already in use"). A port below the ephemeral range can only be taken
    by another explicit bind. Falls back to port 0 where the range is unknown or leaves no room below."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = _ephemeral_low()
    if low - _LISTEN_PORTS_FROM >= 1000:
        for _ in range(64):
            port = _pick.randrange(_LISTEN_PORTS_FROM, low)
            if port not in _handed_out and port_free(host, port):
                _handed_out.add(port)
                return port
    while True:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; 0 elsewhere, which disables the search)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def port_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def busy_ports(host: str, ports: Mapping[str, int]) -> list[str]:
    """`name port` of every non-zero port that cannot be bound on `host` right now."""
    busy = []
    for name, port in ports.items():
        if not port:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(f"{name} {port}")
    return busy
