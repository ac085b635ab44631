"""exporter.lifecycle: a service runs until SIGTERM or SIGINT and is stopped exactly once."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterator

import pytest

from exporter.lifecycle import Failure, serve_until_signal


class Recorder:
    """A service that notes what happened to it; ``on_start`` runs inside start()."""

    def __init__(self, on_start: BaseException | int | None = None) -> None:
        self.events: list[str] = []
        self._on_start = on_start

    def start(self) -> None:
        self.events.append("start")
        if isinstance(self._on_start, BaseException):
            raise self._on_start
        if isinstance(self._on_start, int):
            os.kill(os.getpid(), self._on_start)

    def stop(self) -> None:
        self.events.append("stop")


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    """serve_until_signal installs handlers: give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_service_once(signum: int) -> None:
    service = Recorder(on_start=signum)
    started: list[bool] = []
    serve_until_signal(service, address=":9798", on_started=lambda: started.append(True))
    assert service.events == ["start", "stop"]
    assert started == [True]


def test_an_address_that_cannot_be_bound_is_one_line() -> None:
    taken = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    service = Recorder(on_start=taken)
    with pytest.raises(Failure) as raised:
        serve_until_signal(service, address="127.0.0.1:9798")
    assert str(raised.value) == f"cannot serve on 127.0.0.1:9798: {os.strerror(errno.EADDRINUSE)}"
    assert raised.value.exit_code == 1
    assert service.events == ["start", "stop"]  # what did start is undone


def test_other_errors_pass_through_after_stopping() -> None:
    service = Recorder(on_start=RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        serve_until_signal(service, address=":9798")
    assert service.events == ["start", "stop"]
