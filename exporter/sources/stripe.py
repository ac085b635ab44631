"""The Stripe source: charges, refunds and disputes counted once each, balance, webhook health.

Three layers, as everywhere in boxoffice: :class:`~exporter.sources.stripe_api.StripeApi` is
the edge (SDK objects become our records, SDK exceptions a ``SourceError``),
:class:`StripeSource` keeps the counting state between cycles (a
:class:`~exporter.sources.ledger.CreatedLedger` per list), and :func:`stripe_families` is a
pure function from a :class:`StripeView` to metric families.

Counting rules (README "Stripe, Twilio and HTTP sources"):

* a charge counts once, when it is first seen with a final status (succeeded or failed);
  pending charges are followed until they settle, so a pending -> failed charge lands in
  ``boxoffice_stripe_charges_failed_total`` and never twice in the total;
* a refund counts once, when it has succeeded (failed or canceled refunds never count);
* a dispute counts once when first seen; it is followed while open for the open gauge.

A failed charge is also classed (``failure_class``: customer_decline, fraud_block or system)
from Stripe's ``outcome`` and ``failure_code`` (``stripe_outcome.py``).
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import stripe
from prometheus_client.core import Metric

from exporter.sources.base import Collection
from exporter.sources.families import family
from exporter.sources.ledger import CreatedLedger, Query, Rules
from exporter.sources.pacing import (
    BudgetedSession,
    RateGate,
    SourceError,
    call_with_retry_after,
    paced_cycle,
)
from exporter.sources.samples import major_units
from exporter.sources.stripe_api import Balance, Charge, Dispute, Page, Refund, StripeApi
from exporter.sources.stripe_outcome import failure_class

R = TypeVar("R")
T = TypeVar("T")

# Disputes may stay open for months (card network review); at start, look this far back so
# the open gauge includes them.
DISPUTE_LOOKBACK = 120 * 86400
OPEN_DISPUTE = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)
UNKNOWN = "unknown"


@dataclass(kw_only=True)
class StripeTotals:
    """Running totals since the exporter started."""

    charges: int = 0
    charges_failed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (code, class)
    refunds: int = 0
    disputes: int = 0


@dataclass(frozen=True, kw_only=True)
class StripeView:
    """Everything one successful cycle publishes."""

    charges: int
    charges_failed: dict[tuple[str, str], int]  # (failure_code, failure_class) -> count
    refunds: int
    disputes: int
    disputes_open: int
    balance: tuple[Balance, ...]
    events_pending_webhooks: int
    webhook_endpoints: dict[str, int]


def stripe_families(view: StripeView) -> list[Metric]:
    """The Stripe metric families of one cycle (pure)."""
    charges = family("boxoffice_stripe_charges_total", value=float(view.charges))
    failed = family("boxoffice_stripe_charges_failed_total")
    for key in sorted(view.charges_failed):
        failed.add_metric(list(key), float(view.charges_failed[key]))
    refunds = family("boxoffice_stripe_refunds_total", value=float(view.refunds))
    disputes = family("boxoffice_stripe_disputes_total", value=float(view.disputes))
    disputes_open = family("boxoffice_stripe_disputes_open", value=float(view.disputes_open))
    balance = family("boxoffice_stripe_balance")
    sums: dict[tuple[str, str], float] = {}
    for item in view.balance:
        key = (item.currency.lower(), item.state)
        sums[key] = sums.get(key, 0.0) + major_units(item.minor, item.currency)
    for key in sorted(sums):
        balance.add_metric(list(key), sums[key])
    pending = family(
        "boxoffice_stripe_events_pending_webhooks", value=float(view.events_pending_webhooks)
    )
    endpoints = family("boxoffice_stripe_webhook_endpoints")
    for status in sorted({"enabled", "disabled", *view.webhook_endpoints}):
        endpoints.add_metric([status], float(view.webhook_endpoints.get(status, 0)))
    return [charges, failed, refunds, disputes, disputes_open, balance, pending, endpoints]


@dataclass
class _Tracked(Generic[R]):
    ledger: CreatedLedger[Any]
    list_page: Callable[[Query], Page[R]]
    read_one: Callable[[str], R]


class StripeSource:
    """Collects the Stripe metrics; one instance keeps its running totals across cycles."""

    name = "stripe"

    def __init__(
        self,
        *,
        client: stripe.StripeClient,
        session: BudgetedSession,
        interval: float,
        timeout: float,
        overlap: float,
        max_pages: int,
        events_window: float,
        max_watched: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._api = StripeApi(client)
        self._session = session
        self._max_pages = max_pages
        self._events_window = int(events_window)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._gate = RateGate(max_wait=max(600.0, 10 * interval), monotonic=monotonic)
        self.totals = StripeTotals()
        now = int(clock())
        window = int(overlap)
        self._lists: list[_Tracked[Any]] = [
            _Tracked(
                CreatedLedger(
                    Rules(_charge_settled, _charge_pending, self._count_charge),
                    start=now - window,
                    overlap=window,
                    max_watched=max_watched,
                ),
                self._api.charges,
                self._api.charge,
            ),
            _Tracked(
                CreatedLedger(
                    Rules(_refund_settled, _refund_pending, self._count_refund),
                    start=now - window,
                    overlap=window,
                    max_watched=max_watched,
                ),
                self._api.refunds,
                self._api.refund,
            ),
            _Tracked(
                CreatedLedger(
                    Rules(_always, _dispute_open, self._count_dispute),
                    start=now - DISPUTE_LOOKBACK,
                    overlap=window,
                    max_watched=max_watched,
                ),
                self._api.disputes,
                self._api.dispute,
            ),
        ]

    def collect(self) -> Collection:
        """One cycle: advance each list's scan, re-read watched objects, read the gauges."""
        return paced_cycle(
            "Stripe",
            self._gate,
            self._session,
            self.timeout,
            lambda: stripe_families(self._cycle()),
        )

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def _cycle(self) -> StripeView:
        now = int(self._clock())
        for tracked in self._lists:
            self._advance(tracked, now)
        balance = self._call(self._api.balance)
        pending = self._call(
            lambda: self._api.events_pending_webhooks(now - self._events_window, self._max_pages)
        )
        endpoints = self._call(lambda: self._api.webhook_endpoints(self._max_pages))
        totals = self.totals
        return StripeView(
            charges=totals.charges,
            charges_failed=dict(totals.charges_failed),
            refunds=totals.refunds,
            disputes=totals.disputes,
            disputes_open=len(self._lists[2].ledger.watched),
            balance=tuple(balance),
            events_pending_webhooks=pending,
            webhook_endpoints=endpoints,
        )

    def _advance(self, tracked: _Tracked[Any], now: int) -> None:
        ledger = tracked.ledger
        for _ in range(self._max_pages):
            query = ledger.next_query(now)
            try:
                page = self._call(functools.partial(tracked.list_page, query))
            except SourceError as exc:
                if query.cursor is not None and exc.status in (400, 404):
                    # The cursor's object is gone: the next cycle lists this scan again
                    # from its top (what was counted is skipped) instead of failing forever.
                    ledger.restart_scan()
                raise
            if ledger.take_page(page.items, page.has_more):
                break
        # Objects still open but behind the scanned range are re-read one by one.
        for oid in ledger.stale_watched(self._max_pages):
            try:
                ledger.observe(self._call(functools.partial(tracked.read_one, oid)))
            except SourceError as exc:
                if exc.status != 404:
                    raise
                ledger.forget(oid)  # deleted: there is nothing left to follow

    def _call(self, call: Callable[[], T]) -> T:
        return call_with_retry_after(call, session=self._session, sleep=self._sleep)

    def _count_charge(self, charge: Charge) -> None:
        self.totals.charges += 1
        if charge.status == "failed":
            kind = failure_class(
                outcome_type=charge.outcome_type,
                network_status=charge.network_status,
                failure_code=charge.failure_code,
                reason=charge.outcome_reason,
            )
            self.totals.charges_failed[(charge.failure_code or UNKNOWN, kind)] += 1

    def _count_refund(self, _refund: Refund) -> None:
        self.totals.refunds += 1

    def _count_dispute(self, _dispute: Dispute) -> None:
        self.totals.disputes += 1


def _charge_settled(charge: Charge) -> bool:
    return charge.status in ("succeeded", "failed")


def _charge_pending(charge: Charge) -> bool:
    return charge.status == "pending"


def _refund_settled(refund: Refund) -> bool:
    return refund.status == "succeeded"


def _refund_pending(refund: Refund) -> bool:
    return refund.status in ("pending", "requires_action")


def _always(_item: object) -> bool:
    return True


def _dispute_open(dispute: Dispute) -> bool:
    return dispute.status in OPEN_DISPUTE
