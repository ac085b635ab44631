"""Alertmanager webhook payloads: what is accepted, and the exact reason for what is not."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from exporter.smsbridge.payload import PayloadError, parse_notification
from tests.support.alerts import alert, body, payment_alert, webhook

Doc = dict[str, Any]


def _valid() -> Doc:
    return webhook(payment_alert(), alert("InventoryLow", category="inventory", status="resolved"))


def _set(path: str, value: Any) -> Callable[[Doc], Any]:
    def change(doc: Doc) -> Doc:
        node: Any = doc
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
        return doc

    return change


def _drop(path: str) -> Callable[[Doc], Any]:
    def change(doc: Doc) -> Doc:
        node: Any = doc
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[leaf]
        return doc

    return change


RAW = [
    (b"", "body is not JSON: Expecting value"),
    (b"{", "body is not JSON: Expecting property name enclosed in double quotes"),
    (b'{"version": "4"', "body is not JSON: Expecting ',' delimiter"),
    (b"\xff\xfe{}", "body is not UTF-8"),
    (b"[" * 100_000, "body is nested too deeply"),
    (
        b"1" * 5000,
        "body is not JSON: Exceeds the limit (4300 digits) for integer string conversion",
    ),
    (b"[]", "body must be a JSON object, got a list"),
    (b'"text"', "body must be a JSON object, got a string"),
    (b"null", "body must be a JSON object, got null"),
    (b"42", "body must be a JSON object, got a number"),
]


@pytest.mark.parametrize(("raw", "message"), RAW)
def test_undecodable_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(raw)
    assert str(caught.value) == message


CHANGES = [
    (_drop("version"), 'version: must be "4", got nothing'),
    (_set("version", 4), 'version: must be "4", got 4'),
    (_set("version", "3"), 'version: must be "4", got "3"'),
    (_drop("alerts"), "alerts: is required"),
    (_set("alerts", None), "alerts: is required"),
    (_set("alerts", {}), "alerts: must be a list, got an object"),
    (_set("alerts", []), "alerts: must not be empty"),
    (_set("truncatedAlerts", -1), "truncatedAlerts: must be a whole number >= 0, got a number"),
    (_set("truncatedAlerts", "2"), "truncatedAlerts: must be a whole number >= 0, got a string"),
    (_set("truncatedAlerts", True), "truncatedAlerts: must be a whole number >= 0, got a boolean"),
    (_drop("groupKey"), "groupKey: is required"),
    (_set("groupKey", ""), "groupKey: must not be empty"),
    (_set("groupKey", ["a"]), "groupKey: must be a string, got a list"),
    (_drop("status"), "status: is required"),
    (_set("status", "pending"), 'status: must be "firing" or "resolved", got \'pending\''),
    (_drop("receiver"), "receiver: is required"),
    (_set("receiver", 7), "receiver: must be a string, got a number"),
    (_set("commonLabels", []), "commonLabels: must be an object of strings, got a list"),
    (
        _set("commonLabels", {"severity": 1}),
        "commonLabels.severity: must be a string, got a number",
    ),
    (_set("alerts.0", "alert"), "alerts[0]: must be an object, got a string"),
    (_set("alerts.1", None), "alerts[1]: must be an object, got null"),
    (_drop("alerts.0.startsAt"), "alerts[0].startsAt: is required"),
    (
        _set("alerts.0.startsAt", "yesterday"),
        "alerts[0].startsAt: must be an RFC 3339 time, got 'yesterday'",
    ),
    (
        _set("alerts.0.startsAt", "2026-11-26 09:00:00Z"),
        "alerts[0].startsAt: must be an RFC 3339 time, got '2026-11-26 09:00:00Z'",
    ),
    (
        _set("alerts.0.startsAt", "2026-11-26T09:00:00"),
        "alerts[0].startsAt: must be an RFC 3339 time, got '2026-11-26T09:00:00'",
    ),
    (_drop("alerts.1.status"), "alerts[1].status: is required"),
    (
        _set("alerts.1.status", "silenced"),
        'alerts[1].status: must be "firing" or "resolved", got \'silenced\'',
    ),
    (_drop("alerts.0.labels"), "alerts[0].labels: is required"),
    (
        _set("alerts.0.labels", "alertname=X"),
        "alerts[0].labels: must be an object of strings, got a string",
    ),
    (
        _set("alerts.0.labels", {"alertname": ["X"]}),
        "alerts[0].labels.alertname: must be a string, got a list",
    ),
    (
        _set("alerts.0.annotations", {"summary": None}),
        "alerts[0].annotations.summary: must be a string, got null",
    ),
    (
        _set("alerts.0.annotations", 3),
        "alerts[0].annotations: must be an object of strings, got a number",
    ),
    (_drop("alerts.1.fingerprint"), "alerts[1].fingerprint: is required"),
    (_set("alerts.1.fingerprint", " "), "alerts[1].fingerprint: must not be empty"),
    (_set("alerts.1.fingerprint", 12), "alerts[1].fingerprint: must be a string, got a number"),
]


@pytest.mark.parametrize(("change", "message"), CHANGES)
def test_schema_errors_name_the_field(change: Callable[[Doc], Doc], message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(body(change(_valid())))
    assert str(caught.value) == message


def test_a_valid_webhook_becomes_our_records() -> None:
    notification = parse_notification(body(_valid()))
    assert notification.status == "firing"
    assert notification.receiver == "sms-oncall"
    assert [a.name for a in notification.firing] == ["PaymentSuccessRateLow"]
    assert [a.name for a in notification.resolved] == ["InventoryLow"]
    first = notification.alerts[0]
    assert first.fingerprint == "a1b2c3d4e5f60718"
    assert first.starts_at == "2026-11-26T09:00:00.123456789Z"
    assert first.annotations["summary"] == "Payment success 91% over 5m"
    assert notification.truncated_alerts == 0


def test_optional_fields_may_be_missing_and_unknown_ones_are_ignored() -> None:
    doc = _valid()
    for key in (
        "truncatedAlerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
    ):
        del doc[key]
    del doc["alerts"][0]["annotations"]
    doc["orgId"] = 1  # Grafana adds fields; they do no harm
    notification = parse_notification(json.dumps(doc).encode())
    assert notification.alerts[0].annotations == {}
    assert notification.alerts[0].name == "PaymentSuccessRateLow"


def test_alertmanager_sample_with_offset_and_nanoseconds() -> None:
    doc = copy.deepcopy(_valid())
    doc["alerts"][0]["startsAt"] = "2018-08-03T09:52:26.739266876+02:00"
    assert parse_notification(body(doc)).alerts[0].starts_at.endswith("+02:00")
