"""One HTTP connection of the exporter: routing, basic auth, framing, a deadline per request."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

from exporter.web.auth import BasicAuth
from exporter.web.connections import Connections
from exporter.web.deadline import DeadlineReader
from exporter.web.encoding import ExpositionCache, accepts_gzip
from exporter.web.framing import framing_problem
from exporter.web.limits import ServerLimits

log = logging.getLogger("exporter.web")

_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, kw_only=True)
class Site:
    """What the request handler serves: everything it needs, nothing it may change."""

    exposition: ExpositionCache
    telemetry_path: str
    landing_page: Callable[[], str]
    auth: BasicAuth | None
    headers: dict[str, str]
    status_page: Callable[[], str] | None = None


# The status page loads nothing but itself: no script, no outside style, font or image.
# Headers the web config sets win over these.
STATUS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class Handler(BaseHTTPRequestHandler):
    """One connection: telemetry path, /healthz, the landing and status pages; auth on all."""

    site: Site
    connections: Connections
    limits: ServerLimits
    _reader: DeadlineReader
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm meets the
    # client's delayed ACK and every response waits about 40 ms.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "boxoffice"
    sys_version = ""

    @classmethod
    def serving(
        cls, site: Site, connections: Connections, limits: ServerLimits | None = None
    ) -> type[Handler]:
        """A handler class bound to one server's site, connection table and limits."""
        attributes = {"site": site, "connections": connections, "limits": limits or ServerLimits()}
        return cast("type[Handler]", type("BoundHandler", (cls,), attributes))

    def setup(self) -> None:
        super().setup()
        # Every read of the request goes through the deadline; the plain makefile reader
        # is closed so that it does not keep the socket open after the handler closes it.
        plain, self._reader = self.rfile, DeadlineReader(self.connection, self.limits)
        self.rfile = io.BufferedReader(self._reader)
        plain.close()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        problem = framing_problem(self.headers, self.request_version)
        if problem is not None:
            self._refuse_framing(problem)
            return False
        # A complete request head: from now on the connection is busy, never hung up to
        # make room for another (see Connections).
        self.connections.busy(self.request)
        return True

    def _refuse_framing(self, problem: str) -> None:
        """400 and close: a body that cannot be delimited makes the rest of the stream noise."""
        self.close_connection = True
        self._send(400, _TEXT, f"bad request: {problem}\n".encode(), head=False, close=True)

    def handle_one_request(self) -> None:
        self._reader.new_request()
        super().handle_one_request()
        if not self.connections.idle(self.request):
            self.close_connection = True

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server answers a method without a do_* handler with 501; every method but
        # GET and HEAD is one this server understands and refuses.
        if name.startswith("do_"):
            return self._refuse_method
        raise AttributeError(name)

    def _refuse_method(self) -> None:
        if self._authorized(head=False):
            self._send(
                405, _TEXT, b"method not allowed\n", head=False, extra={"Allow": "GET, HEAD"}
            )

    def _authorized(self, *, head: bool) -> bool:
        auth = self.site.auth
        if auth is None or auth.allows(self.headers.get("Authorization")):
            return True
        extra = {"WWW-Authenticate": 'Basic realm="boxoffice", charset="UTF-8"'}
        self._send(401, _TEXT, b"unauthorized\n", head=head, extra=extra)
        return False

    def _respond(self, *, head: bool) -> None:
        if not self._authorized(head=head):
            return
        path = self.path.split("?", 1)[0]
        try:
            status, content_type, body, extra = self._route(path)
        except Exception:
            log.exception("error answering %s %s", self.command, path)
            status, content_type, body, extra = 500, _TEXT, b"internal server error\n", {}
        self._send(status, content_type, body, head=head, extra=extra)

    def _route(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        site = self.site
        if path == site.telemetry_path:
            gzipped = accepts_gzip(self.headers.get("Accept-Encoding", ""))
            body, content_type = site.exposition.render(self.headers.get("Accept", ""), gzipped)
            extra = {"Vary": "Accept, Accept-Encoding"}
            if gzipped:
                extra["Content-Encoding"] = "gzip"
            return 200, content_type, body, extra
        if path == "/healthz":
            return 200, _TEXT, b"OK\n", {}
        if path == "/":
            return 200, "text/html; charset=utf-8", site.landing_page().encode(), {}
        if path == "/status" and site.status_page is not None:
            configured = {name.lower() for name in site.headers}
            extra = {k: v for k, v in STATUS_HEADERS.items() if k.lower() not in configured}
            return 200, "text/html; charset=utf-8", site.status_page().encode(), extra
        return 404, _TEXT, b"not found\n", {}

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**self.site.headers, **(extra or {})}.items():
            self.send_header(name, value)
        if close or self._has_unread_body():
            # The body was never read; what follows it on this connection is not a request.
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _has_unread_body(self) -> bool:
        length = self.headers.get("Content-Length", "0").strip()
        return length != "0" or "Transfer-Encoding" in self.headers

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only: headers, credentials included, are never logged.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)
