"""Acknowledge a page by replying to its SMS: codes, their records, and the silence.

Alertmanager has no acknowledgement, but it has silences, and escalation is done by rules
that fire the same alert with a higher ``escalation`` label. So acknowledging a page of tier
N is a silence of the alert's labels with ``escalation=~"N+1|..|3"`` for ``ack_duration``:
the higher tiers stop, tier N keeps notifying on its own schedule and its resolution still
goes out.

Each firing page of tier 1 or 2 carries a short code, stable per Alertmanager group and
tier (the same page retried, or repeated, has the same code). The store keeps, per code,
the alerts' common labels, the tier, and a hash of every number it was sent to; a reply is
honoured only from one of those numbers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from exporter.smsbridge.payload import Notification
from exporter.smsbridge.store import IdempotencyStore, recipient_hash
from exporter.smsbridge.text import fit, measure

log = logging.getLogger(__name__)

TOP_TIER = 3
_CODES = "sms_bridge_ack_codes"
_SENT = "sms_bridge_ack_sent"
_INBOUND = "sms_bridge_inbound"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {_CODES} (code TEXT PRIMARY KEY, labels TEXT NOT NULL, "
    "tier INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {_SENT} (code TEXT NOT NULL, recipient_hash TEXT NOT NULL, "
    "sent_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (code, recipient_hash))",
    f"CREATE TABLE IF NOT EXISTS {_INBOUND} (sid TEXT PRIMARY KEY, "
    "received_at DOUBLE PRECISION NOT NULL)",
)


def ack_code(group_key: str, tier: int) -> str:
    """Five letters and digits, stable per group and tier (no 0/O or 1/I to misread)."""
    digest = hashlib.sha256(f"{group_key}\x00{tier}".encode()).digest()
    text = base64.b32encode(digest).decode()  # A-Z and 2-7: no 0, 1
    return text.replace("O", "8").replace("I", "9")[:5]


def page_tier(notification: Notification) -> int | None:
    """The tier a firing page can be acknowledged at (1 or 2); None for other pages, and for
    a page whose alerts share no name (its silence would match too much)."""
    if notification.status != "firing" or "alertname" not in common_labels(notification):
        return None
    tiers = [a.labels.get("escalation", "1") or "1" for a in notification.alerts]
    highest = max((int(t) for t in tiers if t.isdigit()), default=1)
    return highest if highest < TOP_TIER else None


def with_code(text: str, code: str, max_segments: int) -> str:
    """``text`` with "Reply ACK <code>" at its end, the text cut (never the code) to fit."""
    suffix = f" Reply ACK {code}"
    whole = text + suffix
    if measure(whole).segments <= max_segments:
        return whole
    body = text
    for _ in range(len(text)):  # bounded: one character less each time
        body = body[:-1]
        shorter = fit(body + "..." + suffix, max_segments)
        if shorter.endswith(suffix):
            return shorter
    return fit(suffix.strip(), max_segments)


def common_labels(notification: Notification) -> dict[str, str]:
    """The labels every alert of the page shares (what its silence matches), sorted."""
    shared: dict[str, str] | None = None
    for alert in notification.alerts:
        labels = dict(alert.labels)
        shared = (
            labels if shared is None else {k: v for k, v in shared.items() if labels.get(k) == v}
        )
    return dict(sorted((shared or {}).items()))


def silence_matchers(labels: Mapping[str, str], tier: int) -> list[dict[str, Any]]:
    """Alertmanager v2 matchers: the alert's labels and the tiers above ``tier``."""
    higher = "|".join(str(t) for t in range(tier + 1, TOP_TIER + 1))
    out: list[dict[str, Any]] = [
        {"name": k, "value": v, "isRegex": False, "isEqual": True}
        for k, v in sorted(labels.items())
        if k != "escalation"
    ]
    out.append({"name": "escalation", "value": higher, "isRegex": True, "isEqual": True})
    return out


@dataclass(frozen=True, kw_only=True)
class Page:
    """What a code stands for."""

    code: str
    labels: dict[str, str]
    tier: int


