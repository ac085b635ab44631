"""The test fakes' HTTP server: the demo's local server (exporter.demo.httpserver) with every
request recorded and faults a test queues to replace the next answers (a status with a body
and headers, a hang). Every wait is bounded, so a forgotten fault cannot hold a caller or a
thread for long."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

from exporter.demo.httpserver import LocalHttpServer, Reply, Request

__all__ = ["MALFORMED", "MAX_HANG", "FakeServer", "Fault", "Hang", "Reply", "Request", "serving"]

MAX_HANG = 10.0  # seconds a hanging answer holds its connection at most

MALFORMED = Reply(200, b'{"object": "list", "data": [', {"Content-Type": "application/json"})


@dataclass(frozen=True)
class Hang:
    """Accept the request and answer nothing for ``seconds`` (bounded by MAX_HANG)."""

    seconds: float = MAX_HANG


Fault = Reply | Hang


class FakeServer(LocalHttpServer):
    """A local server that records its requests and answers with queued faults first.

    Cooperative: a fake of a product server lists this class first among its bases
    (``class FakeTwilio(FakeServer, LocalTwilioServer)``), and its arguments pass through.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._release = threading.Event()
        self.requests: list[Request] = []

    def stop(self) -> None:
        """Release hanging answers and stop serving."""
        self._release.set()
        super().stop()

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

    def respond(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
            fault = self._faults.popleft() if self._faults else None
        if isinstance(fault, Hang):
            self._release.wait(min(fault.seconds, MAX_HANG))
            handler.close_connection = True
            return
        if fault is not None:
            self.write(handler, fault)
            return
        super().respond(handler, request)


F = TypeVar("F", bound=LocalHttpServer)


@contextmanager
def serving(fake: F) -> Iterator[F]:
    """Run a fake for the duration of a ``with`` block."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
