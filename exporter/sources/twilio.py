"""The Twilio source: each outbound SMS counted once at its final status, cost, account balance.

The Messages API cannot filter by status, so every cycle lists the messages sent within a
trailing window (``DateSent>=``), newest first, and decides per message:

* final status (delivered or read; failed or undelivered) and not counted yet: count it,
  in ``boxoffice_sms_messages_failed_total{error_code}`` too when it failed, and add the
  absolute value of its price (Twilio prices are negative) to the cost by currency;
* not final yet (queued, sending, sent, accepted, scheduled): remember its SID as in flight.
  In-flight messages that fall out of the window are re-read one by one;
* canceled, or inbound: never counted.

SIDs counted are kept only while they can appear in the window again. Both maps are bounded.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from prometheus_client.core import Metric
from twilio.rest import Client

from exporter.sources.base import Collection
from exporter.sources.families import family
from exporter.sources.pacing import (
    BudgetedSession,
    RateGate,
    SourceError,
    call_with_retry_after,
    paced_cycle,
)
from exporter.sources.twilio_api import Message, TwilioApi

log = logging.getLogger(__name__)

T = TypeVar("T")

DELIVERED = frozenset({"delivered", "read", "partially_delivered"})
FAILED = frozenset({"failed", "undelivered"})
NEVER_COUNTED = frozenset({"canceled", "received", "receiving"})
UNKNOWN = "unknown"


@dataclass
class TwilioTotals:
    """Running totals since the exporter started."""

    messages: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    cost: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TwilioView:
    """Everything one successful cycle publishes."""

    messages: int
    failed: dict[str, int]
    cost: dict[str, float]
    balance: float | None
    balance_currency: str | None


def twilio_families(view: TwilioView) -> list[Metric]:
    """The Twilio metric families of one cycle (pure)."""
    messages = family("boxoffice_sms_messages_total", value=float(view.messages))
    failed = family("boxoffice_sms_messages_failed_total")
    for code in sorted(view.failed):
        failed.add_metric([code], float(view.failed[code]))
    cost = family("boxoffice_sms_cost_total")
    for currency in sorted(view.cost):
        cost.add_metric([currency], view.cost[currency])
    balance = family("boxoffice_twilio_balance")
    if view.balance is not None and view.balance_currency:
        balance.add_metric([view.balance_currency], view.balance)
    return [messages, failed, cost, balance]


class TwilioSource:
    """Collects the Twilio metrics; one instance keeps its running totals across cycles."""

    name = "twilio"

    def __init__(
        self,
        *,
        client: Client,
        account_sid: str,
        session: BudgetedSession,
        interval: float,
        timeout: float,
        window: float,
        page_size: int,
        max_pages: int,
        max_in_flight: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._api = TwilioApi(client, account_sid)
        self._session = session
        self._window = window
        self._page_size = page_size
        self._max_pages = max_pages
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._gate = RateGate(max_wait=max(600.0, 10 * interval), monotonic=monotonic)
        self.totals = TwilioTotals()
        # sid -> (date_sent, cost added): kept while the message can be listed again.
        self._counted: dict[str, tuple[float, bool]] = {}
        self.in_flight: OrderedDict[str, float] = OrderedDict()
        self._next_url: str | None = None  # a scan cut by the page cap resumes here

    def collect(self) -> Collection:
        """One cycle: list the window (resuming a cut scan), re-read old in-flight SMS, balance."""
        return paced_cycle(
            "Twilio",
            self._gate,
            self._session,
            self.timeout,
            lambda: twilio_families(self._cycle()),
        )

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def _cycle(self) -> TwilioView:
        now = self._clock()
        lower = now - self._window
        self._scan(lower)
        self._reread_stale(lower)
        balance, currency = self._call(self._api.balance)
        totals = self.totals
        return TwilioView(
            messages=totals.messages,
            failed=dict(totals.failed),
            cost={c: float(v) for c, v in totals.cost.items()},
            balance=balance,
            balance_currency=currency,
        )

    def _scan(self, lower: float) -> None:
        for _ in range(self._max_pages):
            if self._next_url is None:
                since = datetime.fromtimestamp(lower, UTC)
                page = self._call(
                    functools.partial(self._api.messages_since, since, self._page_size)
                )
            else:
                try:
                    page = self._call(functools.partial(self._api.messages_at, self._next_url))
                except SourceError as exc:
                    if exc.status in (400, 404):
                        self._next_url = None  # the page token is no longer valid: rescan
                    raise
            for message in page.messages:
                self.observe(message)
            self._next_url = page.next_url
            if page.next_url is None:
                # The scan is complete: SIDs sent before the window cannot be listed again.
                self._counted = {s: v for s, v in self._counted.items() if v[0] >= lower}
                return

    def _reread_stale(self, lower: float) -> None:
        stale = [sid for sid, sent in self.in_flight.items() if sent < lower][: self._max_pages]
        for sid in stale:
            try:
                message = self._call(functools.partial(self._api.message, sid))
            except SourceError as exc:
                if exc.status != 404:
                    raise
                self.in_flight.pop(sid, None)  # deleted: nothing left to count
                continue
            self.in_flight.move_to_end(sid)
            self.observe(message)

    def observe(self, message: Message) -> None:
        """Count a message once at its final status; follow it until then."""
        if not message.outbound:
            return
        sent = message.sent if message.sent is not None else self._clock()
        counted = self._counted.get(message.sid)
        if counted is not None:
            if not counted[1] and self._add_cost(message):
                self._counted[message.sid] = (counted[0], True)
            return
        if message.status in DELIVERED or message.status in FAILED:
            self.totals.messages += 1
            if message.status in FAILED:
                code = str(message.error_code) if message.error_code is not None else UNKNOWN
                self.totals.failed[code] += 1
            self._counted[message.sid] = (sent, self._add_cost(message))
            self.in_flight.pop(message.sid, None)
        elif message.status in NEVER_COUNTED:
            self.in_flight.pop(message.sid, None)
        else:
            self.in_flight[message.sid] = sent
            while len(self.in_flight) > self._max_in_flight:
                dropped, _sent = self.in_flight.popitem(last=False)
                log.warning("too many SMS in flight; no longer following %s", dropped)

    def _add_cost(self, message: Message) -> bool:
        if message.price is None or not message.currency:
            return False  # Twilio fills the price in a little later: added when seen with it
        cost = self.totals.cost
        cost[message.currency] = cost.get(message.currency, Decimal(0)) + abs(message.price)
        return True

    def _call(self, call: Callable[[], T]) -> T:
        return call_with_retry_after(call, session=self._session, sleep=self._sleep)
