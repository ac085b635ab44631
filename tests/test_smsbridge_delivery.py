"""Delivery on a real SQLite store with a scripted Twilio and a fake clock: retries, deadline,
claims left by a dead bridge, an unavailable store, and the bridge's own metrics."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.smsbridge.delivery import Delivery, Limit, Timing
from exporter.smsbridge.digest import DigestSender
from exporter.smsbridge.metrics import BridgeMetrics
from exporter.smsbridge.payload import Notification, notification_from
from exporter.smsbridge.sender import SendError, Sent
from exporter.smsbridge.store import SqliteStore, message_key
from tests.support.alerts import payment_alert, webhook

TO = ["+14155550101", "+14155550102"]


class Clock:
    """Wall and monotonic time that only move when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedTwilio:
    """Answers each send with the next scripted outcome (an error, or success)."""

    def __init__(self, clock: Clock, *outcomes: SendError | None) -> None:
        self._clock = clock
        self._outcomes = deque(outcomes)
        self.sent: list[tuple[str, float]] = []

    def fail_next(self, error: SendError) -> None:
        self._outcomes.append(error)

    def send(self, to: str, body: str, *, timeout: float) -> Sent:
        outcome = self._outcomes.popleft() if self._outcomes else None
        if outcome is not None:
            self._clock.now += min(timeout, 0.1)
            raise outcome
        self.sent.append((to, timeout))
        return Sent(f"SM{len(self.sent)}")


def _setup(
    tmp_path: Path, *outcomes: SendError | None
) -> tuple[Delivery, ScriptedTwilio, SqliteStore, Clock, CollectorRegistry]:
    clock = Clock()
    twilio = ScriptedTwilio(clock, *outcomes)
    store = SqliteStore(str(tmp_path / "sms.sqlite"))
    registry = CollectorRegistry()
    delivery = Delivery(
        store=store,
        sender=twilio,
        metrics=BridgeMetrics(registry),
        timing=Timing(deadline=20, request_timeout=5, window=3600),
        wall=clock.time,
        monotonic=clock.time,
        sleep=clock.sleep,
    )
    return delivery, twilio, store, clock, registry


def _notification() -> Notification:
    return notification_from(webhook(payment_alert()))


def _down() -> SendError:
    return SendError("twilio_unavailable", "Twilio: HTTP 503", retryable=True, code=20503)


def test_backoff_doubles_and_stops_after_four_attempts(tmp_path: Path) -> None:
    delivery, twilio, _store, clock, registry = _setup(tmp_path, *[_down()] * 10)
    report = delivery.deliver(_notification(), TO[:1], "text")
    assert report.status == 503
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert twilio.sent == []
    assert registry.get_sample_value("boxoffice_sms_bridge_send_retries_total") == 3
    assert (
        registry.get_sample_value(
            "boxoffice_sms_bridge_messages_failed_total", {"reason": "twilio_unavailable"}
        )
        == 4
    )


def test_retry_after_is_honoured_and_the_timeout_shrinks_to_the_deadline(tmp_path: Path) -> None:
    limited = SendError(
        "rate_limited", "Twilio: HTTP 429", retryable=True, code=20429, retry_after=17.0
    )
    delivery, twilio, _store, clock, _registry = _setup(tmp_path, limited)
    report = delivery.deliver(_notification(), TO[:1], "text")
    assert report.status == 200
    assert clock.sleeps == [17.0]
    assert twilio.sent == [(TO[0], pytest.approx(20 - 17 - 0.1))]  # what is left of 20s


def test_a_second_recipient_after_a_slow_first_still_fits_the_deadline(tmp_path: Path) -> None:
    delivery, twilio, _store, clock, _registry = _setup(tmp_path, *[_down()] * 3)
    report = delivery.deliver(_notification(), TO, "text")
    assert [r.outcome for r in report.results] == ["sent", "sent"]
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert [to for to, _timeout in twilio.sent] == TO


