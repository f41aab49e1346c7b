"""The shared part of the protocol doubles: a real HTTP server on loopback with injectable failures.

A double (``ollama_double``, ``anthropic_double``) is a small real HTTP server that follows a
published API, because the real service cannot run here. This base serves it from a thread on a
free 127.0.0.1 port, records every request, and lets a test queue failures for the next requests:
an HTTP status (429 with ``retry-after``, 500, 529...), a connection reset, or a stall.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Failure:
    """What the next request gets instead of a normal answer."""

    status: int | None = None
    retry_after: float | None = None
    reset: bool = False
    stall_s: float = 0.0
    message: str = ""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Request:
    """One request as a double's route sees it, with helpers to answer it."""

    handler: BaseHTTPRequestHandler
    method: str
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.handler.send_response(status)
        self.handler.send_header("content-type", "application/json")
        self.handler.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)
        self.handler.end_headers()
        self.handler.wfile.write(data)

    def start_stream(self, content_type: str) -> None:
        self.handler.send_response(200)
        self.handler.send_header("content-type", content_type)
        self.handler.send_header("connection", "close")
        self.handler.end_headers()
        self.handler.close_connection = True

    def write(self, text: str) -> None:
        self.handler.wfile.write(text.encode())
        self.handler.wfile.flush()


class HttpDouble:
    """Base of a protocol double. Subclasses implement :meth:`route` and :meth:`error_payload`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.failures: deque[Failure] = deque()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                double._dispatch(self, "GET")

            def do_POST(self) -> None:
                double._dispatch(self, "POST")

            def do_DELETE(self) -> None:
                double._dispatch(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop listening and drop open keep-alive connections, as a dying server would."""
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()

    # -- failure injection -------------------------------------------------------------------

    def fail_next(self, status: int, *, retry_after: float | None = None, times: int = 1, message: str = "") -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (and a ``retry-after`` header if given)."""
        for _ in range(times):
            self.failures.append(Failure(status=status, retry_after=retry_after, message=message))

    def reset_next(self, times: int = 1) -> None:
        """Reset the connection (TCP RST, no response) on the next ``times`` requests."""
        for _ in range(times):
            self.failures.append(Failure(reset=True))

    def stall_next(self, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` requests normally."""
        for _ in range(times):
            self.failures.append(Failure(stall_s=seconds))

    # -- plumbing ----------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self._connections.add(handler.connection)
            self.requests.append(Recorded(method, handler.path, headers, body))
            failure = self.failures.popleft() if self.failures else None
        request = Request(handler, method, handler.path.split("?", 1)[0], body, headers)
        if failure is not None and self._fail(request, failure):
            return
        self.route(request)

    def _fail(self, request: Request, failure: Failure) -> bool:
        if failure.stall_s:
            time.sleep(failure.stall_s)
            return False
        if failure.reset:
            sock = request.handler.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            request.handler.close_connection = True
            return True
        assert failure.status is not None
        headers = {"retry-after": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
        request.json(failure.status, self.error_payload(failure.status, failure.message), headers)
        return True

    def route(self, request: Request) -> None:
        raise NotImplementedError

    def error_payload(self, status: int, message: str) -> Any:
        return {"error": message or f"error {status}"}
