"""The prober's history store: one SQLite file (stdlib `sqlite3`) in `probe.state_dir`.

Why SQLite: the status page's history bars, uptimes and incidents should survive a restart, and a
real embedded database gives atomic commits (a crash mid-write leaves the previous state, never a
torn file) without a server. Why this shape: one row per target holding its whole bounded history
(`TargetHistory.to_dict`: fixed-size bucket rings, the last 60 successes, 10 failure kinds and 50
state changes) as JSON, so a save is one `INSERT OR REPLACE` per changed target and a restart one
`SELECT`.

Cost: nothing touches the database per probe. The service saves every `FLUSH_INTERVAL_S` seconds the
histories that changed since the last save (serialised on the event loop with orjson, tens of µs
each, yielding to the loop every `FLUSH_CHUNK` targets), and the write itself, one transaction, runs in
a worker thread, so a slow disk never stalls the loop.

Bound: one row per target currently tracked plus rows of targets not seen for less than
`STALE_ROW_S` (a target removed from the config keeps its row for a week, then it is deleted at the
next start); a row is at most ~12 KB (measured ~4-9 KB with full rings), so 1,000 targets stay
under ~12 MB. Retired providers' rows are deleted at once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

FILE_NAME = "history.sqlite3"
FLUSH_INTERVAL_S = 5.0
#: Histories serialised between two yields to the event loop during a save.
FLUSH_CHUNK = 50
#: Rows of targets that were not saved for this long are deleted when the store opens.
STALE_ROW_S = 7 * 86_400.0
#: A row larger than this is not saved (a bug would otherwise grow the file without bound).
MAX_ROW_BYTES = 64 * 1024
_SCHEMA = ("CREATE TABLE IF NOT EXISTS history (target TEXT PRIMARY KEY, saved_at REAL NOT NULL, "
           "doc TEXT NOT NULL)")


class HistoryStore:
    """Loads every saved history at open; `save` writes a batch in one transaction (thread-safe)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / FILE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.execute("DELETE FROM history WHERE saved_at < ?", (time.time() - STALE_ROW_S,))

    def load(self) -> dict[str, dict[str, Any]]:
        """Every saved history by target key (rows that are not valid JSON objects are skipped)."""
        with self._lock:
            rows = self._db.execute("SELECT target, doc FROM history").fetchall()
        out: dict[str, dict[str, Any]] = {}
        for target, doc in rows:
            try:
                value = json.loads(doc)
            except ValueError:
                log.warning("history store: unreadable row for %s skipped", target)
                continue
            if isinstance(value, dict):
                out[target] = value
        return out

    def save(self, rows: Mapping[str, str], deleted: Iterable[str] = ()) -> int:
        """Write `rows` (target -> JSON text) and delete `deleted` in one transaction; returns rows written."""
        now = time.time()
        batch = [(key, now, doc) for key, doc in rows.items() if len(doc) <= MAX_ROW_BYTES]
        if len(batch) < len(rows):
            log.warning("history store: %d oversized row(s) not saved", len(rows) - len(batch))
        gone = [(key,) for key in deleted]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO history (target, saved_at, doc) VALUES (?, ?, ?)",
                                     batch)
                self._db.executemany("DELETE FROM history WHERE target = ?", gone)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(batch)

    def size_bytes(self) -> int:
        with self._lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def encode(doc: Mapping[str, Any]) -> str:
    """Compact JSON of a history document; orjson (a dependency, for the recorder) is ~8x faster than
    the stdlib on these float-heavy documents, which matters because encoding runs on the event loop."""
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # a value orjson does not take: the stdlib says what it is
        return json.dumps(doc, separators=(",", ":"), allow_nan=False)