def test_a_permanent_refusal_answers_200_and_is_remembered(tmp_path: Path) -> None:
    invalid = SendError("rejected", "Twilio: HTTP 400, error 21211", retryable=False, code=21211)
    delivery, twilio, _store, _clock, registry = _setup(tmp_path, invalid)
    first = delivery.deliver(_notification(), TO, "text")
    assert [r.outcome for r in first.results] == ["rejected", "sent"]
    assert first.status == 200
    second = delivery.deliver(_notification(), TO, "text")
    assert [r.outcome for r in second.results] == ["deduplicated", "deduplicated"]
    assert "refused before (Twilio 21211)" in second.results[0].detail
    assert len(twilio.sent) == 1
    failed = "boxoffice_sms_bridge_messages_failed_total"
    assert registry.get_sample_value(failed, {"reason": "rejected"}) == 1
    assert registry.get_sample_value("boxoffice_sms_bridge_messages_deduplicated_total") == 2


def test_a_claim_left_by_a_dead_bridge_is_taken_over_and_counted(tmp_path: Path) -> None:
    delivery, twilio, store, clock, registry = _setup(tmp_path)
    key = message_key(_notification(), TO[0])
    store.claim(
        key, TO[0], now=clock.now - 3600 + 60, lease=45, window=3600
    )  # then the bridge died
    report = delivery.deliver(_notification(), TO[:1], "text")
    assert report.status == 200
    assert len(twilio.sent) == 1
    assert registry.get_sample_value("boxoffice_sms_bridge_possible_duplicates_total") == 1


def test_a_claim_in_flight_elsewhere_answers_503_without_sending(tmp_path: Path) -> None:
    delivery, twilio, store, clock, registry = _setup(tmp_path)
    store.claim(
        message_key(_notification(), TO[0]), TO[0], now=clock.now - 1, lease=45, window=3600
    )
    report = delivery.deliver(_notification(), TO[:1], "text")
    assert report.status == 503
    assert "being sent by another request" in report.summary()
    assert twilio.sent == []
    assert (
        registry.get_sample_value(
            "boxoffice_sms_bridge_messages_failed_total", {"reason": "in_flight"}
        )
        == 1
    )


def test_an_unavailable_store_sends_nothing_and_answers_503(tmp_path: Path) -> None:
    delivery, twilio, store, _clock, registry = _setup(tmp_path)
    store.close()
    report = delivery.deliver(_notification(), TO, "text")
    assert report.status == 503
    assert twilio.sent == []  # without a claim nothing is sent: it could not be deduplicated
    assert (
        registry.get_sample_value("boxoffice_sms_bridge_messages_failed_total", {"reason": "store"})
        == 2
    )


def test_old_records_are_pruned_on_the_request_path(tmp_path: Path) -> None:
    delivery, twilio, _store, clock, _registry = _setup(tmp_path)
    assert delivery.deliver(_notification(), TO[:1], "text").status == 200
    clock.now += 3601  # past the dedup window: the record is pruned and the SMS goes again
    assert delivery.deliver(_notification(), TO[:1], "text").results[0].outcome == "sent"
    assert len(twilio.sent) == 2


def _limited(
    tmp_path: Path, *outcomes: SendError | None
) -> tuple[Delivery, DigestSender, ScriptedTwilio, Clock, CollectorRegistry]:
    clock = Clock()
    twilio = ScriptedTwilio(clock, *outcomes)
    store = SqliteStore(str(tmp_path / "sms.sqlite"))
    registry = CollectorRegistry()
    metrics = BridgeMetrics(registry)
    timing = Timing(deadline=20, request_timeout=5, window=3600)
    limit = Limit(messages=2, per=30)
    delivery = Delivery(
        store=store,
        sender=twilio,
        metrics=metrics,
        timing=timing,
        limit=limit,
        wall=clock.time,
        monotonic=clock.time,
        sleep=clock.sleep,
    )
    digests = DigestSender(
        store=store,
        sender=twilio,
        metrics=metrics,
        limit=limit,
        timing=timing,
        max_segments=3,
        wall=clock.time,
    )
    return delivery, digests, twilio, clock, registry


