"""The owner's reports in alertmanager.yml: the daily digest and the sales ticker (issue 18).

Two branches near the top of the route tree that do not continue, so these alerts never
reach a severity branch: no PagerDuty, no SMS, no escalation tier, no business-hours
muting, whatever their severity label. Each report is its own group (the digest by slot and
local day, the ticker by minute: labels its rules set), sent once after ``group_wait`` and
never repeated (a year's repeat interval outlives the alert), and never resolved. With an
Alertmanager cluster the notification log is shared, so a group is sent by one peer.
"""

from __future__ import annotations

from typing import Any

from exporter.generate.alertmanager.routing import Routing
from exporter.generate.promql import duration_text

DIGEST_SLACK, DIGEST_EMAIL, TICKER_SLACK = "digest-slack", "digest-email", "ticker-slack"
DIGEST, TICKER = 'notify="digest"', 'notify="ticker"'
NEVER_AGAIN = duration_text(365 * 86400.0)
TITLE = '{{ template "boxoffice.report.title" . }}'
TEXT = '{{ template "boxoffice.report.text" . }}'


def digest_receivers(routing: Routing, nobody: str) -> tuple[str, ...]:
    """Where a digest goes, in tree order."""
    f = routing.file
    out = [DIGEST_SLACK] if f.digest.slack_channel is not None else []
    out += [DIGEST_EMAIL] if f.digest.email else []
    return tuple(out) or (nobody,)


def report_routes(
    routing: Routing, nobody: str, scope: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The digest's and the ticker's branches of the route tree; each shop's report is its
    own group (``scope``: thresholds.yaml's scope labels)."""
    f = routing.file
    leaves = []
    if f.digest.slack_channel is not None:
        leaves.append({"receiver": DIGEST_SLACK, "continue": True})
    if f.digest.email:
        leaves.append({"receiver": DIGEST_EMAIL, "continue": True})
    digest = {
        "receiver": nobody,
        "matchers": [DIGEST],
        "group_by": ["alertname", "slot", "day", *scope],
        "group_wait": duration_text(f.digest.group_wait),
        "group_interval": "5m",
        "repeat_interval": NEVER_AGAIN,
        "routes": leaves,
    }
    ticker = {
        "receiver": TICKER_SLACK,
        "matchers": [TICKER],
        "group_by": ["alertname", "minute", *scope],
        "group_wait": duration_text(f.ticker.group_wait),
        "group_interval": "1m",
        "repeat_interval": NEVER_AGAIN,
    }
    return [digest, ticker]


def _slack(channel: str) -> dict[str, Any]:
    return {
        "channel": channel,
        "send_resolved": False,
        "title": TITLE,
        "text": TEXT,
        "fallback": TITLE,
    }


def report_receivers(routing: Routing, used: set[str]) -> list[dict[str, Any]]:
    f = routing.file
    out: list[dict[str, Any]] = []
    if DIGEST_SLACK in used and f.digest.slack_channel is not None:
        out.append({"name": DIGEST_SLACK, "slack_configs": [_slack(f.digest.slack_channel)]})
    if DIGEST_EMAIL in used:
        email = {
            "to": ", ".join(f.digest.email),
            "send_resolved": False,
            "headers": {"Subject": TITLE},
            "text": TEXT,
        }
        out.append({"name": DIGEST_EMAIL, "email_configs": [email]})
    if TICKER_SLACK in used:
        out.append({"name": TICKER_SLACK, "slack_configs": [_slack(f.ticker.slack_channel)]})
    return out


def report_templates() -> dict[str, str]:
    """Template name -> body: the title is the summary, the text each report's description."""
    return {
        "boxoffice.report.title": (
            "{{ .CommonLabels.alertname }}: {{ with .CommonAnnotations.summary }}{{ . }}"
            "{{ else }}{{ (index .Alerts 0).Annotations.summary }}{{ end }}"
        ),
        "boxoffice.report.text": (
            "{{ range .Alerts.Firing }}{{ .Annotations.description }}\n{{ end }}"
        ),
    }
