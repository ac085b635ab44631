"""A small threaded HTTP server on 127.0.0.1 with scriptable faults, the base of local APIs.

The demo serves its local Twilio API on it, and the test suite its fakes of Stripe, Twilio
and friends. A server answers through :meth:`FakeServer.answer`; a caller may queue faults
that replace the next answers (a status with a body and headers, a hang). Every wait is
bounded, so a forgotten fault cannot hold a caller or a thread for long.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_HANG = 10.0  # seconds a hanging answer holds its connection at most


@dataclass(frozen=True)
class Reply:
    """An HTTP answer."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def json(status: int, document: Any, **headers: str) -> Reply:
        """A JSON answer."""
        return Reply(
            status, json.dumps(document).encode(), {"Content-Type": "application/json", **headers}
        )


@dataclass(frozen=True)
class Hang:
    """Accept the request and answer nothing for ``seconds`` (bounded by MAX_HANG)."""

    seconds: float = MAX_HANG


@dataclass(frozen=True)
class Request:
    """A request the fake received."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes = b""


Fault = Reply | Hang


class FakeServer:
    """Serve :meth:`answer` on an ephemeral 127.0.0.1 port from daemon threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._release = threading.Event()
        self.requests: list[Request] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._serve(self)

            def do_HEAD(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                return  # no access log on stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeServer:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging answers and stop serving."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def fail_next(self, *faults: Fault) -> None:
        """Replace the next answers, one fault per request, in order."""
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Drop faults not used yet."""
        with self._lock:
            self._faults.clear()

    def faults_left(self) -> int:
        """Faults not used yet."""
        with self._lock:
            return len(self._faults)

    def answer(self, request: Request) -> Reply:
        """The fake's normal answer; subclasses implement the API."""
        raise NotImplementedError

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            handler.command,
            parts.path,
            parse_qsl(parts.query, keep_blank_values=True),
            dict(handler.headers.items()),
            handler.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.requests.append(request)
            fault = self._faults.popleft() if self._faults else None
        if isinstance(fault, Hang):
            self._release.wait(min(fault.seconds, MAX_HANG))
            handler.close_connection = True
            return
        reply = fault if fault is not None else self.answer(request)
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(reply.body)


@contextmanager
def serving(fake: FakeServer) -> Iterator[FakeServer]:
    """Run a fake for the duration of a ``with`` block."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
