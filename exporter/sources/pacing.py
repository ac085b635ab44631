"""Time and rate limits shared by the API sources: a cycle budget, a 429 gate, one error type.

Every HTTP request an API source makes goes through a :class:`BudgetedSession`, so no
request outlives the cycle's timeout whatever its own timeout says, and a source that
hangs cannot hold a thread for longer than its budget.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import requests
from prometheus_client.core import Metric

from exporter.sources.base import Collection, Failure

T = TypeVar("T")


class SourceError(Exception):
    """A collection cycle failed; ``reason``: see catalog.REASONS; the text holds no secret."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.status = status


class BudgetedSession(requests.Session):
    """A requests session whose every request ends by the current cycle's deadline.

    The source sets ``deadline`` (a monotonic time) at the start of a cycle; the timeout a
    caller asks for is shortened to what is left of the budget. The SDKs take the session
    through their constructors, so this covers their requests too.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._monotonic = monotonic
        self.deadline: float | None = None

    def begin(self, budget: float) -> None:
        """Start a cycle: every request from now on ends within ``budget`` seconds."""
        self.deadline = self._monotonic() + budget

    def remaining(self) -> float:
        """Seconds left in the cycle (infinite outside a cycle)."""
        if self.deadline is None:
            return math.inf
        return self.deadline - self._monotonic()

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send the request with its timeout cut to the time left in the cycle."""
        left = self.remaining()
        if left <= 0:
            raise requests.Timeout("the collection cycle ran out of time")
        kwargs["timeout"] = _clamp(kwargs.get("timeout"), left)
        return super().request(method, url, *args, **kwargs)


def _clamp(timeout: Any, left: float) -> float | tuple[float, float]:
    if isinstance(timeout, tuple):
        connect, read = timeout
        return (min(float(connect), left), min(float(read), left))
    if timeout is None:
        return left
    return min(float(timeout), left)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class RateGate:
    """Remembers until when an API asked us to stay away after a 429.

    While closed the source does not call the API at all: its cycles fail fast with
    reason ``rate_limited`` instead of adding to the pressure that caused the 429.
    The wait is bounded so that a broken header cannot silence a source for hours.
    """

    def __init__(self, *, max_wait: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._max_wait = max_wait
        self._monotonic = monotonic
        self._until: float | None = None

    def close_for(self, seconds: float) -> float:
        """Stay away for ``seconds`` (bounded by ``max_wait``); returns the wait applied."""
        wait = min(max(0.0, seconds), self._max_wait)
        self._until = self._monotonic() + wait
        return wait

    def wait_left(self) -> float:
        """Seconds until the API may be called again (0 when it may be called now)."""
        if self._until is None:
            return 0.0
        left = self._until - self._monotonic()
        if left <= 0:
            self._until = None
            return 0.0
        return left


def call_with_retry_after(
    call: Callable[[], T],
    *,
    session: BudgetedSession,
    sleep: Callable[[float], None],
    attempts: int = 3,
) -> T:
    """Run ``call``; on a rate-limit error wait as asked when that fits the cycle, then retry.

    A wait that does not fit in what is left of the cycle's budget is not attempted: the
    error goes to the caller, which closes its :class:`RateGate` for the asked time.
    """
    for attempt in range(attempts):
        try:
            return call()
        except SourceError as exc:
            wait = exc.retry_after
            last = attempt == attempts - 1
            if exc.reason != "rate_limited" or wait is None or last:
                raise
            if wait >= session.remaining() - 0.05:
                raise
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def paced_cycle(
    api: str,
    gate: RateGate,
    session: BudgetedSession,
    timeout: float,
    cycle: Callable[[], Iterable[Metric]],
) -> Collection:
    """Run one API cycle within its time budget, unless a 429 closed the gate.

    Every request of the cycle shares ``timeout`` (the session's deadline); a 429 whose
    Retry-After did not fit in the cycle keeps the API closed until it has passed.
    """
    wait = gate.wait_left()
    if wait > 0:
        message = f"{api} answered 429; not calling it for another {wait:.1f}s"
        return Collection(failures=(Failure("rate_limited", message),))
    session.begin(timeout)
    try:
        families = tuple(cycle())
    except SourceError as exc:
        if exc.reason == "rate_limited" and exc.retry_after is not None:
            gate.close_for(exc.retry_after)
        return Collection(failures=(Failure(exc.reason, exc.message),))
    finally:
        session.deadline = None
    return Collection(families)
