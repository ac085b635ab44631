"""The SMS text: one short summary per notification, sized by real SMS segments.

An SMS is GSM-7 when every character is in the GSM 03.38 default alphabet or its extension
table (``€ [ ] { } ^ ~ | \\`` and form feed, which take an escape plus the character, so
they count 2), else UCS-2, where a character outside the Basic Multilingual Plane (most
emoji) is a surrogate pair and counts 2. One segment holds 160 GSM-7 units or 70 UCS-2
units; a longer text is split into parts of 153 or 67, and a phone reassembles them. A
part never ends in the middle of an escape or a surrogate pair, so such a character that
does not fit moves whole to the next part. Texts longer than the cap are cut at a whole
character (never between a letter and its combining accent or inside a joined emoji) and
end with an ellipsis.

Label and annotation values are cleaned before they reach the text (:func:`exporter.printable.
plain_text`): one line, no control characters, a lone surrogate shown as ``?``, so any value
gives a text Twilio can take. An ``escalation`` label that is not a whole number 0-999 shows
no tier (the SMS still goes out; the bridge logs a warning).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from exporter.printable import plain_text
from exporter.smsbridge.payload import Alert, Notification

Encoding = Literal["GSM-7", "UCS-2"]

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
# (units in one single-part message, units per part of a multipart message)
_CAPACITY = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
_ELLIPSIS = {"GSM-7": "...", "UCS-2": "…"}
_ZWJ = "\u200d"
_MAX_TIER_DIGITS = 3

SEVERITIES = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class Size:
    """How an SMS is encoded, how many units it takes and how many segments it is billed as."""

    encoding: Encoding
    units: int
    segments: int


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character has a GSM 03.38 encoding, else UCS-2."""
    return "GSM-7" if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text) else "UCS-2"


def _costs(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if c in _GSM_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _segments(costs: Sequence[int], encoding: Encoding) -> int:
    single, per_part = _CAPACITY[encoding]
    if sum(costs) <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:  # an escape or a surrogate pair is never split
            parts, used = parts + 1, 0
        used += cost
    return parts


def measure(text: str) -> Size:
    """The encoding, units and segment count of ``text`` as sent."""
    encoding = encoding_of(text)
    costs = _costs(text, encoding)
    return Size(encoding, sum(costs), _segments(costs, encoding))


def _joined_to_previous(char: str) -> bool:
    # Cutting before one of these would strip an accent, a variation or a skin tone off
    # the character before it, or break a joined emoji sequence.
    return (
        unicodedata.combining(char) != 0
        or char == _ZWJ
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
    )


def fit(text: str, max_segments: int) -> str:
    """``text`` if it fits in ``max_segments``, else its longest whole-character prefix that
    fits with an ellipsis appended."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if measure(text).segments <= max_segments:
        return text
    encoding = encoding_of(text)
    marker = _ELLIPSIS[encoding]
    costs = _costs(text, encoding)
    marker_costs = _costs(marker, encoding)
    low, high = 0, len(text)  # the longest prefix that fits lies in [low, high)
    while high - low > 1:
        middle = (low + high) // 2
        if _segments([*costs[:middle], *marker_costs], encoding) <= max_segments:
            low = middle
        else:
            high = middle
    cut = low
    while cut > 0 and (_joined_to_previous(text[cut]) or text[cut - 1] == _ZWJ):
        cut -= 1
    return text[:cut].rstrip() + marker


def _severity(alerts: Sequence[Alert]) -> str | None:
    found = {a.labels.get("severity", "").lower() for a in alerts}
    return next((s for s in SEVERITIES if s in found), None)


def escalation_tier(value: str) -> int | None:
    """The tier an ``escalation`` label names: a whole number 0-999 in ASCII digits, else None.

    The generated rules write 1, 2 or 3. Anything else (``"²"``, 5000 digits, ``"two"``) is
    not a tier: the SMS is still sent, without one (see :func:`invalid_escalations`).
    """
    if 1 <= len(value) <= _MAX_TIER_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return None


def invalid_escalations(alerts: Sequence[Alert]) -> list[tuple[str, str]]:
    """(alert name, label value) of each alert whose ``escalation`` is set but not a tier."""
    return [
        (a.name, a.labels["escalation"])
        for a in alerts
        if a.labels.get("escalation") and escalation_tier(a.labels["escalation"]) is None
    ]


def _escalation(alerts: Sequence[Alert]) -> int | None:
    tiers = [escalation_tier(a.labels.get("escalation", "")) for a in alerts]
    return max((t for t in tiers if t is not None), default=None)


def _names(alerts: Sequence[Alert]) -> str:
    counts: dict[tuple[str, str], int] = {}
    for alert in alerts:
        # Label values reach the text cleaned: one line, no control characters.
        key = (plain_text(alert.name) or "alert", plain_text(alert.labels.get("category", "")))
        counts[key] = counts.get(key, 0) + 1
    shown = []
    for (name, category), count in counts.items():
        item = f"{name} ({category})" if category else name
        shown.append(f"{item} x{count}" if count > 1 else item)
    return ", ".join(shown)


def compose(notification: Notification) -> str:
    """The text of the SMS for a notification, before sizing.

    Firing: ``CRITICAL tier 2: 3 firing: PaymentSuccessRateLow (payments), InventoryLow
    (inventory) x2 - <summary of the first>``; all resolved: ``RESOLVED: <names>``.
    """
    firing = notification.firing
    if not firing:
        resolved = notification.resolved
        more = notification.truncated_alerts
        tail = f" +{more} more" if more else ""
        return plain_text(f"RESOLVED: {_names(resolved)}{tail}")
    severity = _severity(firing)
    tier = _escalation(firing)
    head = severity.upper() if severity else "ALERT"
    if tier is not None:
        head += f" tier {tier}"
    count = len(firing) + notification.truncated_alerts
    text = f"{head}: {count} firing: {_names(firing)}"
    if notification.truncated_alerts:
        text += f" +{notification.truncated_alerts} more"
    if notification.resolved:
        text += f"; {len(notification.resolved)} resolved"
    summary = plain_text(firing[0].annotations.get("summary", ""))
    if summary:
        text += f" - {summary}"
    return plain_text(text)


def sms_text(notification: Notification, max_segments: int) -> str:
    """The SMS as sent: composed, then cut to ``max_segments``."""
    return fit(compose(notification), max_segments)


def digest(texts: Sequence[str], max_segments: int) -> str:
    """One SMS carrying several deferred ones (given oldest first), newest first, cut to the
    cap: the latest state of things is what the reader needs most."""
    if len(texts) == 1:
        return fit(texts[0], max_segments)
    return fit(f"{len(texts)} updates, newest first: " + " | ".join(reversed(texts)), max_segments)
