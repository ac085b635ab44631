"""How a boxoffice process runs: start a service, serve until SIGTERM or SIGINT, stop it once.

The exporter and the SMS bridge share this, so both stop the same way: the signal only sets an
event; the main thread then stops the service (in-flight requests finish, connections close).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Protocol


class Failure(Exception):
    """What stops a command, said in one line; the command exits with ``exit_code``."""

    exit_code = 1


class Service(Protocol):
    """Something started once and stopped once."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def run_until(
    stop: threading.Event, service: Service, on_started: Callable[[], None] = lambda: None
) -> None:
    """Start ``service``, wait for ``stop``, then stop it, also when starting fails."""
    try:
        service.start()
        on_started()
        stop.wait()
    finally:
        service.stop()


def serve_until_signal(
    service: Service, *, address: str, on_started: Callable[[], None] = lambda: None
) -> None:
    """Run ``service`` until SIGTERM or SIGINT; Failure when ``address`` cannot be bound."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run_until(stop, service, on_started)
    except OSError as exc:  # the listen address is taken or not ours
        raise Failure(f"cannot serve on {address}: {exc.strerror}") from exc
