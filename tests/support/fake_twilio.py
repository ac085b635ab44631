"""A local Twilio API 2010-04-01: Messages create/list/fetch and Balance, like Twilio's spec.

Messages are built from the example in Twilio's OpenAPI spec
(``tests/reference/twilio_api_v2010.json``). The list answers with Twilio's envelope
(``messages``, ``next_page_uri``, ``page``, ``page_size``, ``start``, ``end``, ``uri``,
``first_page_uri``, ``previous_page_uri``), newest first, filtered by ``DateSent>``
(on or after), paged by ``PageSize`` and a ``PageToken`` cursor. Errors use Twilio's body
``{"code", "message", "more_info", "status"}``.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tests.support.fake_stripe import FIXTURES
from tests.support.fakehttp import FakeServer, Reply, Request

ACCOUNT_SID = "AC" + "b0" * 16
AUTH_TOKEN = "f00dbabe" * 4  # 32 hex characters, like a real auth token
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@cache
def _example_message() -> dict[str, Any]:
    spec = json.loads((FIXTURES / "twilio_api_v2010.json").read_text())
    listing = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]
    example = listing["responses"]["200"]["content"]["application/json"]["examples"]
    message: dict[str, Any] = example["readFullPage1"]["value"]["messages"][0]
    return message


def error_reply(status: int, code: int, message: str, **headers: str) -> Reply:
    """Twilio's error body."""
    return Reply.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        **headers,
    )


def _create_example() -> dict[str, Any]:
    spec = json.loads((FIXTURES / "twilio_api_v2010.json").read_text())
    create = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]
    examples = create["responses"]["201"]["content"]["application/json"]["examples"]
    message: dict[str, Any] = examples["create"]["value"]
    return message


def rate_limit_reply(retry_after: float = 1) -> Reply:
    """Twilio's answer to too many requests (error 20429)."""
    return error_reply(429, 20429, "Too Many Requests", **{"Retry-After": f"{retry_after:g}"})


def _rfc2822(when: float) -> str:
    return format_datetime(datetime.fromtimestamp(when, UTC))


def _parse_date(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = parsedate_to_datetime(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class FakeTwilio(FakeServer):
    """Twilio's Messages and Balance resources for one account."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._state_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.messages: dict[str, dict[str, Any]] = {}
        self.balance = {"account_sid": account_sid, "balance": "47.25", "currency": "USD"}
        self.invalid_numbers: set[str] = set()  # To numbers answered with error 21211
        self.failing: dict[str, Reply] = {}  # To number -> the answer it gets instead
        self.created: list[dict[str, Any]] = []  # messages created by POST, in order

    def send(self, sent: float, status: str = "queued", **fields: Any) -> str:
        """An outbound message sent at ``sent`` (Unix time); returns its SID."""
        with self._state_lock:
            sid = f"SM{next(self._ids):032x}"
            message = copy.deepcopy(_example_message())
            base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
            message.update(
                account_sid=self.account_sid,
                sid=sid,
                uri=f"{base}.json",
                subresource_uris={"media": f"{base}/Media.json"},
                date_created=_rfc2822(sent),
                date_sent=_rfc2822(sent),
                date_updated=_rfc2822(sent),
                status=status,
                price=None,
                error_code=None,
                error_message=None,
                messaging_service_sid=None,
            )
            message.update(fields)
            self.messages[sid] = message
        return sid

    def update(self, sid: str, **fields: Any) -> None:
        """Change a message (its status moving on, its price filled in)."""
        with self._state_lock:
            self.messages[sid].update(fields)

    def answer(self, request: Request) -> Reply:
        """Route a request like api.twilio.com would."""
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return error_reply(401, 20003, "Authenticate")
        account = f"/2010-04-01/Accounts/{self.account_sid}"
        if request.path == f"{account}/Balance.json":
            return Reply.json(200, self.balance)
        if request.path == f"{account}/Messages.json":
            if request.method == "POST":
                return self._create(request)
            return self._list(request)
        if request.path.startswith(f"{account}/Messages/") and request.path.endswith(".json"):
            sid = request.path[len(f"{account}/Messages/") : -len(".json")]
            with self._state_lock:
                found = copy.deepcopy(self.messages.get(sid))
            if found is not None:
                return Reply.json(200, found)
        return error_reply(404, 20404, f"The requested resource {request.path} was not found")

    def _create(self, request: Request) -> Reply:
        """Messages create: form fields To, From or MessagingServiceSid, Body; 201 and the
        message, or Twilio's 400 errors (21604 no To, 21602 no Body, 21603 no sender,
        21211 invalid To)."""
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        to = form.get("To", "")
        if not to:
            return error_reply(400, 21604, "A 'To' phone number is required.")
        if not form.get("Body"):
            return error_reply(400, 21602, "Message body is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return error_reply(400, 21603, "A 'From' phone number is required.")
        if to in self.failing:
            return self.failing[to]
        if to in self.invalid_numbers:
            return error_reply(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        now = time.time()
        with self._state_lock:
            sid = f"SM{next(self._ids):032x}"
            message = copy.deepcopy(_create_example())
            base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
            message.update(
                account_sid=self.account_sid,
                sid=sid,
                uri=f"{base}.json",
                subresource_uris={"media": f"{base}/Media.json"},
                date_created=_rfc2822(now),
                date_sent=_rfc2822(now),
                date_updated=_rfc2822(now),
                status="queued",
                to=to,
                body=form["Body"],
            )
            message["from"] = form.get("From")
            message["messaging_service_sid"] = form.get("MessagingServiceSid")
            self.messages[sid] = message
            self.created.append(copy.deepcopy(message))
        return Reply.json(201, message)

    def _list(self, request: Request) -> Reply:
        query = dict(request.query)
        size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        with self._state_lock:
            items = [copy.deepcopy(m) for m in self.messages.values()]
        if "DateSent>" in query:
            since = _parse_date(query["DateSent>"])
            items = [m for m in items if m["date_sent"] and _parse_date(m["date_sent"]) >= since]
        items.sort(key=lambda m: (_parse_date(m["date_sent"]), m["sid"]), reverse=True)
        token = query.get("PageToken")
        if token:
            sids = [m["sid"] for m in items]
            after = token.removeprefix("PA")
            items = items[sids.index(after) + 1 :] if after in sids else []
        chunk = items[:size]
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(number: int, token: str | None = None) -> str:
            params = {**filters, "PageSize": str(size), "Page": str(number)}
            if token:
                params["PageToken"] = token
            return f"{request.path}?{urlencode(params)}"

        more = len(items) > size
        return Reply.json(
            200,
            {
                "messages": chunk,
                "uri": uri(page, token),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1, f"PA{chunk[-1]['sid']}") if more else None,
                "previous_page_uri": None if page == 0 else uri(page - 1),
                "page": page,
                "page_size": size,
                "start": page * size,
                "end": page * size + max(0, len(chunk) - 1),
            },
        )
