"""A small threaded HTTP server on 127.0.0.1, the base of the demo's local APIs.

A server answers through :meth:`LocalHttpServer.answer`. The test suite builds its fakes of
Stripe, Twilio and friends on it (tests/support/fakehttp.py adds scripted faults).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


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


@dataclass(frozen=True, kw_only=True)
class Request:
    """A request the server received."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes = b""


class LocalHttpServer:
    """Serve :meth:`answer` on an ephemeral 127.0.0.1 port from daemon threads."""

    def __init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._serve(self)

            def do_HEAD(self) -> None:
                server._serve(self)

            def do_POST(self) -> None:
                server._serve(self)

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

    def start(self) -> LocalHttpServer:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def answer(self, request: Request) -> Reply:
        """The server's answer; subclasses implement the API."""
        raise NotImplementedError

    def respond(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        """Answer one request on its connection."""
        self.write(handler, self.answer(request))

    @staticmethod
    def write(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        """Send ``reply`` on the connection of ``handler``."""
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(reply.body)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=dict(handler.headers.items()),
            body=handler.rfile.read(length) if length else b"",
        )
        self.respond(handler, request)
