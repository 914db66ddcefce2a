"""An Alertmanager webhook receiver for the native stack and the tests: every notification kept, counted
and optionally echoed, so that a test can count pages and a user can see them without a chat tool."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from tokenpulse.ops.stack.ports import url_host


@dataclass
class Notification:
    path: str
    received_at: float
    payload: dict[str, Any]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.payload.get("alerts", []))


class WebhookSink:
    """A minimal Alertmanager webhook receiver: keeps every notification in memory, optionally prints one
    line per alert and appends the JSON to a file. GET / returns what it received, as JSON."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, echo: TextIO | None = None,
                 log_path: Path | None = None, keep: int = 1000) -> None:
        self.notifications: list[Notification] = []
        self._cond = threading.Condition()
        self._echo = echo
        self._log_path = log_path
        self._keep = keep
        sink = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "tokenpulse-sink"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body or b"{}")
                    if not isinstance(payload, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    self.send_error(400, f"invalid JSON: {exc}")
                    return
                sink._record(Notification(self.path, time.time(), payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                with sink._cond:
                    data = [{"path": n.path, "received_at": n.received_at, "payload": n.payload}
                            for n in sink.notifications]
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's naming)
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{url_host(str(self._server.server_address[0]))}:{self.port}"

    def start(self) -> WebhookSink:
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _record(self, note: Notification) -> None:
        with self._cond:
            self.notifications.append(note)
            del self.notifications[:-self._keep]
            self._cond.notify_all()
        if self._log_path is not None:
            with self._log_path.open("a", encoding="utf-8") as fh:
                entry = {"path": note.path, "received_at": note.received_at, "payload": note.payload}
                fh.write(json.dumps(entry) + "\n")
        if self._echo is not None:
            for alert in note.alerts():
                labels = alert.get("labels", {})
                target = " ".join(f"{k}={labels[k]}" for k in ("endpoint", "model", "provider") if k in labels)
                summary = alert.get("annotations", {}).get("summary", "")
                print(f"alert {note.path} {str(alert.get('status', '?')).upper():8} {labels.get('alertname', '?')} "
                      f"{target} {summary}".rstrip(), file=self._echo, flush=True)

    def wait_for(self, predicate: Callable[[Notification, dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The first alert (of any notification so far or to come) for which predicate(note, alert) holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for note in self.notifications:
                    for alert in note.alerts():
                        if predicate(note, alert):
                            return alert
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching alert within {timeout:.0f} s "
                                       f"({len(self.notifications)} notifications received)")
                self._cond.wait(remaining)
