"""One notification to one group: claim, send, confirm per recipient, within a deadline.

The answer to Alertmanager follows from the recipients' outcomes: 200 when every recipient
has its SMS (sent now, sent before, or refused by Twilio for good), 503 when one is still
unsent and a retry can help. A retried webhook sends only to the recipients still missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from exporter.smsbridge.metrics import BridgeMetrics
from exporter.smsbridge.payload import Notification
from exporter.smsbridge.sender import Sender, SendError, Sent, mask
from exporter.smsbridge.store import (
    Claim,
    IdempotencyStore,
    StoreError,
    message_key,
    thread_key,
)
from exporter.smsbridge.text import measure

log = logging.getLogger(__name__)

Outcome = Literal["sent", "deduplicated", "rejected", "deferred", "retry"]

_MAX_ATTEMPTS = 4
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 5.0
_PRUNE_EVERY = 600.0


@dataclass(frozen=True)
class Result:
    """What happened for one recipient (number masked)."""

    recipient: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True)
class Report:
    """The recipients' results and the status the webhook answers with."""

    results: tuple[Result, ...]

    @property
    def status(self) -> int:
        """503 when a recipient is still unsent and a retry can help, else 200."""
        return 503 if any(r.outcome == "retry" for r in self.results) else 200

    def summary(self) -> str:
        """One line per recipient, for the response body."""
        return "".join(f"{r.recipient} {r.outcome}: {r.detail}\n" for r in self.results)


@dataclass(frozen=True)
class Timing:
    """Time limits of one webhook."""

    deadline: float  # seconds for the whole webhook
    request_timeout: float  # seconds for one Twilio request
    window: float  # records older than this no longer deduplicate

    @property
    def lease(self) -> float:
        """A claim older than this was left by a bridge that died mid-send."""
        return 2 * self.deadline + self.request_timeout


@dataclass(frozen=True)
class Limit:
    """At most ``messages`` SMS to one recipient per ``per`` seconds; more wait for a digest."""

    messages: int
    per: float


