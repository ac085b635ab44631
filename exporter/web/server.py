"""The exporter's HTTP server: /metrics, /healthz, landing and status pages; basic auth, TLS."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.config.listen import parse_listen_address
from exporter.web.auth import BasicAuth
from exporter.web.connections import Connections
from exporter.web.encoding import ExpositionCache
from exporter.web.handler import Handler, Site
from exporter.web.limits import ServerLimits
from exporter.web.tls import client_san_allowed
from exporter.web.webconfig import WebConfig, build_ssl_context

log = logging.getLogger("exporter.web")

_SHUTDOWN_JOIN = 5.0
# The whole answer to a connection refused at the cap, sent without waiting.
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 17\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many clients\n"
)
_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # socketserver would track non-daemon threads only; see below

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[Handler],
        *,
        tls: ssl.SSLContext | None,
        allowed_sans: tuple[str, ...],
        connections: Connections,
        limits: ServerLimits,
    ) -> None:
        self.tls = tls
        self.allowed_sans = allowed_sans
        self.connections = connections
        self.limits = limits
        self.request_queue_size = limits.backlog  # read by server_activate's listen()
        self._handlers: set[threading.Thread] = set()
        self._handlers_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.connections.admit(request) is None:
            self._refuse(request)
            return
        # Daemon threads, so a stuck client can never keep the process alive, yet tracked,
        # so server_close() can wait for the requests in flight.
        thread = threading.Thread(
            target=self._process,
            args=(request, client_address),
            name="http-conn",
            daemon=True,
        )
        with self._handlers_lock:
            self._handlers.add(thread)
        thread.start()

    def _refuse(self, request: socket.socket) -> None:
        """Every slot is busy answering: say so at once (plain HTTP) and hang up."""
        if self.tls is None:
            request.setblocking(False)
            with contextlib.suppress(OSError):
                request.send(_BUSY)
        self.shutdown_request(request)

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._handlers_lock:
                self._handlers.discard(threading.current_thread())

    def server_close(self) -> None:
        """Close the listening socket, then wait (bounded) for connections to finish."""
        super().server_close()
        # A response stalled on a slow reader ends within one idle timeout.
        deadline = time.monotonic() + self.limits.idle_timeout
        with self._handlers_lock:
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = sum(thread.is_alive() for thread in handlers)
        if stuck:
            log.warning("gave up waiting for %d HTTP connections to finish", stuck)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; ours go through logging (and its
        # redaction), and a client hanging up mid-request is not worth more than debug.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError | ssl.SSLError):
            log.debug("client %s went away: %s", client_address[0], error)
        else:
            log.exception("error serving %s", client_address[0])

    def finish_request(self, request: Any, client_address: Any) -> None:
        key = request.fileno()
        try:
            self._serve(request, client_address, key)
        finally:
            # Before the socket closes: the key is its file descriptor, which the next
            # accepted connection may reuse.
            self.connections.forget(key)

    def _serve(self, request: socket.socket, client_address: Any, key: int) -> None:
        request.settimeout(self.limits.idle_timeout)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs in the connection's own thread, so a client stalling it cannot
        # hold up everyone else's accept; the TLS socket then owns the connection.
        with self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False) as tls:
            try:
                self.connections.wrapped(key, tls)
                if self._handshake(tls, client_address[0]):
                    super().finish_request(tls, client_address)
            finally:
                self.connections.forget(key)

    def _handshake(self, sock: ssl.SSLSocket, client: str) -> bool:
        # One deadline for the whole handshake (the ssl module applies the timeout to
        # do_handshake as a whole), like the request deadline for a request.
        sock.settimeout(self.limits.request_timeout)
        try:
            sock.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client, exc)
            return False
        if self.allowed_sans and not client_san_allowed(sock.getpeercert(), self.allowed_sans):
            log.debug("client certificate of %s has none of client_allowed_sans", client)
            return False
        sock.settimeout(self.limits.idle_timeout)
        return True


class _Server6(_Server):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        if self.server_address[0] == "::":
            # ":port" means every interface, IPv4 included.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


@dataclass(frozen=True)
class _Binding:
    server: _Server
    thread: threading.Thread


class ExporterHTTPServer:
    """Serves the registry; it only encodes what the collectors already hold.

    ``handler`` may be a subclass of :class:`Handler` adding routes (the SMS bridge's
    webhook), so every boxoffice service shares this server's TLS, threading and shutdown.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        listen_address: str,
        web_config: WebConfig | None = None,
        landing_page: Callable[[], str] = lambda: "<h1>boxoffice exporter</h1>",
        telemetry_path: str = "/metrics",
        version: Callable[[], Hashable] | None = None,
        handler: type[Handler] = Handler,
        limits: ServerLimits | None = None,
        status_page: Callable[[], str] | None = None,
    ) -> None:
        self._host, self._port = parse_listen_address(listen_address)
        self._limits = limits or ServerLimits()
        self._web = web_config or WebConfig()
        users = self._web.basic_auth_users
        self._site = Site(
            exposition=ExpositionCache(registry, version),
            telemetry_path=telemetry_path,
            landing_page=landing_page,
            auth=BasicAuth(users) if users else None,
            headers={k: v for k, v in self._web.http_server_config.headers.items() if v},
            status_page=status_page,
        )
        self._handler = handler
        self._binding: _Binding | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL of the bound server, e.g. ``https://127.0.0.1:43121``."""
        if self._url is None:
            raise RuntimeError("server not started")
        return self._url

    def start(self) -> None:
        """Bind and serve in a background thread; OSError when the address is unusable."""
        if self._binding is not None:
            raise RuntimeError("server already started")
        tls_config = self._web.tls_server_config
        # Build TLS before binding, so a bad certificate leaves no socket behind.
        tls = build_ssl_context(tls_config) if tls_config is not None else None
        limits = self._limits
        connections = Connections(limits.max_connections)
        handler = self._handler.serving(self._site, connections, limits)
        sans = tls_config.client_allowed_sans if tls_config else ()

        def bind(server_class: type[_Server], host: str) -> _Server:
            return server_class(
                (host, self._port),
                handler,
                tls=tls,
                allowed_sans=sans,
                connections=connections,
                limits=limits,
            )

        if ":" in self._host:
            server = bind(_Server6, self._host)
        elif self._host:
            server = bind(_Server, self._host)
        else:
            try:
                server = bind(_Server6, "::")
            except OSError as exc:
                if exc.errno not in _NO_IPV6:
                    raise
                server = bind(_Server, "0.0.0.0")  # noqa: S104
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        self._url = _url(server, https=tls is not None)
        self._binding = _Binding(server, thread)

    def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish, close the socket."""
        binding, self._binding = self._binding, None
        if binding is None:
            return
        binding.server.shutdown()
        # Idle keep-alive connections would otherwise hold server_close() for their timeout.
        binding.server.connections.close_idle()
        binding.server.server_close()
        binding.thread.join(_SHUTDOWN_JOIN)


def _url(server: _Server, *, https: bool) -> str:
    host, port = server.server_address[:2]
    shown = str(host) if host not in ("", "0.0.0.0", "::") else "localhost"  # noqa: S104
    return f"{'https' if https else 'http'}://{f'[{shown}]' if ':' in shown else shown}:{port}"
