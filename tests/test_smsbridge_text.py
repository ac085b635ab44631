"""SMS text: GSM-7 and UCS-2 segment sizing, truncation at whole characters, the summary."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.smsbridge.payload import notification_from
from exporter.smsbridge.text import (
    compose,
    digest,
    encoding_of,
    escalation_tier,
    fit,
    measure,
    sms_text,
)
from tests.support.alerts import alert, payment_alert, webhook

THUMBS = "\U0001f44d"  # outside the BMP: a surrogate pair in UCS-2
CODER = "\U0001f469\u200d\U0001f4bb"  # woman technologist: emoji + ZWJ + emoji

SIZES = [
    # text, encoding, units, segments
    ("", "GSM-7", 0, 1),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("Straße Köln Ñandù Øre", "GSM-7", 21, 1),
    ("Ñandú", "UCS-2", 5, 1),  # ú is not in GSM 03.38 (ù is)
    ("€" * 80, "GSM-7", 160, 1),  # extension characters count 2
    ("€" * 81, "GSM-7", 162, 2),  # 76 per part (152 units): the 77th would split its escape
    ("[]{}^~|\\\f", "GSM-7", 18, 1),
    ("a" * 152 + "[" + "a" * 10, "GSM-7", 164, 2),
    ("a" * 152 + "[" + "a" * 152, "GSM-7", 306, 3),  # the escape moves whole to part 2
    ("ç" * 70, "UCS-2", 70, 1),  # lower-case ç is not GSM (Ç is)
    ("ç" * 71, "UCS-2", 71, 2),
    ("á" + "a" * 133, "UCS-2", 134, 2),
    ("á" + "a" * 134, "UCS-2", 135, 3),
    ("Ελλάδα", "UCS-2", 6, 1),
    (THUMBS * 35, "UCS-2", 70, 1),  # emoji count 2
    (THUMBS * 36, "UCS-2", 72, 2),
    ("a" * 66 + THUMBS + "a" * 66, "UCS-2", 134, 3),  # a pair is never split across parts
    ("payment failed €12 🎫", "UCS-2", 21, 1),
]


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), SIZES)
def test_measure(text: str, encoding: str, units: int, segments: int) -> None:
    size = measure(text)
    assert (size.encoding, size.units, size.segments) == (encoding, units, segments)


FITS = [
    # text, cap, expected
    ("a" * 160, 1, "a" * 160),
    ("a" * 161, 1, "a" * 157 + "..."),
    ("a" * 400, 2, "a" * 303 + "..."),
    ("a" * 156 + "€" * 10, 1, "a" * 156 + "..."),  # "€" would need 2 units; only 1 is left
    ("a" * 155 + "€" * 10, 1, "a" * 155 + "€" + "..."),
    ("word " * 40, 1, "word " * 31 + "wo..."),  # whole characters, not whole words
    ("ç" * 100, 1, "ç" * 69 + "…"),  # UCS-2 text ends with the one-unit ellipsis
    (THUMBS * 50, 1, THUMBS * 34 + "…"),
    ("a" * 68 + THUMBS * 5, 1, "a" * 68 + "…"),  # never half a surrogate pair
    ("x" * 68 + "e\u0301" + "y" * 10, 1, "x" * 68 + "…"),  # the accent stays with its letter
    ("a" * 60 + CODER * 3, 1, "a" * 60 + CODER + "…"),  # a joined emoji stays whole
    ("é" * 400, 2, "é" * 303 + "..."),  # é is GSM-7
]


@pytest.mark.parametrize(("text", "cap", "expected"), FITS)
def test_fit(text: str, cap: int, expected: str) -> None:
    cut = fit(text, cap)
    assert cut == expected
    assert measure(cut).segments <= cap


def test_fit_refuses_a_cap_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fit("text", 0)


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(["a", " ", "€", "[", "é", "ç", THUMBS, "\u0301", "\u200d", "Ω"]),
        max_size=600,
    ),
    st.integers(min_value=1, max_value=4),
)
def test_fit_always_fits_and_keeps_a_prefix(text: str, cap: int) -> None:
    cut = fit(text, cap)
    assert measure(cut).segments <= cap
    if cut != text:
        marker = "..." if encoding_of(text) == "GSM-7" else "…"
        assert cut.endswith(marker)
        assert text.startswith(cut[: -len(marker)])


def _notification(*alerts: dict[str, object], **kwargs: object) -> object:
    return notification_from(webhook(*alerts, **kwargs))  # type: ignore[arg-type]


COMPOSED = [
    (
        [
            payment_alert(),
            alert("InventoryLow", category="inventory", severity="medium", city="berlin"),
            alert("InventoryLow", category="inventory", severity="medium", city="paris"),
        ],
        {},
        "CRITICAL tier 2: 3 firing: PaymentSuccessRateLow (payments), InventoryLow (inventory) x2"
        " - Payment success 91% over 5m",
    ),
    (
        [
            alert(
                "InventoryLow", category="inventory", severity="medium", summary="Only 4\n  GA left"
            )
        ],
        {},
        "MEDIUM: 1 firing: InventoryLow (inventory) - Only 4 GA left",
    ),
    (
        [payment_alert(), alert("InventoryLow", category="inventory", status="resolved")],
        {"truncated": 2},
        "CRITICAL tier 2: 3 firing: PaymentSuccessRateLow (payments) +2 more; 1 resolved"
        " - Payment success 91% over 5m",
    ),
    (
        [
            payment_alert(status="resolved"),
            alert("InventoryLow", category="inventory", status="resolved"),
        ],
        {},
        "RESOLVED: PaymentSuccessRateLow (payments), InventoryLow (inventory)",
    ),
    (
        [alert("Custom", category="", severity="", summary="")],
        {},
        "ALERT: 1 firing: Custom",
    ),
    (
        [alert("EscalatedA", escalation="3"), alert("EscalatedB", escalation="10")],
        {},
        "CRITICAL tier 10: 2 firing: EscalatedA (payments), EscalatedB (payments)",
    ),
]


@pytest.mark.parametrize(("alerts", "kwargs", "expected"), COMPOSED)
def test_compose(alerts: list[dict[str, object]], kwargs: dict[str, object], expected: str) -> None:
    assert compose(_notification(*alerts, **kwargs)) == expected  # type: ignore[arg-type]


def test_sms_text_is_cut_to_the_segment_cap() -> None:
    many = [alert(f"Alert{i:02d}", category="sales", severity="high") for i in range(40)]
    text = sms_text(_notification(*many), 2)  # type: ignore[arg-type]
    assert text.startswith("HIGH: 40 firing: Alert00 (sales), Alert01 (sales)")
    assert text.endswith("...")
    assert measure(text).segments == 2


def test_digest_puts_the_newest_first_and_fits_the_cap() -> None:
    assert digest(["only one"], 1) == "only one"
    assert digest(["one", "two", "three"], 1) == "3 updates, newest first: three | two | one"
    long = digest([f"CRITICAL: 1 firing: Alert{i:02d} (sales)" for i in range(20)], 1)
    assert long.startswith("20 updates, newest first: CRITICAL: 1 firing: Alert19 (sales) | ")
    assert long.endswith("...")
    assert measure(long).segments == 1


def _unsafe_characters(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")]


HOSTILE = [
    # labels of one firing alert, the SMS text expected
    ({"escalation": "²"}, "CRITICAL: 1 firing: Odd (payments)"),
    ({"escalation": "9" * 5000}, "CRITICAL: 1 firing: Odd (payments)"),
    ({"escalation": "-1"}, "CRITICAL: 1 firing: Odd (payments)"),
    ({"escalation": " 2"}, "CRITICAL: 1 firing: Odd (payments)"),
    ({"alertname": "Odd\r\nlevel=error msg=forged"}, "CRITICAL: 1 firing: Odd level=error"),
    ({"category": "pay\rments\x00\x1b[31m"}, "CRITICAL: 1 firing: Odd (pay ments [31m)"),
    ({"alertname": "Odd\ud800"}, "CRITICAL: 1 firing: Odd? (payments)"),
    ({"category": "a\u2028b\u202ec\x85d"}, "CRITICAL: 1 firing: Odd (a b c d)"),
]


@pytest.mark.parametrize(("labels", "expected"), HOSTILE)
def test_any_label_value_gives_a_clean_sendable_text(labels: dict[str, str], expected: str) -> None:
    fields = {"alertname": "Odd", "category": "payments", **labels}
    document = alert(fields.pop("alertname"), category=fields.pop("category"), **fields)
    text = sms_text(_notification(document), 3)  # type: ignore[arg-type]
    assert text.startswith(expected)
    assert _unsafe_characters(text) == []
    text.encode("utf-8")  # strict: what the Twilio request is built from


TIERS = [
    ("1", 1),
    ("3", 3),
    ("10", 10),
    ("999", 999),
    ("1000", None),
    ("²", None),
    ("٣", None),  # an Arabic-Indic digit: int() reads it, Alertmanager rules never write it
    ("9" * 5000, None),
    ("", None),
    ("two", None),
    ("+2", None),
    ("2 ", None),
]


@pytest.mark.parametrize(("value", "tier"), TIERS)
def test_escalation_tier_accepts_small_whole_numbers_only(value: str, tier: int | None) -> None:
    assert escalation_tier(value) == tier
