"""A local Stripe API: the real object shapes (Stripe's own fixtures), list envelopes and errors.

Objects are built from ``tests/reference/stripe-openapi-fixtures3.json`` (Stripe's
example object for each resource) with the fields a test sets. Lists behave like Stripe's:
newest first, ``created[gte]``/``created[lte]`` filters, ``limit`` up to 100,
``starting_after`` cursors, ``has_more``; ``delivery_success=false`` on events.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.fakehttp import FakeServer, Reply, Request

FIXTURES = Path(__file__).resolve().parents[1] / "reference"
FIXTURES_FILE = "stripe-openapi-fixtures3.json"
API_KEY = "rk_test_51BoxofficeRestrictedReadOnlyKey0123456789abcdef"


@cache
def _fixtures() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads((FIXTURES / FIXTURES_FILE).read_text())["resources"]
    return resources


def resource(kind: str, **fields: Any) -> dict[str, Any]:
    """Stripe's example object of ``kind`` with ``fields`` replaced."""
    obj = copy.deepcopy(_fixtures()[kind])
    obj.update(fields)
    return obj


def outcome(
    status: str,
    reason: str | None,
    *,
    kind: str | None = None,
    network_status: str | None = None,
) -> dict[str, Any]:
    """Stripe's ``outcome`` of a charge: authorized, or declined by the issuer for ``reason``.

    ``kind`` and ``network_status`` override Stripe's usual pair, e.g. ``blocked`` and
    ``not_sent_to_network`` for a charge Radar blocked, or ``invalid``.
    """
    fields = dict(_fixtures()["charge"]["outcome"])
    if status == "succeeded":
        fields.update(type="authorized", network_status="approved_by_network", reason=None)
        fields["seller_message"] = "Payment complete."
    elif status == "failed":
        fields.update(type="issuer_declined", network_status="declined_by_network", reason=reason)
        fields["seller_message"] = f"The bank returned the decline code `{reason}`."
    else:
        return fields | {"type": "authorized", "network_status": None}
    if kind is not None:
        fields["type"] = kind
    if network_status is not None:
        fields["network_status"] = network_status
    return fields


def rate_limit_reply(retry_after: float | None = 1) -> Reply:
    """Stripe's answer to too many requests."""
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return Reply.json(
        429,
        {
            "error": {
                "code": "rate_limit",
                "message": "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                "type": "invalid_request_error",
            }
        },
        **headers,
    )


def server_error_reply() -> Reply:
    """Stripe's answer when something went wrong on its side."""
    return Reply.json(500, {"error": {"type": "api_error", "message": "An unknown error occurred"}})


_LISTS = {
    "/v1/charges": "charge",
    "/v1/refunds": "refund",
    "/v1/disputes": "dispute",
    "/v1/events": "event",
    "/v1/webhook_endpoints": "webhook_endpoint",
}
_PREFIX = {
    "charge": "ch",
    "refund": "re",
    "dispute": "dp",
    "event": "evt",
    "webhook_endpoint": "we",
}