class AckStore:
    """Codes, who they were sent to, and the replies already handled, in the bridge's store
    (its own transaction: bridges sharing PostgreSQL share them)."""

    def __init__(self, store: IdempotencyStore) -> None:
        self._store = store
        store.ensure_tables(*_SCHEMA)

    def record(
        self, notification: Notification, tier: int, recipients: Sequence[str], now: float
    ) -> str:
        """Keep the page's code, labels and recipients; the code."""
        code = ack_code(notification.group_key, tier)
        labels = json.dumps(common_labels(notification))
        store = self._store
        with store._transaction() as conn:
            store._run(
                conn,
                f"INSERT INTO {_CODES} (code, labels, tier, created_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (code) DO UPDATE SET labels = excluded.labels",
                (code, labels, tier, now),
            )
            for to in recipients:
                store._run(
                    conn,
                    f"INSERT INTO {_SENT} (code, recipient_hash, sent_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (code, recipient_hash) DO UPDATE SET sent_at = excluded.sent_at",
                    (code, recipient_hash(to), now),
                )
        return code

    def page(self, code: str) -> Page | None:
        store = self._store
        with store._transaction() as conn:
            row = store._run(
                conn, f"SELECT labels, tier FROM {_CODES} WHERE code = %s", (code,)
            ).fetchone()
        if row is None:
            return None
        return Page(code=code, labels=dict(json.loads(row[0])), tier=int(row[1]))

    def by_alertname(self, alertname: str) -> Page | None:
        """The most recent page of an alert (``boxoffice ack <alert>``)."""
        store = self._store
        with store._transaction() as conn:
            rows = store._run(
                conn, f"SELECT code FROM {_CODES} ORDER BY created_at DESC, code"
            ).fetchall()
        for (code,) in rows:
            found = self.page(str(code))
            if found is not None and found.labels.get("alertname") == alertname:
                return found
        return None

    def sent_to(self, code: str, number: str) -> bool:
        store = self._store
        with store._transaction() as conn:
            row = store._run(
                conn,
                f"SELECT 1 FROM {_SENT} WHERE code = %s AND recipient_hash = %s",
                (code, recipient_hash(number)),
            ).fetchone()
        return row is not None

    def latest_for(self, number: str) -> str | None:
        """The code of the most recent page sent to ``number`` (a bare "ACK")."""
        store = self._store
        with store._transaction() as conn:
            row = store._run(
                conn,
                f"SELECT code FROM {_SENT} WHERE recipient_hash = %s "
                "ORDER BY sent_at DESC, code LIMIT 1",
                (recipient_hash(number),),
            ).fetchone()
        return None if row is None else str(row[0])

    def first_time(self, sid: str, now: float) -> bool:
        """Whether the inbound message ``sid`` is new (a replay is not)."""
        store = self._store
        with store._transaction() as conn:
            row = store._run(
                conn,
                f"INSERT INTO {_INBOUND} (sid, received_at) VALUES (%s, %s) "
                "ON CONFLICT (sid) DO NOTHING RETURNING sid",
                (sid, now),
            ).fetchone()
        return row is not None


class SilenceError(Exception):
    """Alertmanager did not create the silence; the text names why."""


def create_silence(
    alertmanager_url: str,
    page: Page,
    *,
    by: str,
    duration: float,
    now: datetime,
    session: requests.Session,
    timeout: float = 5.0,
) -> str:
    """POST /api/v2/silences for the tiers above the page's; the silence ID."""
    body = {
        "matchers": silence_matchers(page.labels, page.tier),
        "startsAt": now.astimezone(UTC).isoformat(),
        "endsAt": (now + timedelta(seconds=duration)).astimezone(UTC).isoformat(),
        "createdBy": by,
        "comment": f"Acknowledged ({page.code}): escalation above tier {page.tier} stopped",
    }
    url = f"{alertmanager_url.rstrip('/')}/api/v2/silences"
    try:
        answer = session.post(url, json=body, timeout=timeout)
    except requests.RequestException as exc:
        raise SilenceError(f"Alertmanager unreachable ({type(exc).__name__})") from None
    if answer.status_code != 200:
        raise SilenceError(f"Alertmanager answered {answer.status_code}: {answer.text[:200]}")
    try:
        found = answer.json()["silenceID"]
    except (ValueError, KeyError, TypeError):
        raise SilenceError("Alertmanager's answer has no silenceID") from None
    return str(found)
