"""API keys: read from the environment in one place, checked, registered with the redactor, and sent
only where they are meant to go.

Why here: a key that reaches the wrong server or crosses a network in clear text is lost whatever the
redactor does later. The rules, shared by `measure`, the prober and the load test:

- a key is printable ASCII (it goes into an HTTP header); anything else is a clear error naming the
  variable, never the value (not a `UnicodeEncodeError` from deep inside a transport);
- a key goes over plain http only to a loopback address (`127.0.0.0/8`, `::1`, `::ffff:127.0.0.1`,
  `localhost`) unless the caller opts in explicitly (`--allow-insecure-key`, `allow_insecure_key: true`);
- a well-known provider variable (OPENROUTER_API_KEY) belongs to that provider's host: `measure` sends
  it elsewhere only when the user names the variable (`--api-key-env`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

from tokenpulse.core.redact import register_secret

#: The variable `measure` reads when none is named, and the host it belongs to.
DEFAULT_KEY_ENV = "OPENROUTER_API_KEY"
#: Provider key variables and the hosts (and their subdomains) each belongs to.
KEY_HOSTS: dict[str, tuple[str, ...]] = {"OPENROUTER_API_KEY": ("openrouter.ai",)}


class ApiKeyError(ValueError):
    """A key that cannot or must not be used. The message names the variable, never the value."""


class MissingApiKey(ApiKeyError):
    """The configured environment variable is unset (only raised when a key is required)."""


def read_api_key(env_name: str | None, *, required: bool = False) -> str | None:
    """The key in `env_name` (None when unset or empty), registered with the redactor before anything
    else can see it. ApiKeyError when it is not printable ASCII."""
    if not env_name:
        return None
    key = os.environ.get(env_name) or None
    if key is None:
        if required:
            raise MissingApiKey(f"environment variable {env_name} is not set")
        return None
    register_secret(key)
    bad = next((i for i, c in enumerate(key) if not " " < c < "\x7f"), None)
    if bad is not None:
        raise ApiKeyError(f"environment variable {env_name} holds a key with a character that is not "
                          f"printable ASCII at position {bad + 1} (of {len(key)}); an API key is sent in an "
                          "HTTP header, so it must be ASCII without spaces or control characters")
    return key


class KeyRing:
    """The API keys one process uses, by environment variable name, each read once (`read_api_key`: the
    ASCII check, and registered with the redactor before anything else can see it). The prober and the
    load test both hold one, so a key is read and guarded the same way whichever app sends it.

    `for_endpoint` takes anything with an `api_key_env` (a config `Endpoint`): the core does not import
    the config."""

    def __init__(self, env_names: Iterable[str | None]) -> None:
        self._keys: dict[str, str | None] = {}
        for name in env_names:
            if name and name not in self._keys:
                self._keys[name] = read_api_key(name)

    def get(self, env_name: str | None) -> str | None:
        return self._keys.get(env_name) if env_name else None

    def for_endpoint(self, endpoint: _HasKeyEnv) -> str | None:
        return self.get(endpoint.api_key_env)

    @property
    def missing(self) -> tuple[str, ...]:
        """Variables that were named but not set (their requests go without a key)."""
        return tuple(name for name, key in self._keys.items() if key is None)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(k for k in self._keys.values() if k)


class _HasKeyEnv(Protocol):
    @property
    def api_key_env(self) -> str | None: ...


def url_host(url: str) -> str:
    """The host of an http(s) URL, lower-case, without brackets or port."""
    return (urlsplit(url).hostname or "").lower()


def is_loopback(host: str) -> bool:
    """True for names and addresses that cannot leave the machine: `localhost` (and `*.localhost`),
    127.0.0.0/8, ::1, and IPv4-mapped IPv6 forms of them (`::ffff:127.0.0.1`)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def insecure_key_problem(base_url: str, env_name: str) -> str | None:
    """Why sending the key in `env_name` to `base_url` would expose it in clear text, or None."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "http":
        return None
    host = (parts.hostname or "").lower()
    if is_loopback(host):
        return None
    return (f"plain http to {host}, which is not a loopback address, would send the key in {env_name} "
            "unencrypted over the network; use https")


def belongs_to(env_name: str, base_url: str) -> bool:
    """Whether `env_name` is a provider variable whose own host is `base_url`'s host (or a subdomain).
    Variables not in KEY_HOSTS belong nowhere in particular: only an explicit choice sends them."""
    host = url_host(base_url)
    return any(host == h or host.endswith("." + h) for h in KEY_HOSTS.get(env_name, ()))
