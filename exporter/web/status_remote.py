"""The status page's two remote readers: Prometheus' query API and Alertmanager's alerts API.

Both are outside input (docs/security.md): each call has one timeout for the whole answer,
reads at most ``MAX_BODY`` bytes (decoded), follows no redirect, and turns any failure into
:class:`Unavailable` with a short reason the page shows ("timed out after 3s"). Parsing
accepts only the shapes documented by each API and keeps a bounded number of items.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from exporter.printable import plain_text

MAX_BODY = 1 << 20  # bytes of one answer, after decompression
MAX_SERIES = 50  # series kept per query answer
MAX_ALERTS = 500  # alerts parsed from one answer
MAX_TEXT = 300  # characters kept of a label or annotation


class Unavailable(Exception):
    """A remote answer the page cannot use; the message is shown as it is."""


def get_json(
    session: requests.Session,
    url: str,
    params: Mapping[str, str],
    *,
    timeout: float,
    max_bytes: int = MAX_BODY,
) -> Any:
    """GET ``url`` and parse its JSON body, within ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    try:
        with session.get(
            url,
            params=params,
            timeout=timeout,
            stream=True,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise Unavailable(f"answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise Unavailable(f"answer larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise Unavailable(f"timed out after {timeout:g}s")
    except requests.Timeout:
        raise Unavailable(f"timed out after {timeout:g}s") from None
    except requests.ConnectionError:
        raise Unavailable("cannot connect") from None
    except requests.RequestException as exc:
        raise Unavailable(f"request failed ({type(exc).__name__})") from None
    try:
        return json.loads(bytes(body))
    except ValueError:
        raise Unavailable("answer is not JSON") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        return ""
    shown = plain_text(value[: MAX_TEXT * 2])
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


def query(
    session: requests.Session, base: str, expr: str, *, at: int, timeout: float
) -> list[Series]:
    """An instant query (``/api/v1/query``) at Unix time ``at``, answered with a vector."""
    document = get_json(
        session,
        f"{base.rstrip('/')}/api/v1/query",
        {"query": expr, "time": str(at), "timeout": f"{timeout:g}s"},
        timeout=timeout,
    )
    return parse_vector(document)


def parse_vector(document: object) -> list[Series]:
    """The series of a Prometheus vector answer (Unavailable for anything else)."""
    if not isinstance(document, dict) or document.get("status") != "success":
        error = _text(document.get("error")) if isinstance(document, dict) else ""
        raise Unavailable(f"query failed: {error}" if error else "unexpected answer")
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise Unavailable("unexpected answer")
    result = data.get("result")
    if not isinstance(result, list):
        raise Unavailable("unexpected answer")
    found = []
    for item in result[:MAX_SERIES]:
        if not isinstance(item, dict):
            raise Unavailable("unexpected answer")
        metric, pair = item.get("metric", {}), item.get("value")
        if not isinstance(metric, dict) or not isinstance(pair, list) or len(pair) != 2:
            raise Unavailable("unexpected answer")
        try:
            value = float(pair[1])
        except (TypeError, ValueError):
            raise Unavailable("unexpected answer") from None
        if not math.isfinite(value):
            continue  # a ratio over nothing: no figure rather than "NaN"
        found.append(Series({_text(k): _text(v) for k, v in metric.items()}, value))
    return found


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str


ALERTS_PARAMS = {"active": "true", "silenced": "false", "inhibited": "false"}


def firing_alerts(session: requests.Session, base: str, *, timeout: float) -> list[Alert]:
    """Alerts Alertmanager holds as active, neither silenced nor inhibited (API v2)."""
    document = get_json(
        session, f"{base.rstrip('/')}/api/v2/alerts", ALERTS_PARAMS, timeout=timeout
    )
    return parse_alerts(document)


def parse_alerts(document: object) -> list[Alert]:
    """The alerts of an ``/api/v2/alerts`` answer (Unavailable for anything else)."""
    if not isinstance(document, list):
        raise Unavailable("unexpected answer")
    found = []
    for item in document[:MAX_ALERTS]:
        if not isinstance(item, dict):
            raise Unavailable("unexpected answer")
        labels, annotations = item.get("labels"), item.get("annotations", {})
        if not isinstance(labels, dict) or not isinstance(annotations, dict):
            raise Unavailable("unexpected answer")
        found.append(
            Alert(
                labels={_text(k): _text(v) for k, v in list(labels.items())[:50]},
                annotations={_text(k): _text(v) for k, v in list(annotations.items())[:50]},
                starts_at=_text(item.get("startsAt")),
            )
        )
    return found
