"""The server's open connections: a cap, who gives way at it, and a graceful shutdown.

Each connection has its own thread, so the cap on connections is the cap on threads. At
the cap a new connection does not wait behind the others: the connection that has gone
longest without a complete request (an idle keep-alive, a stalled TLS handshake, a client
trickling its headers) is hung up to make room, so a flood of slow or idle clients never
keeps a scrape out. Only when every slot is busy answering a request is the newcomer
refused (503, Retry-After: 1); busy slots free up within the request deadline plus the
time to answer.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    sock: socket.socket  # the socket serving now: the TLS one once wrapped
    busy: bool
    since: float  # accepted, or last answered: how long it has waited for a request


class Connections:
    """Open connections by file descriptor, each waiting for a request or busy answering."""

    def __init__(self, limit: int = 64, *, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._closing = False

    def admit(self, sock: socket.socket) -> int | None:
        """Track a new connection and return its key; None to refuse it (every slot busy,
        or shutting down). At the cap, the longest-waiting idle connection is hung up."""
        victim = None
        with self._lock:
            if self._closing:
                return None
            if len(self._entries) >= self._limit:
                waiting = [(e.since, key) for key, e in self._entries.items() if not e.busy]
                if not waiting:
                    return None
                victim = self._entries.pop(min(waiting)[1]).sock
            key = sock.fileno()
            self._entries[key] = _Entry(sock, busy=False, since=self._clock())
        if victim is not None:
            _hang_up(victim)
        return key

    def wrapped(self, key: int, sock: socket.socket) -> None:
        """The TLS socket has taken over the connection ``key``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.sock = sock

    def busy(self, sock: socket.socket) -> None:
        """A complete request arrived: in flight until its response is sent."""
        with self._lock:
            entry = self._entries.get(sock.fileno())
            if entry is not None:
                entry.busy = True

    def idle(self, sock: socket.socket) -> bool:
        """The response is sent; False when the connection should close rather than wait
        (shutting down, or it was hung up to make room)."""
        with self._lock:
            entry = self._entries.get(sock.fileno())
            if entry is None:
                return False
            entry.busy, entry.since = False, self._clock()
            return not self._closing

    def forget(self, key: int) -> None:
        """The connection ``key`` is done (call before its socket is closed)."""
        with self._lock:
            self._entries.pop(key, None)

    def count(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._entries)

    def close_idle(self) -> None:
        """Refuse new connections and hang up the idle ones; busy ones close when done."""
        with self._lock:
            self._closing = True
            idle = [e.sock for e in self._entries.values() if not e.busy]
        for sock in idle:
            _hang_up(sock)


def _hang_up(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for TLS sockets: it only ends the blocked read in
    # the connection's thread, which then closes cleanly.
    with contextlib.suppress(OSError):  # already gone
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
