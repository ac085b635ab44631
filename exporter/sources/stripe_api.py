"""The Stripe API edge: SDK calls in, our own records out, SDK failures as SourceError.

Nothing past this module sees a Stripe SDK object or exception: error texts are rebuilt from
the status, the error code and Stripe's message, never from the exception's string (which
can carry request details), and a field missing from an answer is a ``decode`` failure.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import requests
import stripe

from exporter.sources.ledger import Query
from exporter.sources.pacing import BudgetedSession, SourceError, parse_retry_after

log = logging.getLogger(__name__)

PAGE_LIMIT = 100  # Stripe's largest page


@dataclass(frozen=True, kw_only=True)
class Charge:
    """A charge as the source needs it."""

    id: str
    created: int
    status: str  # succeeded | pending | failed
    failure_code: str | None
    outcome_type: str | None = (
        None  # authorized | manual_review | issuer_declined | blocked | invalid
    )
    network_status: str | None = None  # approved_by_network | declined_by_network | …
    outcome_reason: str | None = None  # e.g. a decline code, highest_risk_level, rule


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
                    "http", f"{what}: HTTP {status} without a Stripe error body", status=status
                ) from None
            raise SourceError(
                "http", f"{what}: HTTP {status}: {_text(exc)}", status=status
            ) from None


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
    outcome = getattr(obj, "outcome", None)
    return _convert(
        lambda: Charge(
            id=str(obj.id),
            created=int(obj.created),
            status=str(obj.status),
            failure_code=_text_field(obj, "failure_code"),
            outcome_type=_text_field(outcome, "type"),
            network_status=_text_field(outcome, "network_status"),
            outcome_reason=_text_field(outcome, "reason"),
        )
    )


def _text_field(obj: Any, name: str) -> str | None:
    """A string field of an SDK object, None when the object or the field is absent or null."""
    value = getattr(obj, name, None) if obj is not None else None
    return str(value) if value else None


def _refund(obj: Any) -> Refund:
    return _convert(lambda: Refund(str(obj.id), int(obj.created), str(obj.status)))


def _dispute(obj: Any) -> Dispute:
    return _convert(lambda: Dispute(str(obj.id), int(obj.created), str(obj.status)))