def _numbered(i: int) -> Notification:
    return notification_from(webhook(payment_alert(), group_key=f"group-{i}"))


def test_past_the_limit_messages_are_deferred_then_sent_as_one_digest(tmp_path: Path) -> None:
    delivery, digests, twilio, clock, registry = _limited(tmp_path)
    outcomes = [delivery.deliver(_numbered(i), TO[:1], f"text {i}") for i in range(4)]
    assert [o.results[0].outcome for o in outcomes] == ["sent", "sent", "deferred", "deferred"]
    assert {o.status for o in outcomes} == {200}  # deferred is durable: nothing to retry
    assert delivery.deliver(_numbered(3), TO[:1], "text 3").results[0].outcome == "deduplicated"
    assert digests.flush() == 0  # the window is still full
    clock.now += 31
    assert digests.flush() == 1
    assert twilio.sent[-1][0] == TO[0]
    assert len(twilio.sent) == 3
    assert registry.get_sample_value("boxoffice_sms_bridge_messages_deferred_total") == 2
    assert registry.get_sample_value("boxoffice_sms_bridge_digests_sent_total") == 1
    assert registry.get_sample_value("boxoffice_sms_bridge_messages_sent_total") == 3
    assert digests.flush() == 0  # nothing left
    assert (
        delivery.deliver(_numbered(2), TO[:1], "text 2")
        .results[0]
        .detail.startswith("already sent as SM3")
    )


def test_a_digest_twilio_cannot_take_now_waits_for_the_next_flush(tmp_path: Path) -> None:
    delivery, digests, twilio, clock, _registry = _limited(tmp_path)
    for i in range(3):
        delivery.deliver(_numbered(i), TO[:1], f"text {i}")
    clock.now += 31
    twilio.fail_next(SendError("twilio_unavailable", "Twilio: HTTP 503", retryable=True))
    assert digests.flush() == 0
    assert digests.flush() == 1
    assert len(twilio.sent) == 3


def test_a_digest_to_an_invalid_number_is_refused_for_good(tmp_path: Path) -> None:
    delivery, digests, twilio, clock, _registry = _limited(tmp_path)
    for i in range(3):
        delivery.deliver(_numbered(i), TO[:1], f"text {i}")
    clock.now += 31
    twilio.fail_next(
        SendError("rejected", "Twilio: HTTP 400, error 21211", retryable=False, code=21211)
    )
    assert digests.flush() == 0
    assert digests.flush() == 0  # not tried again
    assert (
        delivery.deliver(_numbered(2), TO[:1], "text 2").results[0].detail
        == "refused before (Twilio 21211)"
    )


def test_one_text_per_change_whatever_startsat_each_prometheus_gave(tmp_path: Path) -> None:
    """Two Alertmanagers fed by a Prometheus HA pair: the same page with two startsAt is one
    SMS, its all-clear one more, and the next incident of the same alert pages again."""
    delivery, twilio, _store, clock, _registry = _setup(tmp_path)

    def deliver(status: str, starts_at: str) -> list[str]:
        notice = notification_from(webhook(payment_alert(status=status, starts_at=starts_at)))
        clock.now += 5
        return [r.outcome for r in delivery.deliver(notice, TO[:1], status).results]

    assert deliver("firing", "2026-11-26T09:00:00Z") == ["sent"]
    assert deliver("firing", "2026-11-26T09:00:12Z") == ["deduplicated"]  # the other replica
    assert deliver("resolved", "2026-11-26T09:00:12Z") == ["sent"]
    assert deliver("resolved", "2026-11-26T09:00:00Z") == ["deduplicated"]
    assert deliver("firing", "2026-11-26T09:40:00Z") == ["sent"]  # a new incident
    assert deliver("resolved", "2026-11-26T09:40:00Z") == ["sent"]
    assert len(twilio.sent) == 4
