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
from json import JSONDecodeError
from typing import Any, TypeVar

import requests
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from exporter.sources.base import Collection, Failure
from exporter.sources.pacing import (
    BudgetedSession,
    RateGate,
    SourceError,
    call_with_retry_after,
    parse_retry_after,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DELIVERED = frozenset({"delivered", "read", "partially_delivered"})
FAILED = frozenset({"failed", "undelivered"})
NEVER_COUNTED = frozenset({"canceled", "received", "receiving"})
RATE_LIMIT_CODE = 20429
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Message:
    """An SMS as the source needs it (no body, no phone numbers)."""

    sid: str
    sent: float | None  # Unix time of date_sent
    outbound: bool
    status: str
    error_code: int | None
    price: Decimal | None  # as Twilio gives it: negative for a charge
    currency: str | None


@dataclass(frozen=True)
class MessagePage:
    """One page of messages and the URL of the next one."""

    messages: list[Message]
    next_url: str | None


@dataclass
class TwilioTotals:
    """Running totals since the exporter started."""

    messages: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    cost: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class TwilioView:
    """Everything one successful cycle publishes."""

    messages: int
    failed: dict[str, int]
    cost: dict[str, float]
    balance: float | None
    balance_currency: str | None


def twilio_families(view: TwilioView) -> list[Metric]:
    """The Twilio metric families of one cycle (pure)."""
    messages = CounterMetricFamily(
        "boxoffice_sms_messages",
        "Outbound SMS that reached a final status (delivered, failed, undelivered), each "
        "counted once.",
    )
    messages.add_metric([], float(view.messages))
    failed = CounterMetricFamily(
        "boxoffice_sms_messages_failed",
        "Outbound SMS that ended failed or undelivered, by Twilio error_code "
        "('unknown' when none).",
        labels=["error_code"],
    )
    for code in sorted(view.failed):
        failed.add_metric([code], float(view.failed[code]))
    cost = CounterMetricFamily(
        "boxoffice_sms_cost",
        "What Twilio billed for the counted SMS, in major currency units.",
        labels=["currency"],
    )
    for currency in sorted(view.cost):
        cost.add_metric([currency], view.cost[currency])
    balance = GaugeMetricFamily(
        "boxoffice_twilio_balance",
        "Twilio account balance in major currency units.",
        labels=["currency"],
    )
    if view.balance is not None and view.balance_currency:
        balance.add_metric([view.balance_currency], view.balance)
    return [messages, failed, cost, balance]


class BudgetedHttpClient(HttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """The Twilio SDK's HTTP client, on our budgeted session.

    Error statuses become a :class:`SourceError` here, before the SDK builds an exception
    (whose text holds the request URL): the Twilio error code and message, Retry-After
    for 429, and nothing of the credentials. Requests are not logged (the SDK's client
    logs each one at INFO) and never retried by this layer.
    """

    def __init__(self, session: BudgetedSession, timeout: float) -> None:
        super().__init__(log, False, timeout)
        self._session = session

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request; return the SDK's Response for 2xx/3xx, raise SourceError else."""
        try:
            answer = self._session.request(
                method.upper(),
                url,
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout or self.timeout,
                allow_redirects=allow_redirects,
            )
        except requests.Timeout:
            raise SourceError("timeout", "Twilio API: no answer in time") from None
        except requests.RequestException:
            raise SourceError("connection", "Twilio API: cannot connect") from None
        if answer.status_code >= 400:
            raise _error(answer)
        return Response(answer.status_code, answer.text, answer.headers)


def _error(answer: requests.Response) -> SourceError:
    status = answer.status_code
    try:
        body = answer.json()
    except ValueError:
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    detail = f"HTTP {status}" + (f", Twilio error {code}" if code else "")
    detail += f": {message.splitlines()[0][:200]}" if message else ""
    if status == 429 or code == RATE_LIMIT_CODE:
        retry = parse_retry_after(answer.headers.get("Retry-After"), time.time())
        return SourceError(
            "rate_limited", f"Twilio API: {detail}", retry_after=retry, status=status
        )
    reason = "auth" if status in (401, 403) else "http"
    return SourceError(reason, f"Twilio API: {detail}", status=status)


def make_client(
    account_sid: str, auth_token: str, *, api_base: str, session: BudgetedSession, timeout: float
) -> Client:
    """A Twilio REST client that sends through ``session`` to ``api_base``."""
    client = Client(
        account_sid,
        auth_token,
        account_sid=account_sid,
        http_client=BudgetedHttpClient(session, timeout),
    )
    client.api.base_url = api_base.rstrip("/")
    return client


class TwilioApi:
    """The edge: SDK calls to our records; malformed bodies become decode failures."""

    def __init__(self, client: Client, account_sid: str) -> None:
        self._account = client.api.v2010.accounts(account_sid)

    def messages_since(self, since: datetime, page_size: int) -> MessagePage:
        """The first page of messages sent at or after ``since``."""
        return _page(
            _decode(
                functools.partial(
                    self._account.messages.page, date_sent_after=since, page_size=page_size
                )
            )
        )

    def messages_at(self, url: str) -> MessagePage:
        """A further page, by the URL Twilio gave for it."""
        return _page(_decode(functools.partial(self._account.messages.get_page, url)))

    def message(self, sid: str) -> Message:
        """One message by SID."""
        return _decode(lambda: _message(self._account.messages(sid).fetch()))

    def balance(self) -> tuple[float, str]:
        """The account balance and its currency."""
        found = _decode(self._account.balance.fetch)
        return _decode(lambda: (float(Decimal(str(found.balance))), str(found.currency).lower()))


def _decode(call: Callable[[], T]) -> T:
    try:
        return call()
    except SourceError:
        raise
    except JSONDecodeError:
        raise SourceError("decode", "Twilio API: the response is not valid JSON") from None
    except Exception as exc:  # a field missing or mistyped, or the SDK unable to read a page
        raise SourceError(
            "decode", f"unexpected answer from Twilio: {type(exc).__name__}"
        ) from None


def _page(page: Any) -> MessagePage:
    return _decode(lambda: MessagePage([_message(m) for m in page], page.next_page_url))


def _message(obj: Any) -> Message:
    sent = obj.date_sent
    price = obj.price
    return Message(
        sid=str(obj.sid),
        sent=sent.timestamp() if isinstance(sent, datetime) else None,
        outbound=str(obj.direction or "").startswith("outbound"),
        status=str(obj.status or ""),
        error_code=int(obj.error_code) if obj.error_code is not None else None,
        price=Decimal(str(price)) if price not in (None, "") else None,
        currency=str(obj.price_unit).lower() if obj.price_unit else None,
    )


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
        wait = self._gate.wait_left()
        if wait > 0:
            message = f"Twilio answered 429; not calling it for another {wait:.1f}s"
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
        return Collection(tuple(twilio_families(view)))

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
                page = self._call(functools.partial(self._api.messages_at, self._next_url))
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
