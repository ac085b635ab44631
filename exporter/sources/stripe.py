"""The Stripe source: charges, refunds and disputes counted once each, balance, webhook health.

Three layers, as everywhere in boxoffice: :class:`StripeApi` is the edge (SDK objects become
our records, SDK exceptions become a :class:`SourceError` without keys or URLs in it),
:class:`StripeSource` keeps the counting state between cycles (a
:class:`~exporter.sources.ledger.CreatedLedger` per list), and :func:`stripe_families` is a
pure function from a :class:`StripeView` to metric families.

Counting rules (README "Stripe, Twilio and HTTP sources"):

* a charge counts once, when it is first seen with a final status (succeeded or failed);
  pending charges are followed until they settle, so a pending -> failed charge lands in
  ``boxoffice_stripe_charges_failed_total`` and never twice in the total;
* a refund counts once, when it has succeeded (failed or canceled refunds never count);
* a dispute counts once when first seen; it is followed while open for the open gauge.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import requests
import stripe
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.sources.base import Collection, Failure
from exporter.sources.ledger import CreatedLedger, Query, Rules
from exporter.sources.pacing import (
    BudgetedSession,
    RateGate,
    SourceError,
    call_with_retry_after,
    parse_retry_after,
)
from exporter.sources.samples import major_units

log = logging.getLogger(__name__)

PAGE_LIMIT = 100  # Stripe's largest page
# Disputes may stay open for months (card network review); at start, look this far back so
# the open gauge includes them.
DISPUTE_LOOKBACK = 120 * 86400
OPEN_DISPUTE = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Charge:
    """A charge as the source needs it."""

    id: str
    created: int
    status: str  # succeeded | pending | failed
    failure_code: str | None


@dataclass(frozen=True)
class Refund:
    """A refund as the source needs it."""

    id: str
    created: int
    status: str  # pending | requires_action | succeeded | failed | canceled


@dataclass(frozen=True)
class Dispute:
    """A dispute as the source needs it."""

    id: str
    created: int
    status: str


R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a Stripe list."""

    items: list[R]
    has_more: bool


@dataclass(frozen=True)
class Balance:
    """One balance amount: currency, state (available | pending) and minor units."""

    currency: str
    state: str
    minor: int


@dataclass
class StripeTotals:
    """Running totals since the exporter started."""

    charges: int = 0
    charges_failed: Counter[str] = field(default_factory=Counter)
    refunds: int = 0
    disputes: int = 0


@dataclass(frozen=True)
class StripeView:
    """Everything one successful cycle publishes."""

    charges: int
    charges_failed: dict[str, int]
    refunds: int
    disputes: int
    disputes_open: int
    balance: tuple[Balance, ...]
    events_pending_webhooks: int
    webhook_endpoints: dict[str, int]


def stripe_families(view: StripeView) -> list[Metric]:
    """The Stripe metric families of one cycle (pure)."""
    charges = CounterMetricFamily(
        "boxoffice_stripe_charges",
        "Stripe charges that reached a final status (succeeded or failed), each counted once.",
    )
    charges.add_metric([], float(view.charges))
    failed = CounterMetricFamily(
        "boxoffice_stripe_charges_failed",
        "Stripe charges that failed, by failure_code ('unknown' when Stripe gives none).",
        labels=["failure_code"],
    )
    for code in sorted(view.charges_failed):
        failed.add_metric([code], float(view.charges_failed[code]))
    refunds = CounterMetricFamily(
        "boxoffice_stripe_refunds", "Stripe refunds that succeeded, each counted once."
    )
    refunds.add_metric([], float(view.refunds))
    disputes = CounterMetricFamily(
        "boxoffice_stripe_disputes", "Stripe disputes opened, each counted once."
    )
    disputes.add_metric([], float(view.disputes))
    disputes_open = GaugeMetricFamily(
        "boxoffice_stripe_disputes_open",
        "Stripe disputes open now (needing a response or under review).",
        value=float(view.disputes_open),
    )
    balance = GaugeMetricFamily(
        "boxoffice_stripe_balance",
        "Stripe account balance in major currency units, by currency and state "
        "(available, pending).",
        labels=["currency", "state"],
    )
    sums: dict[tuple[str, str], float] = {}
    for item in view.balance:
        key = (item.currency.lower(), item.state)
        sums[key] = sums.get(key, 0.0) + major_units(item.minor, item.currency)
    for key in sorted(sums):
        balance.add_metric(list(key), sums[key])
    pending = GaugeMetricFamily(
        "boxoffice_stripe_events_pending_webhooks",
        "Recent Stripe events that still have webhook deliveries pending (not yet delivered "
        "to every endpoint).",
        value=float(view.events_pending_webhooks),
    )
    endpoints = GaugeMetricFamily(
        "boxoffice_stripe_webhook_endpoints",
        "Stripe webhook endpoints by status (enabled, disabled).",
        labels=["status"],
    )
    for status in sorted({"enabled", "disabled", *view.webhook_endpoints}):
        endpoints.add_metric([status], float(view.webhook_endpoints.get(status, 0)))
    return [charges, failed, refunds, disputes, disputes_open, balance, pending, endpoints]


