"""Reading a request against a deadline, however slowly its bytes arrive.

A socket timeout bounds one ``recv``; a client sending a byte every half second never
trips it. :class:`DeadlineReader` sits under the handler's buffered ``rfile`` and gives
each ``recv`` only what is left of the request's time: the request line, headers and body
must all arrive within ``request_timeout`` of the request's first byte. Before that first
byte (a fresh or keep-alive connection waiting for its next request) ``idle_timeout``
applies. After each read the socket's timeout is set back to ``idle_timeout``, which then
bounds each send of the response.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable

from exporter.web.limits import ServerLimits


class DeadlineReader(io.RawIOBase):
    """A raw reader over a connected socket that enforces a per-request deadline."""

    def __init__(
        self,
        sock: socket.socket,
        limits: ServerLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._sock = sock
        self._limits = limits
        self._clock = clock
        self._deadline: float | None = None

    def readable(self) -> bool:
        return True

    def new_request(self) -> None:
        """The next bytes start a new request: its deadline starts with its first byte."""
        self._deadline = None

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._deadline is None:
            wait = self._limits.idle_timeout
        else:
            wait = self._deadline - self._clock()
            if wait <= 0:
                raise TimeoutError("the request did not arrive within its deadline")
        self._sock.settimeout(wait)
        try:
            received = self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._limits.idle_timeout)
        if received and self._deadline is None:
            self._deadline = self._clock() + self._limits.request_timeout
        return received
