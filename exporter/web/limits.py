"""What one client may cost the HTTP server: time, connections, threads, bytes.

Shared by the exporter and the SMS bridge (both run :class:`~exporter.web.server.
ExporterHTTPServer`). docs/security.md lists every bound and why it is that size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """Bounds of one server; the defaults are what boxoffice runs with."""

    # Request line, headers and body must all arrive within this many seconds of the
    # request's first byte, however steadily a client trickles them.
    request_timeout: float = 10.0
    # A connection with no request in progress (before the first, or between keep-alive
    # requests), and one send of a response, wait at most this long. Prometheus reuses its
    # connection well within it at any usual scrape interval.
    idle_timeout: float = 30.0
    # Connections served at once, each on its own thread. At the cap a new connection
    # hangs up the one that has waited longest without a complete request; when every
    # slot is busy answering, the new one gets 503 with Retry-After: 1.
    max_connections: int = 64
    # Connections the kernel holds for the accept loop (listen() backlog).
    backlog: int = 128
