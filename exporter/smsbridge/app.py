"""The bridge's HTTP service: ``POST /alerts/<group>``, ``/metrics``, ``/healthz``.

Status codes follow what Alertmanager does with them: it retries a 5xx and gives up on a
4xx. Bad input is always a 4xx (401 credentials, 404 unknown group, 411 no length, 413
too large, 400 malformed or not a version 4 webhook); 503 means a recipient is still
unsent and a retry can help; 200 means every recipient has its SMS.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry

from exporter.printable import log_safe
from exporter.smsbridge.ack import AckStore, page_tier, with_code
from exporter.smsbridge.auth import Authenticator
from exporter.smsbridge.delivery import Delivery
from exporter.smsbridge.heartbeat import HeartbeatWatch
from exporter.smsbridge.inbound import Acknowledger
from exporter.smsbridge.metrics import BridgeMetrics
from exporter.smsbridge.payload import Notification, PayloadError, parse_notification
from exporter.smsbridge.store import StoreError
from exporter.smsbridge.text import invalid_escalations, sms_text
from exporter.web.framing import content_length
from exporter.web.handler import Handler
from exporter.web.limits import ServerLimits
from exporter.web.server import ExporterHTTPServer
from exporter.web.webconfig import WebConfig

log = logging.getLogger(__name__)

_TEXT = "text/plain; charset=utf-8"
_ALERTS = "/alerts/"
_HEARTBEAT = "/heartbeat"
_INBOUND = "/twilio/inbound"  # signed by Twilio instead of our credentials
_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>\n'


@dataclass(frozen=True)
class Answer:
    """A response: status and a short plain-text body."""

    status: int
    text: str


class SmsBridge:
    """What a webhook does, apart from HTTP: route, parse, compose, deliver."""

    def __init__(
        self,
        *,
        groups: Mapping[str, Sequence[str]],
        delivery: Delivery,
        metrics: BridgeMetrics,
        authenticator: Authenticator,
        max_body_bytes: int,
        max_segments: int,
        heartbeat: HeartbeatWatch | None = None,
        acks: AckStore | None = None,
        acknowledger: Acknowledger | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.wall = wall
        self.groups = groups
        self.heartbeat_watch = heartbeat
        self.acks = acks  # set: each page of tier 1 or 2 carries an ACK code
        self.acknowledger = acknowledger
        self.delivery = delivery
        self.metrics = metrics
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.max_segments = max_segments

    def reject(self, reason: str, status: int, text: str) -> Answer:
        """A 4xx answer, counted by reason."""
        self.metrics.rejected.labels(reason).inc()
        return Answer(status, text)

    def check_length(self, group: str, length: int | None) -> Answer | None:
        """Refuse before reading: unknown group, no length (chunked), too large. None when fine.

        ``length`` is the Content-Length of a request whose framing the server has checked.
        """
        if group not in self.groups:
            return self.reject("unknown_group", 404, f"no recipient group named {group[:64]!r}")
        return self.check_size(length)

    def check_size(self, length: int | None) -> Answer | None:
        """Refuse a body without a length (chunked), or too large, before reading it."""
        if length is None:
            return self.reject("length_required", 411, "Content-Length is required")
        if length > self.max_body_bytes:
            return self.reject("too_large", 413, f"body larger than {self.max_body_bytes} bytes")
        return None

    def heartbeat(self, body: bytes) -> Answer:
        """Alertmanager's Watchdog notification (docs/sms-bridge.md, "Heartbeat")."""
        if self.heartbeat_watch is None:
            return self.reject("unknown_group", 404, "no heartbeat watch in this bridge")
        try:
            parse_notification(body)
        except PayloadError as exc:
            reason = "malformed" if str(exc).startswith("body ") else "schema"
            return self.reject(reason, 400, f"not an Alertmanager webhook: {exc}")
        try:
            self.heartbeat_watch.received()
        except StoreError as exc:
            log.warning("cannot record a heartbeat: %s", exc)
            return Answer(503, "cannot record the heartbeat now")
        return Answer(200, "heartbeat recorded")

    def notify(self, group: str, body: bytes) -> Answer:
        """Handle a complete webhook body for a known group."""
        try:
            notification = parse_notification(body)
        except PayloadError as exc:
            reason = "malformed" if str(exc).startswith("body ") else "schema"
            return self.reject(reason, 400, f"not an Alertmanager webhook: {exc}")
        self.metrics.received.inc()
        log.info(
            "notification for %s: %s, alerts %s",
            log_safe(group, 64),
            notification.status,
            " ".join(f"{log_safe(a.fingerprint, 16)}:{a.status}" for a in notification.alerts[:10]),
        )
        log_invalid_escalations(notification)
        text = sms_text(notification, self.max_segments)
        tier = page_tier(notification) if self.acks is not None else None
        if self.acks is not None and tier is not None:
            try:
                code = self.acks.record(notification, tier, self.groups[group], self.wall())
            except StoreError as exc:
                log.warning("cannot record the ACK code of a page: %s", exc)
                return Answer(503, "cannot record the page's ACK code now")
            text = with_code(text, code, self.max_segments)
        report = self.delivery.deliver(notification, self.groups[group], text)
        return Answer(report.status, report.summary())


