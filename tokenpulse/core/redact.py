"""Scrubbing secrets out of text before it can reach a log, a report, a metric or an exception.

Why one module that *knows* the secrets: an API key can come back inside a server's error message, a
malformed field's excerpt or an exception's repr, and it can be shortened on the way (a message clipped
to 120 characters keeps `sk-or-v1-CANA`). So every key is registered here once, when it is read from
the environment (tokenpulse.core.keys), and every shortening of a message goes through `clip`, which redacts
*before* it cuts. `redact` matches a key and every prefix of 8 or more of its characters, in plain form
and in the escaped forms a server or a serializer may produce (JSON `\\uXXXX` and `\\/`, doubled
backslashes from a repr of JSON, URL `%XX`), plus anything that looks like a bearer token or an
OpenAI-style `sk-` key, so text from a process that never read the key (the mock) is covered too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

REDACTED = "[REDACTED]"
#: Shorter strings are not treated as secrets: redacting "a" would shred every message.
_MIN_SECRET_LEN = 6
#: A leading fragment of a key this long is redacted too (what survives a cut message).
PREFIX_MIN_LEN = 8

#: Key-shaped text, redacted whether or not it was registered: bearer tokens and `sk-...` keys.
_PATTERNS = (
    (re.compile(r"(?i)(\bbearer\s+)[^\s\"',;\\]{8,}"), r"\1" + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{15,}"), REDACTED),
)

_lock = threading.Lock()
_registered: dict[str, re.Pattern[str]] = {}


def _char_pattern(char: str) -> str:
    """One character of a key, as written plainly (maybe after backslashes), `\\uXXXX`-escaped (any
    number of backslashes, hex of either case) or `%XX`-escaped."""
    code = ord(char)
    alternatives = [r"\\*" + re.escape(char)]
    if code < 0x10000:
        hex4 = "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{code:04x}")
        alternatives.append(r"\\+[uU]" + hex4)
    if code < 0x100:
        hex2 = "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{code:02x}")
        alternatives.append("%" + hex2)
    return "(?:" + "|".join(alternatives) + ")"


def secret_pattern(secret: str) -> re.Pattern[str]:
    """A regex for the secret and each of its prefixes of at least PREFIX_MIN_LEN characters, in every
    escaped form (`c1 c2 ... c8 (c9 (c10 ...)?)?`, greedy, so the longest fragment present is taken)."""
    need = min(len(secret), PREFIX_MIN_LEN)
    parts = [_char_pattern(c) for c in secret]
    tail = ""
    for part in reversed(parts[need:]):
        tail = f"(?:{part}{tail})?"
    return re.compile("".join(parts[:need]) + tail)


def register_secret(secret: str | None) -> None:
    """Make `redact` (and so `clip`, the logging filter, the exception sanitizer) scrub this value from
    now on, in this process. Called where keys are read (tokenpulse.core.keys.read_api_key)."""
    if not secret or len(secret) < _MIN_SECRET_LEN:
        return
    with _lock:
        if secret not in _registered:
            _registered[secret] = secret_pattern(secret)


def registered_secrets() -> tuple[str, ...]:
    return tuple(_registered)


def forget_secrets() -> None:
    """Tests only: start from an empty registry."""
    with _lock:
        _registered.clear()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with every registered secret, every one in `secrets`, their prefixes and escaped
    forms, and key-shaped tokens replaced by a fixed marker."""
    patterns = list(_registered.values())
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_LEN and secret not in _registered:
            patterns.append(secret_pattern(secret))
    for pattern in patterns:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


def clip(text: str, limit: int = 300, secrets: Iterable[str] = ()) -> str:
    """Bound a message's length (error bodies can be whole HTML pages), redacting first: a cut must
    never leave a fragment of a key that the redactor could no longer recognise."""
    text = " ".join(redact(text, secrets).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------ process-wide hooks
_installed = False


def _redacting_record_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters reuse exc_text when it is set, so the traceback is redacted for every handler.
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record
    return factory


def format_exception_redacted(exc: BaseException) -> str:
    return redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def install(env_names: Iterable[str] = ()) -> None:
    """Install the redaction for the whole process, once: every log record (whatever handler writes
    it: stderr, locust.log, Locust's web UI) and every uncaught exception's traceback (main thread and
    threads). Also registers the values of the environment variables named here and of every
    `*_API_KEY` variable, so a command that reads no key (mock, report) still scrubs the usual ones.
    Why a record factory rather than a handler filter: libraries (Locust) add their own handlers after
    we start; the factory is the one point every record passes through, before any handler."""
    global _installed
    for name, value in os.environ.items():
        if name.endswith("_API_KEY") or name in env_names:
            register_secret(value)
    if _installed:
        return
    _installed = True
    logging.setLogRecordFactory(_redacting_record_factory(logging.getLogRecordFactory()))

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread else "?"
        sys.stderr.write(f"Exception in thread {name}:\n" + format_exception_redacted(args.exc_value))

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


class _RedactingStream:
    """A text stream that redacts every write before passing it on; everything else is delegated."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def redacted_stdio() -> Iterator[None]:
    """While a command runs, whatever it prints (a config error quoting a value, a table, a message a
    library writes straight to stderr) is redacted too; the streams are restored afterwards, so an
    in-process caller (a test) gets its own back."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactingStream(saved[0]), _RedactingStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