class FakeStripe(FakeServer):
    """Stripe's v1 API for charges, refunds, disputes, events, webhook endpoints and balance."""

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.other_keys: set[str] = set()  # more keys of the same account (replicas' own)
        self._state_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _PREFIX}
        self.hidden: set[str] = set()  # created but not listed yet (Stripe's visibility lag)
        self.balance = resource(
            "balance",
            available=[{"amount": 125050, "currency": "usd", "source_types": {"card": 125050}}],
            pending=[
                {"amount": 9900, "currency": "usd", "source_types": {"card": 9900}},
                {"amount": 5000, "currency": "jpy", "source_types": {"card": 5000}},
            ],
        )

    def add(self, kind: str, created: int, *, hidden: bool = False, **fields: Any) -> str:
        """Create an object; ``hidden`` ones are not listed until :meth:`reveal`."""
        with self._state_lock:
            oid = f"{_PREFIX[kind]}_{next(self._ids):024d}"
            self.objects[kind][oid] = resource(kind, id=oid, created=created, **fields)
            if hidden:
                self.hidden.add(oid)
        return oid

    def add_charge(
        self, created: int, status: str = "succeeded", failure_code: str | None = None, **kw: Any
    ) -> str:
        """A charge; failed ones get a failure code, message and outcome like Stripe's.

        A failed charge's ``outcome`` is an issuer decline unless ``outcome`` is given
        (e.g. :func:`blocked_outcome`); a succeeded one is authorized.
        """
        fields: dict[str, Any] = {
            "status": status,
            "paid": status == "succeeded",
            "captured": status == "succeeded",
            "failure_code": failure_code,
            "failure_message": "Your card was declined." if failure_code else None,
            "outcome": outcome(status, failure_code),
        }
        fields.update(kw)
        return self.add("charge", created, **fields)

    def update(self, kind: str, oid: str, **fields: Any) -> None:
        """Change an object (a status moving on)."""
        with self._state_lock:
            self.objects[kind][oid].update(fields)

    def reveal(self, oid: str) -> None:
        """Make a hidden object visible in lists."""
        with self._state_lock:
            self.hidden.discard(oid)

    def answer(self, request: Request) -> Reply:
        """Route a request like api.stripe.com would."""
        keys = {self.api_key, *self.other_keys}
        if request.headers.get("Authorization") not in {f"Bearer {k}" for k in keys}:
            return Reply.json(
                401,
                {
                    "error": {
                        "message": "Invalid API Key provided: rk_test_****",
                        "type": "invalid_request_error",
                    }
                },
            )
        if request.method != "GET":
            return Reply.json(
                403,
                {"error": {"type": "invalid_request_error", "message": "read-only key"}},
            )
        if request.path == "/v1/balance":
            return Reply.json(200, self.balance)
        if request.path in _LISTS:
            return self._list(request, _LISTS[request.path])
        for path, kind in _LISTS.items():
            if request.path.startswith(path + "/"):
                oid = request.path[len(path) + 1 :]
                with self._state_lock:
                    found = self.objects[kind].get(oid)
                if found is not None:
                    return Reply.json(200, found)
        return Reply.json(
            404,
            {
                "error": {
                    "code": "resource_missing",
                    "message": "No such object",
                    "type": "invalid_request_error",
                }
            },
        )

    def _list(self, request: Request, kind: str) -> Reply:
        query = dict(request.query)
        limit = int(query.get("limit", "10"))
        if not 1 <= limit <= 100:
            return Reply.json(
                400,
                {"error": {"type": "invalid_request_error", "message": "Invalid limit"}},
            )
        with self._state_lock:
            items = [o for oid, o in self.objects[kind].items() if oid not in self.hidden]
        if "created[gte]" in query:
            items = [o for o in items if o["created"] >= int(query["created[gte]"])]
        if "created[lte]" in query:
            items = [o for o in items if o["created"] <= int(query["created[lte]"])]
        if query.get("delivery_success") == "false":
            items = [o for o in items if o.get("pending_webhooks", 0) > 0]
        items.sort(key=lambda o: (o["created"], o["id"]), reverse=True)
        cursor = query.get("starting_after")
        if cursor:
            ids = [o["id"] for o in items]
            if cursor not in ids:
                return Reply.json(
                    400,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": f"No such {kind}: '{cursor}'",
                            "param": "starting_after",
                        }
                    },
                )
            items = items[ids.index(cursor) + 1 :]
        with self._state_lock:
            page = copy.deepcopy(items[:limit])
        return Reply.json(
            200,
            {"object": "list", "url": request.path, "has_more": len(items) > limit, "data": page},
        )

    def requests_with_key(self, key: str) -> int:
        """How many requests came with ``key``."""
        return sum(1 for r in self.requests if r.headers.get("Authorization") == f"Bearer {key}")

    def list_requests(self, path: str) -> int:
        """How many list requests reached ``path``."""
        return sum(1 for r in self.requests if r.path == path)
