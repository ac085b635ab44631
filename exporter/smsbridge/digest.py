"""Digests: a recipient over its rate limit gets its deferred messages as one SMS.

Twilio refuses more than about 30 messages to one number within 30 seconds (error 14107).
During an alert storm the delivery defers what goes past the configured limit
(:class:`~exporter.smsbridge.delivery.Limit`); this sender wakes every second, and for each
recipient whose window has room again takes all its deferred messages (one store
transaction) and sends them as one SMS, newest first. The webhooks were answered 200 when
their messages were deferred: the records are durable, so a restart (or, with PostgreSQL,
any peer) still sends them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from exporter.smsbridge.delivery import Limit, Timing
from exporter.smsbridge.metrics import BridgeMetrics
from exporter.smsbridge.sender import Sender, SendError, mask
from exporter.smsbridge.store import Deferred, IdempotencyStore, StoreError
from exporter.smsbridge.text import digest, measure

log = logging.getLogger(__name__)


class DigestSender:
    """Sends deferred messages as digests; ``flush`` once, or ``start`` a background loop."""

    def __init__(
        self,
        *,
        store: IdempotencyStore,
        sender: Sender,
        metrics: BridgeMetrics,
        limit: Limit,
        timing: Timing,
        max_segments: int,
        wall: Callable[[], float] = time.time,
        interval: float = 1.0,
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self._limit = limit
        self._timing = timing
        self._max_segments = max_segments
        self._wall = wall
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def flush(self) -> int:
        """Send every digest the recipients' windows allow now; the number sent."""
        try:
            recipients = self._store.deferred_recipients(now=self._wall(), lease=self._timing.lease)
        except StoreError as exc:
            log.warning("cannot look for deferred SMS: %s", exc)
            return 0
        sent = 0
        for to in recipients:
            try:
                sent += self._flush_one(to)
            except StoreError as exc:
                log.warning("deferred SMS to %s wait: %s", mask(to), exc)
        return sent

    def _flush_one(self, to: str) -> int:
        now = self._wall()
        if self._store.recent_sends(to, now - self._limit.per) >= self._limit.messages:
            return 0
        taken = self._store.take_deferred(to, now=now, lease=self._timing.lease)
        if not taken:
            return 0
        if any(d.stale for d in taken):
            self._metrics.possible_duplicates.inc()
            log.warning(
                "digest to %s: taking over a digest a stopped bridge was sending; "
                "the recipient may get it twice",
                mask(to),
            )
        body = digest([d.body for d in taken], self._max_segments)
        try:
            sent = self._sender.send(to, body, timeout=self._timing.request_timeout)
        except SendError as exc:
            self._failed(to, taken, exc)
            return 0
        for item in taken:
            self._store.confirm(item.key, sent.sid, now=self._wall())
        self._metrics.sent.inc()
        self._metrics.digests.inc()
        self._metrics.segments.inc(measure(body).segments)
        log.info("digest of %d SMS to %s sent as %s", len(taken), mask(to), sent.sid)
        return 1

    def _failed(self, to: str, taken: list[Deferred], exc: SendError) -> None:
        self._metrics.failed.labels(exc.reason).inc()
        keys = [d.key for d in taken]
        if exc.retryable:
            if exc.ambiguous:
                self._metrics.possible_duplicates.inc()
            log.warning("digest to %s not sent, trying again: %s", mask(to), exc.message)
            self._store.restore_deferred(keys)
            return
        log.error("digest to %s refused for good, not retried: %s", mask(to), exc.message)
        for key in keys:
            self._store.reject(key, exc.code, now=self._wall())

    def start(self) -> None:
        """Flush every ``interval`` seconds in a background thread until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="sms-digests", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # a bug must not end the loop: deferred SMS would wait for ever
                log.exception("digest sender failed; trying again")

    def stop(self) -> None:
        """Stop the loop; a digest being sent finishes (bounded by the request timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._timing.request_timeout + 5)
