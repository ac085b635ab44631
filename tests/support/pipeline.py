"""The whole alerting pipeline for end-to-end tests, as `boxoffice demo` runs it.

Real PostgreSQL → the exporter (in-process, 1s collection) → real Prometheus (1s scrapes and
evaluations, the rules generated from a compressed profile of rules/thresholds.yaml) → real
Alertmanager (the configuration generated from alertmanager/routing.yaml, receivers local)
→ the SMS bridge → a local Twilio API, plus the demo's Slack, PagerDuty and SMTP receivers.
The demo's own stack (exporter/demo/stack.py) starts everything after the exporter, so the
tests exercise the code the demo runs, with the bridge sending instead of its dry run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from exporter.demo.alerting import TwilioAccount
from exporter.demo.sinks import Notification, sms_notification
from exporter.demo.stack import PrometheusStack
from tests.support.exporter import config_for, free_port, running_exporter, scrape_until, value
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import Reply, Request
from tests.support.inbox import RecordingInbox

ROOT = Path(__file__).resolve().parent.parent.parent
THRESHOLDS = ROOT / "rules" / "thresholds.yaml"
ROUTING = ROOT / "alertmanager" / "routing.yaml"
MIN_WINDOW = 10.0  # seconds: the profile's shortest rate window at test speeds


class TimedTwilio(FakeTwilio):
    """The local Twilio API, noting the wall-clock time each SMS request was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str, str]] = []  # (at, to, body)

    def answer(self, request: Request) -> Reply:
        reply = super().answer(request)
        if request.method == "POST" and reply.status == 201:
            message = json.loads(reply.body)
            self.arrivals.append((time.time(), message["to"], message["body"]))
        return reply


@dataclass(kw_only=True)
class Pipeline:
    """A running pipeline and what it delivered."""

    dsn: str
    exporter_url: str
    stack: PrometheusStack
    twilio: TimedTwilio
    lines: list[str] = field(default_factory=list)

    @property
    def prometheus_url(self) -> str:
        assert self.stack.prometheus is not None
        return self.stack.prometheus.url

    @property
    def alertmanager_url(self) -> str:
        assert self.stack.alertmanager is not None
        return self.stack.alertmanager.url

    def group_of(self) -> dict[str, str]:
        assert self.stack.notifier is not None
        return {n: g for g, numbers in self.stack.notifier.groups.items() for n in numbers}

    def texts(self) -> list[Notification]:
        """The SMS that reached Twilio, read back as notifications (group as the target)."""
        groups = self.group_of()
        out = []
        for at, to, body in list(self.twilio.arrivals):
            found = sms_notification(at, groups.get(to, to), body)
            assert found is not None, f"an SMS the tests cannot read: {body!r}"
            out.append(found)
        return out

    def notifications(self) -> list[Notification]:
        """Everything delivered: Slack, PagerDuty, email and SMS, in arrival order."""
        inbox = self.stack.inbox
        assert isinstance(inbox, RecordingInbox)
        return sorted([*inbox.all(), *self.texts()], key=lambda n: n.at)

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.prometheus_url}/api/v1/alerts", timeout=5)
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return alerts

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.prometheus_alerts() if a["state"] == "firing"]

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=5)
        alerts: list[dict[str, Any]] = response.json()
        return alerts


@contextmanager
def running_pipeline(
    dsn: str,
    *,
    speed: float,
    twilio: TimedTwilio,
    reports_after: float | None = None,
    **exporter_env: str,
) -> Iterator[Pipeline]:
    """Start the exporter on ``dsn``, then Prometheus, Alertmanager, the bridge and the sinks
    with the profile of thresholds.yaml compressed ``speed`` times; stop all afterwards.
    ``reports_after``: the digest's slot that many seconds on, and the ticker on."""
    config = config_for(dsn, **exporter_env)
    with running_exporter(config) as (_exporter, url):
        scrape_until(url, lambda s: value(s, "boxoffice_source_up", source="postgres") == 1)
        lines: list[str] = []
        stack = PrometheusStack(
            THRESHOLDS,
            speed,
            url.removeprefix("http://"),
            lines.append,
            inbox=RecordingInbox(lines.append),
            listen=f"127.0.0.1:{free_port()}",
            routing=ROUTING,
            twilio=TwilioAccount(
                account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base=twilio.url
            ),
            min_window=MIN_WINDOW,
            poll=0.5,
            reports_after=reports_after,
        )
        try:
            stack.start()
            # Rules load once Prometheus holds a full shortest window (MIN_WINDOW seconds).
            assert stack.rules_loaded.wait(MIN_WINDOW + 20), "\n".join(lines)
            yield Pipeline(dsn=dsn, exporter_url=url, stack=stack, twilio=twilio, lines=lines)
        finally:
            stack.stop()


def twilio_source_env(twilio: FakeTwilio, directory: Path) -> dict[str, str]:
    """Exporter settings that read ``twilio`` as its Twilio source."""
    token = directory / "twilio_token"
    token.write_text(AUTH_TOKEN)
    return {
        "BOXOFFICE_SOURCES_TWILIO_ENABLED": "true",
        "BOXOFFICE_SOURCES_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "BOXOFFICE_SOURCES_TWILIO_AUTH_TOKEN_FILE": str(token),
        "BOXOFFICE_SOURCES_TWILIO_API_BASE": twilio.url,
        "BOXOFFICE_SOURCES_TWILIO_INTERVAL": "500ms",
        "BOXOFFICE_SOURCES_TWILIO_TIMEOUT": "1s",
    }
