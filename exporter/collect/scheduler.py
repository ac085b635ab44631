"""Runs each source in its own background thread and keeps its latest complete snapshot."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from exporter.sources.base import Collection, Failure, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What one source has published: the last cycle's families and its running health."""

    source: str
    interval: float
    timeout: float
    families: tuple[Metric, ...] = ()
    up: bool = False
    cycles: int = 0
    last_success: float | None = None  # Unix time
    last_duration: float | None = None
    last_error: str | None = None
    finished_monotonic: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    cut: Counter[tuple[str, str]] = field(default_factory=Counter)
    leader: bool | None = None  # a leased source: whether this replica polls it

    def fresh(self, now_monotonic: float) -> bool:
        """False when the source has not finished a cycle for much longer than it should.

        A cycle that hangs (a half-open connection, say) must not leave the last values
        looking current, so past two intervals plus the timeout they are withdrawn.
        """
        if self.finished_monotonic is None:
            return False
        return now_monotonic - self.finished_monotonic <= 2 * self.interval + self.timeout


def next_snapshot(
    previous: Snapshot, result: Collection, *, now: float, mono: float, duration: float
) -> Snapshot:
    """Fold one cycle's result into the snapshot (pure, so the rules are tested as a table)."""
    errors = Counter(previous.errors)
    errors.update(f.reason for f in result.failures)
    dropped = Counter(previous.dropped)
    dropped.update(result.dropped)
    cut = Counter(previous.cut)
    cut.update(result.cut)
    return Snapshot(
        source=previous.source,
        interval=previous.interval,
        timeout=previous.timeout,
        families=result.families,
        up=result.collected,
        cycles=previous.cycles + 1,
        last_success=now if result.collected else previous.last_success,
        last_duration=duration,
        last_error=None if result.ok else "; ".join(f.message for f in result.failures),
        finished_monotonic=mono,
        errors=errors,
        dropped=dropped,
        cut=cut,
        leader=result.leader,
    )


class SourceRunner:
    """Collects one source on its interval in a daemon thread; readers never wait on it."""

    def __init__(
        self,
        source: Source,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.source = source
        self._redact = redact
        self._clock = clock
        self._monotonic = monotonic
        self._snapshot = Snapshot(
            source=source.name, interval=source.interval, timeout=source.timeout
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> Snapshot:
        """The latest complete snapshot (an immutable object, swapped whole)."""
        with self._lock:
            return self._snapshot

    def run_once(self) -> Snapshot:
        """Run one collection cycle now and publish its result."""
        started = self._monotonic()
        try:
            result = self.source.collect()
        except Exception as exc:  # a bug must not kill the thread or the exporter
            log.exception("source %s crashed during collection", self.source.name)
            result = Collection(failures=(Failure("internal", f"{type(exc).__name__}: {exc}"),))
        finished = self._monotonic()
        # Failure texts reach the landing page and the log: scrub secrets once, here.
        result = Collection(
            result.families,
            tuple(
                Failure(f.reason, self._redact(f.message), self._redact(f.cause))
                for f in result.failures
            ),
            result.dropped,
            result.cut,
            result.leader,
        )
        for failure in result.failures:
            log.warning("source %s: %s: %s", self.source.name, failure.reason, failure.message)
        with self._lock:
            self._snapshot = next_snapshot(
                self._snapshot,
                result,
                now=self._clock(),
                mono=finished,
                duration=finished - started,
            )
            return self._snapshot

    def start(self) -> None:
        """Start collecting in the background, first cycle at once."""
        self._thread = threading.Thread(
            target=self._loop, name=f"source-{self.source.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to stop and wait a bounded time for the current cycle."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = self._monotonic()
            self.run_once()
            elapsed = self._monotonic() - started
            self._stop.wait(max(0.0, self.source.interval - elapsed))