def log_invalid_escalations(notification: Notification) -> None:
    """Warn about each ``escalation`` label that is not a tier: the SMS goes out without one."""
    for name, value in invalid_escalations(notification.firing):
        log.warning(
            "alert %s: escalation label %s is not a whole number 0-999; the SMS shows no tier",
            log_safe(name, 64),
            log_safe(value, 16),
        )


class BridgeHandler(Handler):
    """The exporter's handler plus the webhook; /healthz needs no credentials."""

    bridge: SmsBridge
    _body_read = False

    @classmethod
    def for_bridge(cls, bridge: SmsBridge) -> type[BridgeHandler]:
        """A handler class bound to one bridge."""
        return cast("type[BridgeHandler]", type("SmsBridgeHandler", (cls,), {"bridge": bridge}))

    def _authorized(self, *, head: bool) -> bool:
        if self.path.split("?", 1)[0] in ("/healthz", _INBOUND):
            return True
        if self.bridge.authenticator.allows(self.headers.get("Authorization")):
            return True
        self.bridge.metrics.rejected.labels("unauthorized").inc()
        extra = {"WWW-Authenticate": 'Bearer realm="boxoffice-sms-bridge"'}
        self._send(401, _TEXT, b"unauthorized\n", head=head, extra=extra)
        return False

    def _route(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        if path == "/":
            page = b"boxoffice sms-bridge: POST Alertmanager webhooks to /alerts/<group>\n"
            return 200, _TEXT, page, {}
        return super()._route(path)

    def _refuse_method(self) -> None:
        if self._authorized(head=False):
            self.bridge.metrics.rejected.labels("method").inc()
            allow = {"Allow": "GET, HEAD, POST"}
            self._send(405, _TEXT, b"method not allowed\n", head=False, extra=allow)

    def _refuse_framing(self, problem: str) -> None:
        self.bridge.metrics.rejected.labels("malformed").inc()
        super()._refuse_framing(problem)

    def parse_request(self) -> bool:
        self._body_read = False  # per request: a keep-alive connection serves several
        return super().parse_request()

    def _has_unread_body(self) -> bool:
        return not self._body_read and super()._has_unread_body()

    def do_POST(self) -> None:
        if not self._authorized(head=False):
            return
        path = self.path.split("?", 1)[0]
        if path == _HEARTBEAT:
            self._post_heartbeat()
            return
        if path == _INBOUND:
            self._post_inbound()
            return
        if not path.startswith(_ALERTS) or "/" in path[len(_ALERTS) :]:
            self._answer(self.bridge.reject("unknown_group", 404, "POST to /alerts/<group>"))
            return
        group = path[len(_ALERTS) :]
        length = content_length(self.headers)
        refused = self.bridge.check_length(group, length)
        if refused is not None:
            self._answer(refused)
            return
        assert length is not None
        # Bounded: at most max_body_bytes, and the connection's timeout ends a slow sender.
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) < length:
            self.close_connection = True  # the client hung up mid-body: nobody to answer
            return
        try:
            answer = self.bridge.notify(group, body)
        except Exception:
            log.exception("error handling a webhook for group %s", log_safe(group, 64))
            answer = Answer(500, "internal error")
        self._answer(answer)

    def _read_small_body(self) -> bytes | None:
        """The body, bounded as for /alerts/<group>; None when answered (or hung up)."""
        length = content_length(self.headers)
        refused = self.bridge.check_size(length)
        if refused is not None:
            self._answer(refused)
            return None
        assert length is not None
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def _post_heartbeat(self) -> None:
        body = self._read_small_body()
        if body is not None:
            self._answer(self.bridge.heartbeat(body))

    def _post_inbound(self) -> None:
        acknowledger = self.bridge.acknowledger
        if acknowledger is None:
            self._answer(self.bridge.reject("unknown_group", 404, "replies are not taken here"))
            return
        body = self._read_small_body()
        if body is None:
            return
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        outcome = acknowledger.handle(self.headers.get("X-Twilio-Signature"), params)
        if outcome == "bad_signature":
            self._answer(Answer(403, "bad signature"))
            return
        # Anything signed is answered 200 (empty TwiML), so Twilio does not retry it.
        self._send(200, "text/xml; charset=utf-8", _TWIML, head=False)

    def _answer(self, answer: Answer) -> None:
        # backslashreplace: an answer quoting a lone surrogate from the body still encodes.
        body = (answer.text.rstrip("\n") + "\n").encode("utf-8", "backslashreplace")
        self._send(answer.status, _TEXT, body, head=False)


def bridge_server(
    bridge: SmsBridge,
    *,
    registry: CollectorRegistry,
    listen_address: str,
    web_config: WebConfig | None,
    limits: ServerLimits | None = None,
) -> ExporterHTTPServer:
    """The exporter's HTTP server (TLS, threads, graceful stop) serving the bridge."""
    # The bridge checks credentials itself (bearer or basic); the web config's users
    # reach it through the Authenticator, so the site's own basic auth is left off.
    web = dataclasses.replace(web_config or WebConfig(), basic_auth_users={})
    return ExporterHTTPServer(
        registry=registry,
        listen_address=listen_address,
        web_config=web,
        handler=BridgeHandler.for_bridge(bridge),
        limits=limits,
    )