class Delivery:
    """Sends a notification's SMS; clock, sleep, store and sender come from outside."""

    def __init__(
        self,
        *,
        store: IdempotencyStore | None,
        sender: Sender,
        metrics: BridgeMetrics,
        timing: Timing,
        limit: Limit | None = None,
        dry_run: bool = False,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if store is None and not dry_run:
            raise ValueError("a store is required unless dry_run")
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self._timing = timing
        self._limit = limit
        self._dry_run = dry_run
        self._wall = wall
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_prune = 0.0

    def deliver(self, notification: Notification, recipients: Sequence[str], text: str) -> Report:
        """Send ``text`` once to each recipient; see the module doc for the answer."""
        end = self._monotonic() + self._timing.deadline
        self._prune()
        results = [self._one(notification, to, text, end) for to in recipients]
        return Report(tuple(results))

    def _prune(self) -> None:
        if self._store is None or self._monotonic() < self._next_prune:
            return
        self._next_prune = self._monotonic() + _PRUNE_EVERY
        try:
            dropped = self._store.prune(self._wall() - self._timing.window)
        except StoreError as exc:
            log.warning("could not prune idempotency records: %s", exc)
            return
        if dropped:
            log.info("pruned %d idempotency records older than the dedup window", dropped)

    def _one(self, notification: Notification, to: str, text: str, end: float) -> Result:
        shown = mask(to)
        if self._store is None:  # dry run: nothing recorded, nothing sent
            self._sender.send(to, text, timeout=self._timing.request_timeout)
            self._metrics.dry_run.inc()
            return Result(shown, "sent", "dry run, logged")
        key, thread = message_key(notification, to), thread_key(notification, to)
        timing = self._timing
        try:
            claim = self._store.claim(
                key, to, now=self._wall(), lease=timing.lease, window=timing.window, thread=thread
            )
        except StoreError as exc:
            log.error("SMS to %s not sent: idempotency store unavailable: %s", shown, exc)
            self._metrics.failed.labels("store").inc()
            return Result(shown, "retry", "idempotency store unavailable")
        if claim.verdict != "send":
            result = self._skip(claim, shown)
            log.info("SMS to %s not sent (message %s): %s", shown, key[:12], result.detail)
            return result
        if claim.stale:
            self._metrics.possible_duplicates.inc()
            log.warning(
                "SMS to %s: taking over the claim of a send that never finished (a bridge "
                "stopped mid-send); the recipient may get this SMS twice",
                shown,
            )
        if self._over_limit(to):
            return self._defer(key, thread, to, shown, text)
        return self._send(key, thread, to, shown, text, end)

    def _skip(self, claim: Claim, shown: str) -> Result:
        if claim.verdict == "busy":
            self._metrics.failed.labels("in_flight").inc()
            return Result(shown, "retry", "being sent by another request")
        self._metrics.deduplicated.inc()
        if claim.verdict == "rejected":
            return Result(shown, "deduplicated", f"refused before (Twilio {claim.error_code})")
        if claim.verdict == "deferred":
            return Result(shown, "deduplicated", "waiting for the recipient's next digest")
        return Result(shown, "deduplicated", f"already sent as {claim.sid}")

    def _over_limit(self, to: str) -> bool:
        assert self._store is not None
        if self._limit is None:
            return False
        try:
            # The count includes the claim just made.
            recent = self._store.recent_sends(to, self._wall() - self._limit.per)
        except StoreError as exc:
            log.warning("cannot count recent SMS to %s, sending anyway: %s", mask(to), exc)
            return False
        return recent > self._limit.messages

    def _defer(self, key: str, thread: str, to: str, shown: str, text: str) -> Result:
        assert self._store is not None and self._limit is not None
        try:
            self._store.defer(key, to, text, now=self._wall(), thread=thread)
        except StoreError as exc:
            log.error("SMS to %s not deferred: %s", shown, exc)
            self._metrics.failed.labels("store").inc()
            return Result(shown, "retry", "idempotency store unavailable")
        self._metrics.deferred.inc()
        log.info(
            "SMS to %s deferred: over %d SMS in %gs; it goes out in the next digest",
            shown,
            self._limit.messages,
            self._limit.per,
        )
        return Result(shown, "deferred", "over the recipient's rate limit; sent in a digest")

    def _send(self, key: str, thread: str, to: str, shown: str, text: str, end: float) -> Result:
        assert self._store is not None
        attempt = 0
        while True:
            attempt += 1
            left = end - self._monotonic()
            try:
                sent = self._sender.send(to, text, timeout=min(self._timing.request_timeout, left))
            except SendError as exc:
                self._metrics.failed.labels(exc.reason).inc()
                if not exc.retryable:
                    return self._reject(key, thread, shown, exc)
                wait = _backoff(attempt, exc.retry_after)
                enough = end - self._monotonic() - wait >= min(1.0, self._timing.request_timeout)
                if attempt < _MAX_ATTEMPTS and enough:
                    log.info("SMS to %s: %s; retrying in %.1fs", shown, exc.message, wait)
                    if exc.ambiguous:
                        self._metrics.possible_duplicates.inc()
                    self._metrics.retries.inc()
                    self._sleep(wait)
                    continue
                return self._release(key, shown, exc)
            return self._confirm(key, thread, shown, text, sent)

    def _confirm(self, key: str, thread: str, shown: str, text: str, sent: Sent) -> Result:
        assert self._store is not None
        self._metrics.sent.inc()
        self._metrics.segments.inc(measure(text).segments)
        log.info("SMS to %s sent as %s (message %s)", shown, sent.sid, key[:12])
        try:
            self._store.confirm(key, sent.sid, now=self._wall(), thread=thread)
        except StoreError as exc:
            # Sent but not recorded: the claim stays, so retries see it in flight and,
            # after the lease, take it over (counted as a possible duplicate).
            log.error("SMS to %s sent as %s but not recorded: %s", shown, sent.sid, exc)
        return Result(shown, "sent", sent.sid)

    def _reject(self, key: str, thread: str, shown: str, exc: SendError) -> Result:
        assert self._store is not None
        log.error("SMS to %s refused for good, not retried: %s", shown, exc.message)
        try:
            self._store.reject(key, exc.code, now=self._wall(), thread=thread)
        except StoreError as store_exc:
            log.warning("could not record the refusal for %s: %s", shown, store_exc)
        return Result(shown, "rejected", exc.message)

    def _release(self, key: str, shown: str, exc: SendError) -> Result:
        assert self._store is not None
        log.warning("SMS to %s not sent, Alertmanager will retry: %s", shown, exc.message)
        if exc.ambiguous:
            self._metrics.possible_duplicates.inc()
        try:
            self._store.release(key)
        except StoreError as store_exc:
            log.warning("could not release the claim for %s: %s", shown, store_exc)
        return Result(shown, "retry", exc.message)


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return max(0.0, retry_after)
    return float(min(_MAX_BACKOFF, _FIRST_BACKOFF * 2 ** (attempt - 1)))
