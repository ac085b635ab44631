"""Replies to pages: Twilio's inbound-message webhook, checked, turned into silences.

Twilio POSTs each SMS sent to our number as a form (``From``, ``Body``, ``MessageSid``...)
signed with ``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed with the auth token, over the
URL Twilio was configured with and the sorted parameters, checked here with the official
SDK's ``RequestValidator`` against ``inbound_url``. A reply ``ACK <code>`` (or ``ACK``: the
latest page to that number) from a number the page was sent to silences the alert's higher
tiers (:mod:`exporter.smsbridge.ack`), texts the sender a confirmation and tells Slack.
Unknown codes, strangers, bad signatures and replays (a ``MessageSid`` seen before) get no
silence and one log line each.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from prometheus_client import CollectorRegistry, Counter
from twilio.request_validator import RequestValidator

from exporter.smsbridge.ack import AckStore, Page, SilenceError, create_silence
from exporter.smsbridge.sender import Sender, SendError, mask

log = logging.getLogger(__name__)

OUTCOMES = (
    "acknowledged",
    "bad_signature",
    "replay",
    "not_ack",
    "unknown_code",
    "stranger",
    "silence_failed",
)
_ACK = re.compile(r"\s*ack\s*([a-z0-9]{5})?\s*[.!]?\s*", re.IGNORECASE)


def parse_ack(body: str) -> tuple[bool, str | None]:
    """Whether ``body`` is an acknowledgement, and its code (None: the latest page)."""
    match = _ACK.fullmatch(body)
    if match is None:
        return False, None
    code = match.group(1)
    return True, code.upper() if code else None


@dataclass(frozen=True, kw_only=True)
class AckSettings:
    """Where silences go and how long they last."""

    alertmanager_url: str
    duration: float
    request_timeout: float


class Acknowledger:
    """Verifies and handles inbound SMS; ``acknowledge`` is what ``boxoffice ack`` runs."""

    def __init__(
        self,
        *,
        acks: AckStore,
        settings: AckSettings,
        sender: Sender | None,
        auth_token: str | None,
        inbound_url: str | None,
        registry: CollectorRegistry | None,
        slack_url: str | None = None,
        session: requests.Session | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._acks = acks
        self._settings = settings
        self._sender = sender
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._inbound_url = inbound_url
        self._slack_url = slack_url
        self._session = session or requests.Session()
        self._wall = wall
        self._outcomes = Counter(
            "boxoffice_sms_bridge_acks",
            "Inbound SMS handled, by outcome: acknowledged (a silence), bad_signature, replay, "
            "not_ack, unknown_code, stranger (not sent that page), silence_failed.",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self._outcomes.labels(outcome)

    def _count(self, outcome: str) -> str:
        self._outcomes.labels(outcome).inc()
        return outcome

    def verify(self, signature: str | None, params: Mapping[str, str]) -> bool:
        """Whether Twilio signed these parameters for our inbound URL."""
        if self._validator is None or self._inbound_url is None or not signature:
            return False
        return bool(self._validator.validate(self._inbound_url, dict(params), signature))

    def handle(self, signature: str | None, params: Mapping[str, str]) -> str:
        """One inbound SMS; the outcome (logged, counted)."""
        sender = params.get("From", "")
        if not self.verify(signature, params):
            log.warning("inbound SMS refused: bad or missing X-Twilio-Signature")
            return self._count("bad_signature")
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        if not sid or not self._acks.first_time(sid, self._wall()):
            log.warning("inbound SMS %s from %s ignored: a replay", sid[:40], mask(sender))
            return self._count("replay")
        is_ack, code = parse_ack(params.get("Body", ""))
        if not is_ack:
            log.info("inbound SMS from %s is not an ACK; ignored", mask(sender))
            return self._count("not_ack")
        return self._ack(sender, code)

    def _ack(self, sender: str, code: str | None) -> str:
        code = code or self._acks.latest_for(sender)
        page = self._acks.page(code) if code else None
        if page is None:
            log.warning("ACK from %s: unknown code %s; no silence", mask(sender), code)
            self._reply(sender, f"ACK {code or ''}: no page with that code.".replace("  ", " "))
            return self._count("unknown_code")
        if not self._acks.sent_to(page.code, sender):
            log.warning(
                "ACK %s from %s refused: that number was not sent this page",
                page.code,
                mask(sender),
            )
            return self._count("stranger")
        try:
            silence = self.acknowledge(page, by=mask(sender))
        except SilenceError as exc:
            log.error("ACK %s from %s: silence not created: %s", page.code, mask(sender), exc)
            self._reply(sender, f"ACK {page.code} FAILED: {exc}"[:150])
            return self._count("silence_failed")
        self._reply(sender, confirmation(page, silence, self._settings.duration))
        return self._count("acknowledged")

    def acknowledge(self, page: Page, *, by: str) -> str:
        """Silence the page's higher tiers; tell Slack; the silence ID."""
        silence = create_silence(
            self._settings.alertmanager_url,
            page,
            by=f"boxoffice ack ({by})",
            duration=self._settings.duration,
            now=datetime.fromtimestamp(self._wall(), UTC),
            session=self._session,
            timeout=self._settings.request_timeout,
        )
        log.info(
            "ACK %s by %s: %s above tier %d silenced (%s)",
            page.code,
            by,
            page.labels.get("alertname", "?"),
            page.tier,
            silence,
        )
        self._tell_slack(page, by)
        return silence

    def _reply(self, to: str, body: str) -> None:
        if self._sender is None or not to:
            return
        try:
            self._sender.send(to, body, timeout=self._settings.request_timeout)
        except SendError as exc:
            log.warning("ACK reply to %s not sent: %s", mask(to), exc.message)

    def _tell_slack(self, page: Page, by: str) -> None:
        if self._slack_url is None:
            return
        text = (
            f"{by} acknowledged {page.labels.get('alertname', 'an alert')} "
            f"({page.code}): escalation above tier {page.tier} stopped for "
            f"{self._settings.duration / 60:.0f} min."
        )
        try:
            answer = self._session.post(
                self._slack_url, json={"text": text}, timeout=self._settings.request_timeout
            )
            if answer.status_code >= 300:
                log.warning("Slack did not take the ACK notice: HTTP %d", answer.status_code)
        except requests.RequestException as exc:
            log.warning("Slack did not take the ACK notice: %s", type(exc).__name__)


def confirmation(page: Page, silence: str, duration: float) -> str:
    """The SMS back to who acknowledged."""
    name = page.labels.get("alertname", "the alert")
    return (
        f"ACK {page.code}: {name} will not escalate past tier {page.tier} for "
        f"{duration / 60:.0f} min (silence {silence[:8]}). Tier {page.tier} keeps notifying "
        "until it resolves."
    )
