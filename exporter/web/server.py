"""The exporter's HTTP server: /metrics, /healthz and the landing page, behind basic auth/TLS."""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import bcrypt
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter.web.webconfig import WebConfig, build_ssl_context

log = logging.getLogger("exporter.web")

# Spent on unknown users too, so response time does not tell which user names exist.
_DUMMY_HASH = bcrypt.hashpw(b"boxoffice", bcrypt.gensalt(rounds=10))
_AUTH_CACHE_SIZE = 1024
_CONNECTION_TIMEOUT = 30.0


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split ``[host]:port`` (Prometheus style) into host and port; "" means every interface."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be [host]:port like :9798, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 hosts are written in brackets like [::1]:9798, got {address!r}")
    return host, int(port)


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, caching successes.

    bcrypt costs tens of milliseconds by design; a scrape every 15 s should not pay it each
    time, so a successful (user, password, hash) is remembered by its SHA-256 digest.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        """True when the header carries a known user with the right password."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        hashed = self._users.get(user)
        digest = hashlib.sha256(
            b"\0".join([user.encode(), password.encode(), hashed or b""])
        ).digest()
        with self._lock:
            if hashed is not None and digest in self._ok:
                return True
        valid = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) and hashed is not None
        if valid:
            with self._lock:
                if len(self._ok) >= _AUTH_CACHE_SIZE:
                    self._ok.clear()
                self._ok.add(digest)
        return valid


class ExpositionCache:
    """Encodes the registry once per version and format; scrapes in between reuse the bytes.

    ``version`` must change whenever what the collectors return changes. Without one,
    every scrape encodes afresh.
    """

    def __init__(self, registry: CollectorRegistry, version: Callable[[], Hashable] | None) -> None:
        self._registry = registry
        self._version = version
        self._cache: dict[tuple[str, bool], tuple[Hashable, bytes]] = {}

    def render(self, accept: str, gzipped: bool) -> tuple[bytes, str]:
        """The body for this Accept header (gzip-compressed when asked) and its content type."""
        encoder, content_type = choose_encoder(accept)
        if self._version is None:
            body = encoder(self._registry)
            return (gzip.compress(body) if gzipped else body), content_type
        # Read the version before encoding: the body is then at least as new as its key, and
        # a change during encoding only costs the next scrape one more encoding.
        version = self._version()
        key = (content_type, gzipped)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1], content_type
        body = encoder(self._registry)
        if gzipped:
            body = gzip.compress(body)
        self._cache[key] = (version, body)
        return body, content_type


@dataclass(frozen=True)
class _Site:
    """What the request handler serves: everything it needs, nothing it may change."""

    exposition: ExpositionCache
    telemetry_path: str
    landing_page: Callable[[], str]
    auth: BasicAuth | None
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    tls_context: ssl.SSLContext | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; ours go through logging (and its
        # redaction), and a client hanging up mid-request is not worth more than debug.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address[0], error)
        else:
            log.exception("error serving %s", client_address[0])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the request's own thread, so a client stalling it
        # cannot hold up everyone else's accept.
        request.settimeout(_CONNECTION_TIMEOUT)
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        # The TLS socket took over the connection; the server only closes the plain one.
        with tls:
            super().finish_request(tls, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        # ":port" means every interface, IPv4 included.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class ExporterHTTPServer:
    """Serves the registry; it only encodes what the collectors already hold."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        listen_address: str,
        web_config: WebConfig | None = None,
        landing_page: Callable[[], str] = lambda: "<h1>boxoffice exporter</h1>",
        telemetry_path: str = "/metrics",
        version: Callable[[], Hashable] | None = None,
    ) -> None:
        self._host, self._port = parse_listen_address(listen_address)
        self._web = web_config or WebConfig()
        users = self._web.basic_auth_users
        self._site = _Site(
            exposition=ExpositionCache(registry, version),
            telemetry_path=telemetry_path,
            landing_page=landing_page,
            auth=BasicAuth(users) if users else None,
            headers=dict(self._web.http_server_config.headers),
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the bound server, e.g. ``https://127.0.0.1:43121``."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        scheme = "https" if self._server.tls_context else "http"
        shown = str(host) if host not in ("", "0.0.0.0", "::") else "localhost"  # noqa: S104
        return f"{scheme}://{f'[{shown}]' if ':' in shown else shown}:{port}"

    def start(self) -> None:
        """Bind and serve in a background thread; OSError when the address is unusable."""
        handler = self._handler_class()
        if ":" in self._host:
            server: _Server = _Server6((self._host, self._port), handler)
        elif self._host:
            server = _Server((self._host, self._port), handler)
        else:
            try:
                server = _Server6(("::", self._port), handler)
            except OSError:  # no IPv6 on this host
                server = _Server(("0.0.0.0", self._port), handler)  # noqa: S104
        if self._web.tls_server_config is not None:
            server.tls_context = build_ssl_context(self._web.tls_server_config)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish, close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        site = self._site

        class Handler(_Handler):
            pass

        Handler.site = site
        return Handler


class _Handler(BaseHTTPRequestHandler):
    site: _Site
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm meets the
    # client's delayed ACK and every response waits about 40 ms.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "boxoffice"
    sys_version = ""

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _method_not_allowed(self) -> None:
        self._send(
            405,
            "text/plain; charset=utf-8",
            b"method not allowed\n",
            head=False,
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _respond(self, *, head: bool) -> None:
        site = self.site
        if site.auth is not None and not site.auth.allows(self.headers.get("Authorization")):
            self._send(
                401,
                "text/plain; charset=utf-8",
                b"unauthorized\n",
                head=head,
                extra={"WWW-Authenticate": 'Basic realm="boxoffice"'},
            )
            return
        path = self.path.split("?", 1)[0]
        if path == site.telemetry_path:
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            body, content_type = site.exposition.render(self.headers.get("Accept", ""), gzipped)
            extra = {"Content-Encoding": "gzip"} if gzipped else {}
            self._send(200, content_type, body, head=head, extra=extra)
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"OK\n", head=head)
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", site.landing_page().encode(), head=head)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n", head=head)

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {
            **self.site.headers,
            **(extra or {}),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
