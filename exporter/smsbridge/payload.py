"""Alertmanager's webhook payload (version 4), checked and turned into our own records.

Only what the bridge uses is required: version, groupKey, status, receiver and the alerts
with their status, labels, startsAt and fingerprint. Every problem is one
:class:`PayloadError` whose text names the field, so the 400 answer says what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from exporter.printable import log_safe

Status = Literal["firing", "resolved"]

_STATUSES = ("firing", "resolved")
# RFC 3339 as Alertmanager writes it (Go's time.Time), nanoseconds allowed.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


class PayloadError(ValueError):
    """The body is not an Alertmanager version 4 webhook; the text says which field and why."""


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert of a notification."""

    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    fingerprint: str

    @property
    def name(self) -> str:
        """The alertname label, or "alert" when the rule left it out."""
        return self.labels.get("alertname") or "alert"


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One webhook: a group of alerts Alertmanager notifies together."""

    group_key: str
    status: Status
    receiver: str
    alerts: tuple[Alert, ...]
    truncated_alerts: int
    common_labels: Mapping[str, str]

    @property
    def firing(self) -> tuple[Alert, ...]:
        """The alerts still firing."""
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        """The alerts that have resolved."""
        return tuple(a for a in self.alerts if a.status == "resolved")


def parse_notification(body: bytes) -> Notification:
    """Decode and check a webhook body; PayloadError says what is wrong."""
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8") from None
    except RecursionError:
        raise PayloadError("body is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError, or an integer too long to convert
        raise PayloadError(f"body is not JSON: {str(exc).split(':')[0]}") from None
    return notification_from(document)


def notification_from(document: Any) -> Notification:
    """Check a decoded webhook document and convert it."""
    if not isinstance(document, dict):
        raise PayloadError(f"body must be a JSON object, got {_kind(document)}")
    version = document.get("version")
    if version != "4":
        shown = "nothing" if version is None else json.dumps(version)
        raise PayloadError(f'version: must be "4", got {shown}')
    alerts = _required(document, "alerts", list, "a list")
    if not alerts:
        raise PayloadError("alerts: must not be empty")
    truncated = document.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError(f"truncatedAlerts: must be a whole number >= 0, got {_kind(truncated)}")
    return Notification(
        group_key=_text(document, "groupKey"),
        status=_status(document, "status"),
        receiver=_text(document, "receiver"),
        alerts=tuple(_alert(item, i) for i, item in enumerate(alerts)),
        truncated_alerts=truncated,
        common_labels=_labels(document, "commonLabels", "commonLabels", required=False),
    )


def _alert(item: Any, index: int) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(item, dict):
        raise PayloadError(f"{where}: must be an object, got {_kind(item)}")
    starts_at = _text(item, "startsAt", where)
    if not _TIMESTAMP.fullmatch(starts_at):
        raise PayloadError(f"{where}.startsAt: must be an RFC 3339 time, got {starts_at[:40]!r}")
    return Alert(
        status=_status(item, "status", where),
        labels=_labels(item, "labels", f"{where}.labels", required=True),
        annotations=_labels(item, "annotations", f"{where}.annotations", required=False),
        starts_at=starts_at,
        fingerprint=_text(item, "fingerprint", where),
    )


def _required(document: dict[str, Any], key: str, kind: type, shown: str, where: str = "") -> Any:
    path = f"{where}.{key}" if where else key
    if key not in document or document[key] is None:
        raise PayloadError(f"{path}: is required")
    value = document[key]
    if not isinstance(value, kind):
        raise PayloadError(f"{path}: must be {shown}, got {_kind(value)}")
    return value


def _text(document: dict[str, Any], key: str, where: str = "") -> str:
    value: str = _required(document, key, str, "a string", where)
    if not value.strip():
        path = f"{where}.{key}" if where else key
        raise PayloadError(f"{path}: must not be empty")
    return value


def _status(document: dict[str, Any], key: str, where: str = "") -> Status:
    value = _text(document, key, where)
    if value not in _STATUSES:
        path = f"{where}.{key}" if where else key
        raise PayloadError(f'{path}: must be "firing" or "resolved", got {value[:40]!r}')
    return "firing" if value == "firing" else "resolved"


def _labels(document: dict[str, Any], key: str, path: str, *, required: bool) -> dict[str, str]:
    if document.get(key) is None:
        if required:
            raise PayloadError(f"{path}: is required")
        return {}
    value = document[key]
    if not isinstance(value, dict):
        raise PayloadError(f"{path}: must be an object of strings, got {_kind(value)}")
    for name, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{path}.{log_safe(name, 40)}: must be a string, got {_kind(item)}")
    return dict(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
