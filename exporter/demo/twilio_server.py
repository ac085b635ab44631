"""A local Twilio API 2010-04-01 for one account: Messages list/fetch and Balance.

Messages have the fields of Twilio's message resource (:func:`message_template`). The list
answers with Twilio's envelope (``messages``, ``next_page_uri``, ``page``, ``page_size``,
``start``, ``end``, ``uri``, ``first_page_uri``, ``previous_page_uri``), newest first,
filtered by ``DateSent>`` (on or after), paged by ``PageSize`` and a ``PageToken`` cursor.
Errors use Twilio's body ``{"code", "message", "more_info", "status"}``. The demo serves it
to its exporter's Twilio source; the test suite's Twilio fake adds Messages create to it.

Replies from phones: :meth:`LocalTwilioServer.reply` (and ``POST /demo/reply`` with form
fields ``From`` and ``Body``, on 127.0.0.1 without credentials) posts an inbound SMS to
``inbound_url`` as Twilio's "A message comes in" webhook does: a form signed with
``X-Twilio-Signature`` (:func:`twilio_signature`).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import itertools
import secrets
import threading
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests

from exporter.demo.httpserver import LocalHttpServer, Reply, Request

API_VERSION = "2010-04-01"
REPLY_PATH = "/demo/reply"  # a phone's reply, simulated (not part of Twilio's API)


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed with the auth token, over the URL
    and each parameter's name and value, sorted by name (Twilio's webhook security)."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def message_template() -> dict[str, Any]:
    """An outbound message with every field of Twilio's message resource, to fill in."""
    return {
        "account_sid": None,
        "api_version": API_VERSION,
        "body": "",
        "date_created": None,
        "date_sent": None,
        "date_updated": None,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+15005550006",  # Twilio's magic test number: a valid sender
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": None,
        "status": "queued",
        "subresource_uris": {},
        "to": "+15005550010",
        "uri": None,
    }


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


def _rfc2822(when: float) -> str:
    return format_datetime(datetime.fromtimestamp(when, UTC))


@functools.lru_cache(maxsize=4096)  # a busy list repeats the same second many times
def _parse_date(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = parsedate_to_datetime(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class LocalTwilioServer(LocalHttpServer):
    """Twilio's Messages and Balance resources for one account, on 127.0.0.1.

    ``keep`` bounds the messages held: past it the oldest are forgotten, as a long demo
    would otherwise grow without end.
    """

    def __init__(self, account_sid: str, auth_token: str, *, keep: int | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.keep = keep
        self.state_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.messages: dict[str, dict[str, Any]] = {}
        self.balance = {"account_sid": account_sid, "balance": "47.25", "currency": "USD"}
        # The number's "A message comes in" webhook: where replies are posted (None: nowhere).
        self.inbound_url: str | None = None
        self.number = "+12025550100"  # the number pages come from and replies go to

    def reply(self, from_number: str, body: str, *, timeout: float = 5.0) -> int:
        """A phone texts ``body`` to our number: Twilio's signed webhook to ``inbound_url``;
        the status it answered (ValueError without inbound_url, requests' errors)."""
        if self.inbound_url is None:
            raise ValueError("no inbound_url: nothing receives replies")
        sid = "SM" + secrets.token_hex(16)
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_number,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": self.number,
        }
        signature = twilio_signature(self.auth_token, self.inbound_url, params)
        answer = requests.post(
            self.inbound_url,
            data=params,
            headers={"X-Twilio-Signature": signature},
            timeout=timeout,
        )
        return answer.status_code

    def send(self, sent: float, status: str = "queued", **fields: Any) -> str:
        """An outbound message sent at ``sent`` (Unix time); returns its SID."""
        with self.state_lock:
            return self.add(sent, status=status, **fields)

    def answer(self, request: Request) -> Reply:
        """Route a request like api.twilio.com would."""
        if request.path == REPLY_PATH and request.method == "POST":
            return self._simulated_reply(request)
        if not self.authorized(request):
            return error_reply(401, 20003, "Authenticate")
        account = f"/{API_VERSION}/Accounts/{self.account_sid}"
        if request.path == f"{account}/Balance.json":
            return Reply.json(200, self.balance)
        if request.path == self.messages_path and request.method != "POST":
            return self._list(request)
        if request.path.startswith(f"{account}/Messages/") and request.path.endswith(".json"):
            sid = request.path[len(f"{account}/Messages/") : -len(".json")]
            with self.state_lock:
                found = copy.deepcopy(self.messages.get(sid))
            if found is not None:
                return Reply.json(200, found)
        return error_reply(404, 20404, f"The requested resource {request.path} was not found")

    def _simulated_reply(self, request: Request) -> Reply:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        if not form.get("From") or "Body" not in form:
            return error_reply(400, 21602, "give From and Body")
        try:
            status = self.reply(form["From"], form["Body"])
        except (ValueError, requests.RequestException) as exc:
            return error_reply(502, 11200, f"the reply was not delivered: {exc}")
        return Reply.json(200, {"delivered_to": self.inbound_url, "status": status})

    @property
    def messages_path(self) -> str:
        """The path of the account's Messages list."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def authorized(self, request: Request) -> bool:
        """Whether ``request`` carries the account's credentials (HTTP basic auth)."""
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def add(self, sent: float, **fields: Any) -> str:
        """Store a new message (hold ``state_lock``); returns its SID."""
        sid = f"SM{next(self._ids):032x}"
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message = message_template()
        message.update(
            account_sid=self.account_sid,
            sid=sid,
            uri=f"{base}.json",
            subresource_uris={"media": f"{base}/Media.json"},
            date_created=_rfc2822(sent),
            date_sent=_rfc2822(sent),
            date_updated=_rfc2822(sent),
        )
        message.update(fields)
        self.messages[sid] = message
        if self.keep is not None:
            while len(self.messages) > self.keep:
                del self.messages[next(iter(self.messages))]
        return sid

    def _list(self, request: Request) -> Reply:
        query = dict(request.query)
        size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        since = _parse_date(query["DateSent>"]) if "DateSent>" in query else None
        with self.state_lock:
            items = [
                m
                for m in self.messages.values()
                if since is None or (m["date_sent"] and _parse_date(m["date_sent"]) >= since)
            ]
            items.sort(key=lambda m: (_parse_date(m["date_sent"]), m["sid"]), reverse=True)
            token = query.get("PageToken")
            if token:
                sids = [m["sid"] for m in items]
                after = token.removeprefix("PA")
                items = items[sids.index(after) + 1 :] if after in sids else []
            chunk = copy.deepcopy(items[:size])
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
