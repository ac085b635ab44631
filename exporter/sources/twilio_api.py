"""The Twilio API edge: our HTTP client under the SDK, our own records out of it.

:class:`BudgetedHttpClient` sends the SDK's requests through the budgeted session and turns
error statuses into a ``SourceError`` before the SDK builds an exception (whose text holds
the request URL); :class:`TwilioApi` turns SDK instances into :class:`Message` records.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from json import JSONDecodeError
from typing import Any, TypeVar

import requests
from twilio.rest import Client

from exporter.sources.pacing import BudgetedSession, SourceError, parse_retry_after
from exporter.twilio_http import QuietHttpClient

log = logging.getLogger(__name__)

T = TypeVar("T")

RATE_LIMIT_CODE = 20429


@dataclass(frozen=True, kw_only=True)
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


def _transport_error(exc: requests.RequestException) -> SourceError:
    if isinstance(exc, requests.Timeout):
        return SourceError("timeout", "Twilio API: no answer in time")
    return SourceError("connection", "Twilio API: cannot connect")


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
        http_client=QuietHttpClient(session, timeout, error=_error, failed=_transport_error),
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
