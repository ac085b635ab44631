"""The owner's reports in alertmanager.yml: the daily digest and the sales ticker (issue 18).

Two branches near the top of the route tree that do not continue, so these alerts never
reach a severity branch: no PagerDuty, no SMS, no escalation tier, no business-hours
muting, whatever their severity label. Each report is its own group (the digest by slot and
local day, the ticker by minute: labels its rules set), sent once after ``group_wait`` and
never repeated (a year's repeat interval outlives the alert), and never resolved. With an
Alertmanager cluster the notification log is shared, so a group is sent by one peer.

A shop with report routes of its own (routing.yaml ``scopes.<label>.<value>.digest`` or
``.ticker``) gets a child of the report's branch, first, matching its scope label value:
its report goes to its own receivers (``seller-acme-digest-slack``) and stops there, so
it never reaches the default receivers, where the other shops read theirs. Being a child
of the report's branch, it keeps that branch's guarantees and timing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exporter.generate.alertmanager.routing import Routing, ShopDigestRoute, ShopRoutes
from exporter.generate.promql import duration_text

DIGEST_SLACK, DIGEST_EMAIL, TICKER_SLACK = "digest-slack", "digest-email", "ticker-slack"
DIGEST, TICKER = 'notify="digest"', 'notify="ticker"'
NEVER_AGAIN = duration_text(365 * 86400.0)
TITLE = '{{ template "boxoffice.report.title" . }}'
TEXT = '{{ template "boxoffice.report.text" . }}'


Shop = tuple[str, str, ShopRoutes]  # scope label, its value, the shop's routes


def shop_report_receiver(label: str, value: str, receiver: str) -> str:
    """The name of a report receiver of one shop: ``seller-acme-digest-slack``."""
    return f"{label}-{value}-{receiver}"


def _digest_names(digest: ShopDigestRoute | None, routing: Routing) -> list[str]:
    """The digest's receivers (the default names) of a shop's route, or the default route."""
    slack = routing.file.digest.slack_channel if digest is None else digest.slack_channel
    email = routing.file.digest.email if digest is None else digest.email
    names = [DIGEST_SLACK] if slack is not None else []
    return names + ([DIGEST_EMAIL] if email else [])


def digest_receivers(routing: Routing, nobody: str, shop: Shop | None = None) -> tuple[str, ...]:
    """Where a digest goes, in tree order; ``shop``: the digest of that shop."""
    if shop is not None and shop[2].digest is not None:
        label, value, routes = shop
        names = _digest_names(routes.digest, routing)
        return tuple(shop_report_receiver(label, value, name) for name in names)
    return tuple(_digest_names(None, routing)) or (nobody,)


def ticker_receivers(shop: Shop | None = None) -> tuple[str, ...]:
    """Where a ticker goes; ``shop``: the ticker of that shop."""
    if shop is not None and shop[2].ticker is not None:
        return (shop_report_receiver(shop[0], shop[1], TICKER_SLACK),)
    return (TICKER_SLACK,)


def _digest_leaves(names: Iterable[str]) -> list[dict[str, Any]]:
    """One leaf per receiver; each continues, so the Slack channel and the list both hear."""
    return [{"receiver": name, "continue": True} for name in names]


def report_routes(
    routing: Routing, nobody: str, scope: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The digest's and the ticker's branches of the route tree; each shop's report is its
    own group (``scope``: thresholds.yaml's scope labels), and a shop with report routes
    of its own has a child of the branch, before the default receivers."""
    f = routing.file
    shops = routing.shops()
    own_digest = [
        {
            "receiver": nobody,
            "matchers": [f'{shop[0]}="{shop[1]}"'],
            "routes": _digest_leaves(digest_receivers(routing, nobody, shop)),
        }
        for shop in shops
        if shop[2].digest is not None
    ]
    digest = {
        "receiver": nobody,
        "matchers": [DIGEST],
        "group_by": ["alertname", "slot", "day", *scope],
        "group_wait": duration_text(f.digest.group_wait),
        "group_interval": "5m",
        "repeat_interval": NEVER_AGAIN,
        "routes": own_digest + _digest_leaves(_digest_names(None, routing)),
    }
    ticker: dict[str, Any] = {
        "receiver": TICKER_SLACK,
        "matchers": [TICKER],
        "group_by": ["alertname", "minute", *scope],
        "group_wait": duration_text(f.ticker.group_wait),
        "group_interval": "1m",
        "repeat_interval": NEVER_AGAIN,
    }
    own_ticker = [
        {"receiver": ticker_receivers(shop)[0], "matchers": [f'{shop[0]}="{shop[1]}"']}
        for shop in shops
        if shop[2].ticker is not None
    ]
    if own_ticker:
        ticker["routes"] = own_ticker
    return [digest, ticker]


def _slack(channel: str) -> dict[str, Any]:
    return {
        "channel": channel,
        "send_resolved": False,
        "title": TITLE,
        "text": TEXT,
        "fallback": TITLE,
    }


def _digest_email(addresses: list[str]) -> dict[str, Any]:
    return {
        "to": ", ".join(addresses),
        "send_resolved": False,
        "headers": {"Subject": TITLE},
        "text": TEXT,
    }


def report_receivers(routing: Routing, used: set[str]) -> list[dict[str, Any]]:
    """The receivers of the default report routes, then of each shop's own, where used."""
    f = routing.file
    out: list[dict[str, Any]] = []
    if DIGEST_SLACK in used and f.digest.slack_channel is not None:
        out.append({"name": DIGEST_SLACK, "slack_configs": [_slack(f.digest.slack_channel)]})
    if DIGEST_EMAIL in used:
        out.append({"name": DIGEST_EMAIL, "email_configs": [_digest_email(f.digest.email)]})
    if TICKER_SLACK in used:
        out.append({"name": TICKER_SLACK, "slack_configs": [_slack(f.ticker.slack_channel)]})
    for label, value, shop in routing.shops():
        digest, ticker = shop.digest, shop.ticker
        candidates: list[dict[str, Any]] = []
        if digest is not None and digest.slack_channel is not None:
            candidates.append(
                {"name": DIGEST_SLACK, "slack_configs": [_slack(digest.slack_channel)]}
            )
        if digest is not None and digest.email:
            candidates.append(
                {"name": DIGEST_EMAIL, "email_configs": [_digest_email(digest.email)]}
            )
        if ticker is not None:
            candidates.append(
                {"name": TICKER_SLACK, "slack_configs": [_slack(ticker.slack_channel)]}
            )
        for receiver in candidates:
            name = shop_report_receiver(label, value, receiver["name"])
            if name in used:
                out.append({**receiver, "name": name})
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
