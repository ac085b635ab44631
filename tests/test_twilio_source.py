"""The Twilio source with the real twilio SDK against a local Twilio API."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from exporter.sources import twilio as twilio_source
from exporter.sources.base import Collection
from exporter.sources.pacing import BudgetedSession
from exporter.sources.twilio_api import make_client
from tests.support.fake_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FakeTwilio,
    error_reply,
    rate_limit_reply,
)
from tests.support.fakehttp import MALFORMED, Hang, Reply, serving


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with serving(FakeTwilio()) as server:
        yield server  # type: ignore[misc]


def _source(url: str, **overrides: Any) -> twilio_source.TwilioSource:
    session = BudgetedSession()
    settings: dict[str, Any] = {
        "interval": 1.0,
        "timeout": 2.0,
        "window": 600.0,
        "page_size": 20,
        "max_pages": 10,
        "max_in_flight": 1000,
    }
    settings.update(overrides)
    client = make_client(ACCOUNT_SID, AUTH_TOKEN, api_base=url, session=session, timeout=1.0)
    return twilio_source.TwilioSource(
        client=client, account_sid=ACCOUNT_SID, session=session, **settings
    )


def _reasons(result: Collection) -> list[str]:
    return [f.reason for f in result.failures]


def test_50_sms_moving_through_their_statuses_are_each_counted_once_in_the_right_bucket(
    fake: FakeTwilio,
) -> None:
    now = time.time()
    rng = random.Random(4)
    sids = [fake.send(now - 300 + i, status="queued") for i in range(50)]
    # Each message ends delivered, failed (30008), or undelivered (30003 or 30005).
    endings = {
        sid: rng.choice(
            [("delivered", None), ("failed", 30008), ("undelivered", 30003), ("undelivered", 30005)]
        )
        for sid in sids
    }
    steps = {sid: rng.randint(1, 4) for sid in sids}  # cycles until it reaches the end
    source = _source(fake.url, page_size=7)  # 8 pages: several pages a cycle
    for cycle in range(7):
        for sid in sids:
            if cycle == steps[sid] - 1:
                fake.update(sid, status="sent")
            if cycle == steps[sid]:
                status, code = endings[sid]
                fake.update(sid, status=status, error_code=code, price="-0.00790")
        result = source.collect()
        assert result.ok, result.failures
        if cycle == 0:  # nothing final yet: all followed, none counted
            assert (source.totals.messages, len(source.in_flight)) == (0, 50)
    failed_expected: dict[str, int] = {}
    for status, code in endings.values():
        if status != "delivered":
            failed_expected[str(code)] = failed_expected.get(str(code), 0) + 1
    assert source.totals.messages == 50
    assert dict(source.totals.failed) == failed_expected
    assert source.totals.cost == {"usd": Decimal("0.00790") * 50}
    assert not source.in_flight


def test_the_price_is_added_when_twilio_fills_it_in_after_the_final_status(
    fake: FakeTwilio,
) -> None:
    sid = fake.send(time.time() - 10, status="delivered")
    source = _source(fake.url)
    assert source.collect().ok
    assert (source.totals.messages, source.totals.cost) == (1, {})
    fake.update(sid, price="-0.04200", price_unit="EUR")
    assert source.collect().ok
    assert source.collect().ok
    assert (source.totals.messages, source.totals.cost) == (1, {"eur": Decimal("0.04200")})


def test_inbound_and_canceled_messages_are_not_counted(fake: FakeTwilio) -> None:
    fake.send(time.time() - 10, status="received", direction="inbound")
    fake.send(time.time() - 10, status="canceled")
    source = _source(fake.url)
    assert source.collect().ok
    assert source.totals.messages == 0
    assert not source.in_flight


def test_in_flight_messages_that_leave_the_window_are_read_by_sid(fake: FakeTwilio) -> None:
    now = time.time()
    clock = [now]
    sid = fake.send(now - 30, status="sent")
    source = _source(fake.url, window=60, clock=lambda: clock[0])
    assert source.collect().ok
    assert list(source.in_flight) == [sid]
    clock[0] += 600  # long past the window: the list no longer returns it
    fake.update(sid, status="undelivered", error_code=30003)
    assert source.collect().ok
    assert dict(source.totals.failed) == {"30003": 1}
    assert any(r.path.endswith(f"/Messages/{sid}.json") for r in fake.requests)


def test_a_deleted_in_flight_message_is_dropped(fake: FakeTwilio) -> None:
    now = time.time()
    clock = [now]
    sid = fake.send(now - 30, status="sent")
    source = _source(fake.url, window=60, clock=lambda: clock[0])
    assert source.collect().ok
    del fake.messages[sid]
    clock[0] += 600
    assert source.collect().ok
    assert not source.in_flight


def test_in_flight_messages_are_bounded(fake: FakeTwilio) -> None:
    for i in range(30):
        fake.send(time.time() - 100 + i, status="sent")
    source = _source(fake.url, max_in_flight=10)
    assert source.collect().ok
    assert len(source.in_flight) == 10


def test_a_scan_cut_by_the_page_cap_resumes_next_cycle(fake: FakeTwilio) -> None:
    for i in range(45):
        fake.send(time.time() - 200 + i, status="delivered")
    source = _source(fake.url, page_size=10, max_pages=2)
    counts = []
    for _ in range(4):
        assert source.collect().ok
        counts.append(source.totals.messages)
    assert counts == [20, 40, 45, 45]


def test_20429_storm_backs_off_for_retry_after_and_recovers(fake: FakeTwilio) -> None:
    fake.send(time.time() - 10, status="delivered")
    fake.fail_next(*[rate_limit_reply(retry_after=1)] * 2)
    source = _source(fake.url, timeout=0.5)
    assert _reasons(source.collect()) == ["rate_limited"]
    asked = len(fake.requests)
    assert _reasons(source.collect()) == ["rate_limited"]
    assert len(fake.requests) == asked, "no request while Twilio asked to wait"
    deadline = time.monotonic() + 6
    while not source.collect().ok:
        assert time.monotonic() < deadline, "did not recover after the 429 storm"
        time.sleep(0.1)
    assert source.totals.messages == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (error_reply(500, 20500, "Internal Server Error"), "http"),
        (error_reply(503, 20503, "Service Unavailable"), "http"),
        (MALFORMED, "decode"),
        (Hang(3), "timeout"),
        (error_reply(401, 20003, "Authenticate"), "auth"),
    ],
)
def test_a_fault_fails_the_cycle_and_the_next_cycle_recovers(
    fake: FakeTwilio, fault: Reply | Hang, reason: str
) -> None:
    fake.send(time.time() - 10, status="delivered")
    source = _source(fake.url, timeout=0.5)
    fake.fail_next(fault)
    started = time.monotonic()
    result = source.collect()
    assert time.monotonic() - started < 1.5, "a cycle must end within its budget"
    assert _reasons(result) == [reason]
    assert not result.families
    assert AUTH_TOKEN not in repr(result.failures)
    assert source.collect().ok
    assert source.totals.messages == 1


def test_a_malformed_balance_is_a_decode_failure(fake: FakeTwilio) -> None:
    fake.balance = {"account_sid": ACCOUNT_SID, "balance": "lots", "currency": "USD"}
    result = _source(fake.url).collect()
    assert _reasons(result) == ["decode"]


def test_an_invalid_page_token_restarts_the_scan_without_double_counting(
    fake: FakeTwilio,
) -> None:
    for i in range(45):
        fake.send(time.time() - 200 + i, status="delivered")
    source = _source(fake.url, page_size=10, max_pages=2)
    assert source.collect().ok
    assert source.totals.messages == 20
    fake.fail_next(error_reply(400, 20001, "Invalid PageToken"))
    assert [f.reason for f in source.collect().failures] == ["http"]
    for _ in range(3):
        assert source.collect().ok
    assert source.totals.messages == 45
