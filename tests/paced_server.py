"""A one-request SSE server on a plain thread, for the tests that check receipt stamps while the
client's event loop is busy (the gevent hub under the Locust path, asyncio under the prober): it must
keep sending while the client's loop is blocked, so it is neither gevent nor asyncio."""

from __future__ import annotations

import json
import socket
import threading
import time

SSE_EVENTS = [
    {"id": "gen-9", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"id": "gen-9", "choices": [{"index": 0, "delta": {"content": "Hello"}}]},
    {"id": "gen-9", "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]},
    {"id": "gen-9", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
]


def paced_server(sent_ns: list[int], *, head_with_token: bool = False) -> tuple[socket.socket, int]:
    """Listens on loopback and answers one request: the head and a role-only chunk at once, the first
    token 30 ms later (its send time goes to `sent_ns`), the rest 150 ms after that.
    `head_with_token`: nothing for 30 ms, then the head, the role chunk and the first token in one write
    (as servers that hold the head until the first chunk do). Returns the listener (close it) and port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            head, _, body = buf.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += conn.recv(65536)
            events = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in SSE_EVENTS] + [b"data: [DONE]\n\n"]
            response_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            if head_with_token:
                time.sleep(0.03)
                sent_ns.append(time.monotonic_ns())
                conn.sendall(response_head + events[0] + events[1])
            else:
                conn.sendall(response_head + events[0])
                time.sleep(0.03)
                sent_ns.append(time.monotonic_ns())
                conn.sendall(events[1])
            time.sleep(0.15)
            conn.sendall(b"".join(events[2:]))

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]