def make_client(
    api_key: str, *, api_base: str, session: BudgetedSession, timeout: float
) -> stripe.StripeClient:
    """A StripeClient on ``session`` that never retries by itself (the source decides)."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout, session=session),
    )


class StripeApi:
    """The edge: calls the SDK, returns our records, turns failures into SourceError."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self._v1 = client.v1

    def charges(self, query: Query) -> Page[Charge]:
        """One page of charges created in the query's range."""
        found = self._call(
            "list charges",
            functools.partial(self._v1.charges.list, _list_params(query)),
        )
        return Page([_charge(c) for c in found.data], bool(found.has_more))

    def charge(self, charge_id: str) -> Charge:
        """One charge by id."""
        return _charge(self._call("read a charge", lambda: self._v1.charges.retrieve(charge_id)))

    def refunds(self, query: Query) -> Page[Refund]:
        """One page of refunds created in the query's range."""
        found = self._call(
            "list refunds",
            functools.partial(self._v1.refunds.list, _list_params(query)),
        )
        return Page([_refund(r) for r in found.data], bool(found.has_more))

    def refund(self, refund_id: str) -> Refund:
        """One refund by id."""
        return _refund(self._call("read a refund", lambda: self._v1.refunds.retrieve(refund_id)))

    def disputes(self, query: Query) -> Page[Dispute]:
        """One page of disputes created in the query's range."""
        found = self._call(
            "list disputes",
            functools.partial(self._v1.disputes.list, _list_params(query)),
        )
        return Page([_dispute(d) for d in found.data], bool(found.has_more))

    def dispute(self, dispute_id: str) -> Dispute:
        """One dispute by id."""
        return _dispute(
            self._call("read a dispute", lambda: self._v1.disputes.retrieve(dispute_id))
        )

    def balance(self) -> list[Balance]:
        """The account balance, available and pending, per currency."""
        found = self._call("read the balance", self._v1.balance.retrieve)
        return _convert(
            lambda: [
                *(Balance(str(b.currency), "available", int(b.amount)) for b in found.available),
                *(Balance(str(b.currency), "pending", int(b.amount)) for b in found.pending),
            ]
        )

    def events_pending_webhooks(self, since: int, max_pages: int) -> int:
        """Events created since ``since`` whose webhooks are not all delivered yet."""
        pending, cursor = 0, None
        for _ in range(max_pages):
            params: Any = {"limit": PAGE_LIMIT, "created": {"gte": since}}
            params["delivery_success"] = False
            if cursor is not None:
                params["starting_after"] = cursor
            found = self._call("list events", functools.partial(self._v1.events.list, params))
            pending += _convert(functools.partial(_count_pending, found.data))
            if not found.has_more or not found.data:
                return pending
            cursor = str(found.data[-1].id)
        log.warning(
            "more than %d pages of undelivered events; the gauge is a lower bound", max_pages
        )
        return pending

    def webhook_endpoints(self, max_pages: int) -> dict[str, int]:
        """Webhook endpoints counted by status."""
        counts: Counter[str] = Counter()
        cursor = None
        for _ in range(max_pages):
            params: Any = {"limit": PAGE_LIMIT}
            if cursor is not None:
                params["starting_after"] = cursor
            found = self._call(
                "list webhook endpoints", functools.partial(self._v1.webhook_endpoints.list, params)
            )
            counts.update(_convert(functools.partial(_statuses, found.data)))
            if not found.has_more or not found.data:
                break
            cursor = str(found.data[-1].id)
        return dict(counts)

    @staticmethod
    def _call(what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except stripe.RateLimitError as exc:
            retry = parse_retry_after((exc.headers or {}).get("Retry-After"), time.time())
            raise SourceError(
                "rate_limited", f"{what}: HTTP 429 rate limited", retry_after=retry
            ) from None
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            raise SourceError("auth", f"{what}: HTTP {exc.http_status}: {_text(exc)}") from None
        except stripe.APIConnectionError as exc:
            if isinstance(exc.__cause__, requests.Timeout):
                raise SourceError("timeout", f"{what}: no answer in time") from None
            raise SourceError("connection", f"{what}: cannot reach the Stripe API") from None
        except stripe.StripeError as exc:
            status = exc.http_status
            if status is not None and 200 <= status < 300:
                raise SourceError("decode", f"{what}: the response is not valid JSON") from None
            if exc.json_body is None:
                raise SourceError(
                    "http", f"{what}: HTTP {status} without a Stripe error body"
                ) from None
            raise SourceError("http", f"{what}: HTTP {status}: {_text(exc)}") from None


def _text(exc: stripe.StripeError) -> str:
    # Stripe's own message; the key is masked in it already and the log redacts it anyway.
    message = (exc.user_message or type(exc).__name__).strip()
    return message.splitlines()[0][:200] if message else type(exc).__name__


def _convert(build: Callable[[], T]) -> T:
    """Run an SDK-object conversion; a missing or mistyped field is a decode failure."""
    try:
        return build()
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise SourceError("decode", f"unexpected object from Stripe: {exc}") from None


def _list_params(query: Query) -> Any:
    params: dict[str, Any] = {
        "limit": PAGE_LIMIT,
        "created": {"gte": query.lower, "lte": query.upper},
    }
    if query.cursor:
        params["starting_after"] = query.cursor
    return params


def _count_pending(events: list[Any]) -> int:
    return sum(1 for event in events if int(event.pending_webhooks) > 0)


def _statuses(endpoints: list[Any]) -> list[str]:
    return [str(endpoint.status) for endpoint in endpoints]


def _charge(obj: Any) -> Charge:
    return _convert(
        lambda: Charge(
            str(obj.id),
            int(obj.created),
            str(obj.status),
            str(obj.failure_code) if getattr(obj, "failure_code", None) else None,
        )
    )


def _refund(obj: Any) -> Refund:
    return _convert(lambda: Refund(str(obj.id), int(obj.created), str(obj.status)))


def _dispute(obj: Any) -> Dispute:
    return _convert(lambda: Dispute(str(obj.id), int(obj.created), str(obj.status)))


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
        wait = self._gate.wait_left()
        if wait > 0:
            message = f"Stripe answered 429; not calling it for another {wait:.1f}s"
            return Collection(failures=(Failure("rate_limited", message),))
        self._session.deadline = self._monotonic() + self.timeout
        try:
            view = self._cycle()
        except SourceError as exc:
            if exc.reason == "rate_limited" and exc.retry_after is not None:
                self._gate.close_for(exc.retry_after)
            return Collection(failures=(Failure(exc.reason, exc.message),))
        finally:
            self._session.deadline = None
        return Collection(tuple(stripe_families(view)))

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def watching(self) -> dict[str, int]:
        """How many objects are followed until they settle: pending charges and refunds,
        open disputes."""
        names = ("charges", "refunds", "disputes")
        return {name: len(t.ledger.watched) for name, t in zip(names, self._lists, strict=True)}

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
            page = self._call(functools.partial(tracked.list_page, query))
            if ledger.take_page(page.items, page.has_more):
                break
        # Objects still open but behind the scanned range are re-read one by one.
        for oid in ledger.stale_watched(self._max_pages):
            ledger.observe(self._call(functools.partial(tracked.read_one, oid)))

    def _call(self, call: Callable[[], T]) -> T:
        return call_with_retry_after(call, session=self._session, sleep=self._sleep)

    def _count_charge(self, charge: Charge) -> None:
        self.totals.charges += 1
        if charge.status == "failed":
            self.totals.charges_failed[charge.failure_code or UNKNOWN] += 1

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
