"""Sending one SMS: through the official Twilio SDK, or only logged (dry run).

The SDK sends through :class:`~exporter.twilio_http.QuietHttpClient`, which turns every
error status into a :class:`SendError` before the SDK builds its own exception (whose text
holds the request URL): the Twilio error code, whether a retry can help, Retry-After for
429, and whether Twilio may have accepted the message anyway (a read timeout). Nothing is
retried here; the delivery decides, within the webhook's deadline.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import requests
from twilio.rest import Client

from exporter.printable import log_safe
from exporter.sources.pacing import parse_retry_after
from exporter.twilio_http import QuietHttpClient

log = logging.getLogger(__name__)

_PHONE = re.compile(r"\+?\d[\d ().-]{5,}\d")
_LOGGED_BODY_LIMIT = 2000  # longer than any SMS max_segments allows (10 x 153)
RATE_LIMIT_CODES = frozenset({20429, 14107})
# Errors about the recipient itself (invalid, unreachable, opted out, not a mobile,
# region not enabled): no retry can fix them, so they are recorded and never retried.
RECIPIENT_CODES = frozenset({21211, 21214, 21217, 21219, 21408, 21610, 21612, 21614})


class SendError(Exception):
    """Twilio did not take the message; the text holds no credential and no phone number."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        code: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.code = code
        self.retry_after = retry_after
        self.ambiguous = ambiguous  # Twilio may have accepted it before the failure


@dataclass(frozen=True)
class Sent:
    """Twilio accepted the message."""

    sid: str


class Sender(Protocol):
    """Sends one SMS within ``timeout`` seconds, or raises SendError."""

    def send(self, to: str, body: str, *, timeout: float) -> Sent:
        """Send ``body`` to ``to``."""


def mask(number: str) -> str:
    """A phone number as logs show it: country code and the last two digits only."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def _transport_error(exc: requests.RequestException) -> SendError:
    if isinstance(exc, requests.ConnectTimeout):
        return SendError("timeout", "Twilio: cannot connect in time", retryable=True)
    if isinstance(exc, requests.Timeout):
        # Twilio may have accepted the message before the answer was lost.
        return SendError("timeout", "Twilio: no answer in time", retryable=True, ambiguous=True)
    return SendError("connection", "Twilio: cannot connect", retryable=True)


def _error(answer: requests.Response, now: float) -> SendError:
    status = answer.status_code
    try:
        body = answer.json()
    except ValueError:
        body = None
    raw_code = body.get("code") if isinstance(body, dict) else None
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    detail = f"Twilio: HTTP {status}" + (f", error {code}" if code else "")
    if message.strip():
        # Twilio's messages quote the number ("The 'To' number +1... is not valid").
        detail += ": " + _PHONE.sub(lambda m: mask(m.group()), message.splitlines()[0][:200])
    if status == 429 or code in RATE_LIMIT_CODES:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"), now)
        return SendError("rate_limited", detail, retryable=True, code=code, retry_after=retry_after)
    if status >= 500:
        return SendError("twilio_unavailable", detail, retryable=True, code=code)
    if status in (401, 403):
        # Credentials an operator will fix: keep Alertmanager retrying meanwhile.
        return SendError("auth", detail, retryable=True, code=code)
    if code in RECIPIENT_CODES:
        return SendError("rejected", detail, retryable=False, code=code)
    # Any other 4xx is our configuration (sender number, messaging service): retryable so
    # the page is not lost while it is fixed, and visible as failures meanwhile.
    return SendError("twilio_refused", detail, retryable=True, code=code)


class TwilioSender:
    """Sends through the Twilio SDK to ``api_base`` (Twilio's, or a local fake in tests)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        messaging_service_sid: str | None,
        api_base: str,
        session: requests.Session | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if (from_number is None) == (messaging_service_sid is None):
            raise ValueError("give exactly one of from_number and messaging_service_sid")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._from = from_number
        self._service = messaging_service_sid
        self._api_base = api_base.rstrip("/")
        self._session = session or requests.Session()
        self._wall = wall

    def send(self, to: str, body: str, *, timeout: float) -> Sent:
        """Create one message; SendError when Twilio does not take it."""
        # A client per message: its HTTP client carries this message's timeout, and
        # concurrent webhooks never share one.
        client = Client(
            self._account_sid,
            self._auth_token,
            account_sid=self._account_sid,
            http_client=QuietHttpClient(
                self._session,
                timeout,
                error=lambda answer: _error(answer, self._wall()),
                failed=_transport_error,
            ),
        )
        client.api.base_url = self._api_base
        messages = client.api.v2010.accounts(self._account_sid).messages
        try:
            if self._service is not None:
                created = messages.create(to=to, body=body, messaging_service_sid=self._service)
            else:
                created = messages.create(to=to, body=body, from_=self._from)
            sid = created.sid
        except SendError:
            raise
        except Exception as exc:  # a 2xx Twilio answered we cannot read
            raise SendError(
                "decode",
                f"Twilio: unexpected answer ({type(exc).__name__})",
                retryable=True,
                ambiguous=True,
            ) from None
        if not isinstance(sid, str) or not sid:
            raise SendError(
                "decode", "Twilio: answer without a SID", retryable=True, ambiguous=True
            )
        return Sent(sid)

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()


class DryRunSender:
    """Logs each SMS (number masked) instead of sending it."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._count = 0

    def send(self, to: str, body: str, *, timeout: float) -> Sent:
        """Log the message; never fails."""
        self._count += 1
        self._log.info("dry run: SMS to %s: %s", mask(to), log_safe(body, _LOGGED_BODY_LIMIT))
        return Sent(f"dry-run-{self._count}")
