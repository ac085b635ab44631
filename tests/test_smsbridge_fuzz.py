"""Fuzzing the SMS bridge's inputs (issue 16, "close the classes"): any webhook body gives a
2xx with its SMS or a documented 4xx, never a 5xx or a traceback, and every SMS text is one
clean line Twilio can take, within the segment cap."""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.smsbridge.payload import PayloadError, notification_from, parse_notification
from exporter.smsbridge.text import measure, sms_text
from tests.support.alerts import alert, webhook
from tests.support.bridge import BEARER, config, running_bridge
from tests.support.fake_twilio import FakeTwilio
from tests.support.fakehttp import serving

# Any code point, surrogates and controls included (hypothesis leaves surrogates out unless
# told): JSON's \ud800 escapes carry lone surrogates that UTF-8 cannot.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
HOSTILE_TEXT = st.one_of(
    ANY_TEXT,
    st.sampled_from(["²", "٣", "9" * 5000, "-1", " 2", "\r\n", "\x1b[2J", "\u202e", "\ud800"]),
    st.text(st.sampled_from("0123456789²\r\n\x00\t\u2028"), max_size=12),
)
LABEL_NAMES = st.sampled_from(["alertname", "category", "severity", "escalation"]) | ANY_TEXT
LABELS = st.dictionaries(LABEL_NAMES, HOSTILE_TEXT, max_size=6)
ANNOTATIONS = st.dictionaries(st.sampled_from(["summary", "description"]) | ANY_TEXT, HOSTILE_TEXT)


@st.composite
def hostile_webhooks(draw: st.DrawFn) -> dict[str, Any]:
    """Version 4 webhooks, valid in shape, with any label and annotation values."""
    count = draw(st.integers(1, 4))
    statuses = [draw(st.sampled_from(["firing", "resolved"])) for _ in range(count)]
    alerts = [alert("A", fingerprint=f"{i:016x}", status=s) for i, s in enumerate(statuses)]
    document = webhook(
        *alerts,
        group_key=draw(ANY_TEXT.filter(str.strip)),
        truncated=draw(st.integers(0, 10**6)),
    )
    for item in document["alerts"]:
        item["labels"] = draw(LABELS)
        item["annotations"] = draw(ANNOTATIONS)
    return document


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)
_KEYS = ["version", "groupKey", "status", "receiver", "alerts", "truncatedAlerts", "commonLabels"]


def _anything_else(document: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(st.sampled_from(_KEYS), _JSON).map(lambda kv: {**document, kv[0]: kv[1]})


BODIES = st.one_of(
    hostile_webhooks().map(json.dumps),
    hostile_webhooks().flatmap(_anything_else).map(json.dumps),
    _JSON.map(json.dumps),
).map(str.encode) | st.binary(max_size=200)


def _clean(text: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(hostile_webhooks(), st.integers(1, 10))
def test_any_label_value_composes_a_clean_text_within_the_cap(
    document: dict[str, Any], cap: int
) -> None:
    text = sms_text(notification_from(document), cap)
    text.encode("utf-8")  # strict, as the Twilio request is encoded
    assert _clean(text), text
    assert "\n" not in text and text == text.strip()
    assert measure(text).segments <= cap


@settings(max_examples=400, derandomize=True, deadline=None)
@given(BODIES)
def test_any_body_parses_or_names_its_problem_in_one_clean_line(body: bytes) -> None:
    try:
        notification = parse_notification(body)
    except PayloadError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message
        message.encode("utf-8")  # the 400 answer's body
        return
    sms_text(notification, 3).encode("utf-8")


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with serving(FakeTwilio()) as fake:
        assert isinstance(fake, FakeTwilio)
        yield fake


def test_any_body_over_http_gets_2xx_with_its_sms_or_a_documented_4xx(
    tmp_path: Path, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {BEARER}", "Content-Type": "application/json"}
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):

        @settings(
            max_examples=120,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(BODIES)
        def check(body: bytes) -> None:
            try:
                parse_notification(body)
            except PayloadError:
                valid = False
            else:
                valid = True
            before = len(twilio.created)
            answer = session.post(f"{url}/alerts/solo", data=body, headers=headers, timeout=10)
            assert answer.status_code == (200 if valid else 400), (body[:200], answer.text)
            if valid:
                # Sent now, or deduplicated (an earlier example had the same identity).
                assert len(twilio.created) in (before, before + 1)
            else:
                assert len(twilio.created) == before

        check()
    for message in twilio.created:
        assert _clean(message["body"]), message["body"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
