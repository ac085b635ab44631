"""The Stripe source with the real stripe SDK against a local Stripe API."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.sources import stripe as stripe_source
from exporter.sources.base import Collection
from exporter.sources.pacing import BudgetedSession
from exporter.sources.stripe_api import make_client
from tests.support.fake_stripe import (
    API_KEY,
    FakeStripe,
    outcome,
    rate_limit_reply,
    server_error_reply,
)
from tests.support.fakehttp import MALFORMED, Hang, Reply, serving
from tests.support.sources import watching


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with serving(FakeStripe()) as server:
        yield server  # type: ignore[misc]


def _source(url: str, **overrides: Any) -> stripe_source.StripeSource:
    session = BudgetedSession()
    settings: dict[str, Any] = {
        "interval": 1.0,
        "timeout": 2.0,
        "overlap": 300.0,
        "max_pages": 10,
        "events_window": 3600.0,
        "max_watched": 1000,
    }
    settings.update(overrides)
    client = make_client(API_KEY, api_base=url, session=session, timeout=1.0)
    return stripe_source.StripeSource(client=client, session=session, **settings)


def _reasons(result: Collection) -> list[str]:
    return [f.reason for f in result.failures]


def test_2500_charges_in_one_window_are_paged_across_cycles_and_counted_exactly(
    fake: FakeStripe,
) -> None:
    now = int(time.time())
    for i in range(2500):
        failed = i % 50 == 0
        fake.add_charge(
            now - 50 + i % 50,  # 50 share each second: the cursor, not `created`, pages
            status="failed" if failed else "succeeded",
            failure_code="card_declined" if failed else None,
        )
    # At most 1,000 charges (10 pages) a cycle: the scan carries over to the next cycles.
    clock = [float(now)]
    source = _source(fake.url, max_pages=10, timeout=20.0, overlap=60, clock=lambda: clock[0])
    totals, pages = [], []
    for _ in range(5):
        clock[0] += 30  # the next scans start after the 2,500 (no re-listing of them)
        before = fake.list_requests("/v1/charges")
        result = source.collect()
        assert result.ok, result.failures
        totals.append(source.totals.charges)
        pages.append(fake.list_requests("/v1/charges") - before)
    assert totals == [1000, 2000, 2500, 2500, 2500]
    assert pages[:3] == [10, 10, 5]
    assert max(pages) <= 10
    assert dict(source.totals.charges_failed) == {("card_declined", "customer_decline"): 50}


def test_a_charge_that_appears_late_is_counted_once(fake: FakeStripe) -> None:
    now = int(time.time())
    fake.add_charge(now - 50)
    source = _source(fake.url, overlap=120)
    assert source.collect().ok
    assert source.totals.charges == 1
    # Created before the watermark the first scan set, visible only now (Stripe's lag).
    late = fake.add_charge(now - 30, hidden=True)
    assert source.collect().ok
    assert source.totals.charges == 1
    fake.reveal(late)
    assert source.collect().ok
    assert source.totals.charges == 2
    for _ in range(2):
        assert source.collect().ok
    assert source.totals.charges == 2


def test_a_pending_charge_is_counted_once_at_its_final_status(fake: FakeStripe) -> None:
    now = int(time.time())
    charge = fake.add_charge(now - 20, status="pending")
    source = _source(fake.url)
    assert source.collect().ok
    assert source.totals.charges == 0
    fake.update(
        "charge",
        charge,
        status="failed",
        failure_code="insufficient_funds",
        outcome=outcome("failed", "insufficient_funds"),
    )
    assert source.collect().ok
    assert source.totals.charges == 1
    assert dict(source.totals.charges_failed) == {("insufficient_funds", "customer_decline"): 1}
    assert source.collect().ok
    assert source.totals.charges == 1


def test_pending_charges_behind_the_window_are_read_one_by_one(fake: FakeStripe) -> None:
    now = int(time.time())
    charge = fake.add_charge(now - 100, status="pending")
    clock = [float(now)]
    source = _source(fake.url, overlap=110, clock=lambda: clock[0])
    assert source.collect().ok
    clock[0] += 600
    # This scan still lists the charge; once it ends, later scans start after the charge,
    # so from now on it is read by id.
    assert source.collect().ok
    assert sum(r.path == f"/v1/charges/{charge}" for r in fake.requests) == 1
    assert source.totals.charges == 0
    clock[0] += 600
    fake.update("charge", charge, status="succeeded")
    assert source.collect().ok
    assert source.totals.charges == 1
    assert any(r.path == f"/v1/charges/{charge}" for r in fake.requests)
    assert watching(source)["charges"] == 0


def test_refunds_count_when_succeeded_and_disputes_stay_open_until_closed(
    fake: FakeStripe,
) -> None:
    now = int(time.time())
    refund = fake.add("refund", now - 10, status="pending")
    fake.add("refund", now - 9, status="canceled")
    dispute = fake.add("dispute", now - 40 * 86400, status="needs_response")
    fake.add("dispute", now - 5, status="won")
    source = _source(fake.url)
    assert source.collect().ok
    assert (source.totals.refunds, source.totals.disputes) == (0, 2)
    assert watching(source) == {"charges": 0, "refunds": 1, "disputes": 1}
    fake.update("refund", refund, status="succeeded")
    fake.update("dispute", dispute, status="under_review")
    assert source.collect().ok
    assert source.totals.refunds == 1
    fake.update("dispute", dispute, status="lost")
    result = source.collect()
    assert result.ok
    assert source.totals.disputes == 2
    open_now = {f.name: f for f in result.families}["boxoffice_stripe_disputes_open"]
    assert open_now.samples[0].value == 0


def test_429_with_a_short_retry_after_is_waited_out_within_the_cycle(fake: FakeStripe) -> None:
    now = int(time.time())
    fake.add_charge(now - 5)
    fake.fail_next(rate_limit_reply(retry_after=0.2))
    source = _source(fake.url, timeout=2.0)
    result = source.collect()
    assert result.ok, result.failures
    assert source.totals.charges == 1


def test_429_storm_fails_fast_stays_away_for_retry_after_then_recovers(
    fake: FakeStripe,
) -> None:
    now = int(time.time())
    fake.add_charge(now - 5)
    fake.fail_next(*[rate_limit_reply(retry_after=1)] * 3)
    source = _source(fake.url, timeout=0.5)  # a 1 s wait does not fit in the cycle
    assert _reasons(source.collect()) == ["rate_limited"]
    asked = len(fake.requests)
    # Until Retry-After has passed the source does not call Stripe at all.
    assert _reasons(source.collect()) == ["rate_limited"]
    assert len(fake.requests) == asked
    # Each later 429 closes the gate again; the source recovers once the storm is over.
    deadline = time.monotonic() + 6
    while not source.collect().ok:
        assert time.monotonic() < deadline, "did not recover after the 429 storm"
        time.sleep(0.1)
    assert fake.faults_left() == 0
    assert source.totals.charges == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (server_error_reply(), "http"),
        (Reply(502, b"<html>Bad gateway</html>", {"Content-Type": "text/html"}), "http"),
        (MALFORMED, "decode"),
        (Hang(3), "timeout"),
        (Reply(401, b'{"error": {"type": "invalid_request_error", "message": "x"}}'), "auth"),
    ],
)
def test_a_fault_fails_the_cycle_and_the_next_cycle_recovers(
    fake: FakeStripe, fault: Reply | Hang, reason: str
) -> None:
    now = int(time.time())
    fake.add_charge(now - 5)
    source = _source(fake.url, timeout=0.5)
    fake.fail_next(fault)
    started = time.monotonic()
    result = source.collect()
    assert time.monotonic() - started < 1.5, "a cycle must end within its budget"
    assert _reasons(result) == [reason]
    assert not result.families, "a failed cycle publishes no business series"
    assert API_KEY not in repr(result.failures)
    recovered = source.collect()
    assert recovered.ok, recovered.failures
    assert source.totals.charges == 1


def test_a_500_burst_never_double_counts(fake: FakeStripe) -> None:
    now = int(time.time())
    for i in range(250):
        fake.add_charge(now - 100 + i % 60)
    source = _source(fake.url, max_pages=1)
    fake.fail_next(server_error_reply(), server_error_reply())
    outcomes = [source.collect().ok for _ in range(8)]
    assert outcomes[:2] == [False, False]
    assert all(outcomes[2:])
    assert source.totals.charges == 250


def test_connection_refused_is_a_connection_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = _source(f"http://127.0.0.1:{port}", timeout=0.5)
    result = source.collect()
    assert _reasons(result) == ["connection"]


def test_a_scan_whose_cursor_object_vanished_restarts_without_double_counting(
    fake: FakeStripe,
) -> None:
    now = int(time.time())
    for i in range(250):
        fake.add_charge(now - 100 + i % 60)
    source = _source(fake.url, max_pages=1)
    assert source.collect().ok
    assert source.totals.charges == 100
    # The object the cursor points at disappears: Stripe answers 400 for `starting_after`.
    newest_first = sorted(
        fake.objects["charge"].values(), key=lambda c: (c["created"], c["id"]), reverse=True
    )
    gone = newest_first[99]["id"]
    del fake.objects["charge"][gone]
    failed = source.collect()
    assert [f.reason for f in failed.failures] == ["http"]
    last = next(r for r in reversed(fake.requests) if r.path == "/v1/charges")
    assert ("starting_after", gone) in last.query
    for _ in range(4):
        assert source.collect().ok
    assert source.totals.charges == 250


def test_a_watched_object_that_vanished_is_dropped(fake: FakeStripe) -> None:
    now = int(time.time())
    clock = [float(now)]
    charge = fake.add_charge(now - 100, status="pending")
    source = _source(fake.url, overlap=110, clock=lambda: clock[0])
    assert source.collect().ok
    clock[0] += 600
    del fake.objects["charge"][charge]
    assert source.collect().ok
    assert watching(source)["charges"] == 0


def test_failed_charges_are_classed_from_stripes_outcome(fake: FakeStripe) -> None:
    now = int(time.time())
    fake.add_charge(now - 40)
    fake.add_charge(now - 39, status="failed", failure_code="insufficient_funds")
    fake.add_charge(now - 38, status="failed", failure_code="card_declined")
    # Radar blocked it: Stripe still reports card_declined, with outcome.type blocked.
    radar = outcome(
        "failed", "highest_risk_level", kind="blocked", network_status="not_sent_to_network"
    )
    fake.add_charge(now - 37, status="failed", failure_code="card_declined", outcome=radar)
    fake.add_charge(now - 36, status="failed", failure_code="processing_error")
    fake.add_charge(
        now - 35,
        status="failed",
        failure_code="card_declined",
        outcome=outcome("failed", "stolen_card"),
    )
    source = _source(fake.url)
    result = source.collect()
    assert result.ok, result.failures
    assert dict(source.totals.charges_failed) == {
        ("insufficient_funds", "customer_decline"): 1,
        ("card_declined", "customer_decline"): 1,
        ("card_declined", "fraud_block"): 2,
        ("processing_error", "system"): 1,
    }
    failed = {
        tuple(sorted(s.labels.items())): s.value
        for family in result.families
        if family.name == "boxoffice_stripe_charges_failed"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert failed[(("failure_class", "system"), ("failure_code", "processing_error"))] == 1
