"""Loopback servers that misbehave in ways the mock farm does not: a careless provider that echoes the
caller's API key back in its errors (or ends a stream early), and a listener whose accept queue is
full (connect timeouts)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class _EchoHandler(BaseHTTPRequestHandler):
    """Every answer carries the Authorization header it received, the worst a provider could do."""

    protocol_version = "HTTP/1.0"
    server: EchoKeyServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _auth(self) -> str:
        auth = self.headers.get("Authorization", "")
        self.server.seen_auth.append(auth)
        return auth

    def _json(self, status: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # /key and /models/.../endpoints
        auth = self._auth()
        self._json(500, {"error": {"code": 500, "message": f"cannot serve {self.path} for {auth}"}})

    def do_POST(self) -> None:
        auth = self._auth()
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        if body.get("model") == "echo/http":
            self._json(401, {"error": {"code": 401, "message": f"key rejected: {auth}"}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "gen-echo", "choices": [{"index": 0, "delta": {"content": "hello"}}]}
        if body.get("model") == "echo/truncate":  # one token, then a clean close: no [DONE], no finish
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            return
        error = {"id": "gen-echo", "error": {"code": 502, "message": f"upstream choked on {auth}"},
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}
        for obj in (chunk, error):
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()


class EchoKeyServer(ThreadingHTTPServer):
    """`base_url` is OpenRouter-style. Model `echo/http` gets a 401 naming the key; `echo/truncate` one
    token, then the connection closes cleanly; any other model a stream with one token, then a
    mid-stream error naming the key."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.seen_auth: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1"

    def __enter__(self) -> EchoKeyServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()
        self.server_close()


class FullBacklog:
    """A listener that never accepts, with its accept queue filled: Linux then drops new SYNs, so a
    client's connect hangs until its own connect timeout."""

    def __init__(self, fillers: int = 8) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = int(self._listener.getsockname()[1])
        self._fillers: list[socket.socket] = []
        for _ in range(fillers):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self._fillers.append(s)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def __enter__(self) -> FullBacklog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for s in self._fillers:
            s.close()
        self._listener.close()
