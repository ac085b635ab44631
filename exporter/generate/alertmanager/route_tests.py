"""Generated route tests: for every severity x category x escalation tier, who is told
(nobody beyond the tier a severity reaches), where notify="once" alerts go, that the
Watchdog reaches the heartbeat receiver only and the digest and ticker their own receivers
(a shop's own, where routing.yaml gives it report routes).

The expectations are worked out per alert from routing.yaml's matrix (the severity's
channels, the category's Slack channel, the tier's audiences), not from the route tree,
so running them through ``amtool config routes test`` checks that the tree says the same.
``alertmanager/tests/routes.yml`` holds them; the test suite and `boxoffice check` run them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from exporter.generate.alertdefs import SEVERITIES
from exporter.generate.alertmanager.config import (
    NOBODY,
    ONCE_EMAIL,
    PAGERDUTY,
    once_receiver,
    shop_receiver,
    slack_receiver,
    tier_has,
    tier_receiver,
)
from exporter.generate.alertmanager.heartbeat import heartbeat_receiver
from exporter.generate.alertmanager.reports import digest_receivers, ticker_receivers
from exporter.generate.alertmanager.routing import CATEGORIES, TIERS, Routing
from exporter.generate.yaml_text import dump, header


@dataclass(frozen=True)
class RouteCase:
    """One alert's labels, the receivers it must reach in tree order, and muting."""

    labels: dict[str, str]
    receivers: tuple[str, ...]
    muted_outside_business_hours: bool

    def amtool_args(self, config: str) -> list[str]:
        """Arguments of ``amtool`` that check this case against ``config``."""
        return [
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"--verify.receivers={','.join(self.receivers)}",
            *(f"{k}={v}" for k, v in self.labels.items()),
        ]


def expected_receivers(
    routing: Routing,
    severity: str,
    category: str | None,
    tier: str | None,
    top: int = 3,
) -> tuple[str, ...]:
    """Who hears about an alert: ``None`` for a label the alert does not carry; ``top`` is
    the highest tier its severity reaches (escalation.top_tier of thresholds.yaml)."""
    if severity not in SEVERITIES:
        return (slack_receiver(routing.file.slack.default_channel),)
    channels = routing.channels(severity)
    level = tier or "1"
    out: list[str] = []
    if level == "1":
        if "slack" in channels:
            channel = routing.slack_channel(category) if category else None
            out.append(slack_receiver(channel or routing.file.slack.default_channel))
            if severity == "critical":
                out.append(slack_receiver(routing.file.slack.critical_channel))
        if "pagerduty" in channels:
            out.append(PAGERDUTY)
    if level in TIERS[:top]:
        out += [
            tier_receiver(level, kind)
            for kind in ("email", "sms")
            if kind in channels and tier_has(routing, level, kind)
        ]
    return tuple(out) or (NOBODY,)


def informational_receivers(routing: Routing, category: str) -> tuple[str, ...]:
    """Who hears about a notify="once" alert of ``category``, whatever its severity."""
    info = routing.file.informational
    out: list[str] = []
    if info.slack:
        out.append(once_receiver(slack_receiver(routing.slack_channel(category))))
    if any(routing.file.audiences[name].email for name in info.audiences):
        out.append(ONCE_EMAIL)
    return tuple(out) or (NOBODY,)


def route_cases(routing: Routing, muted: bool, tops: dict[str, int]) -> list[RouteCase]:
    """The full matrix, informational alerts, then alerts missing a label (hand-written
    rules). ``tops``: the highest tier each severity reaches."""
    mute = set(routing.file.mute_outside_business_hours) if muted else set()
    cases = [
        RouteCase(
            {"severity": severity, "category": category, "escalation": tier},
            expected_receivers(routing, severity, category, tier, tops[severity]),
            severity in mute,
        )
        for severity in SEVERITIES
        for category in CATEGORIES
        for tier in TIERS
    ]
    cases += [
        RouteCase(
            {"severity": severity, "category": category, "escalation": "1", "notify": "once"},
            informational_receivers(routing, category),
            bool(mute),
        )
        for severity in ("critical", "low")
        for category in CATEGORIES
    ]
    for severity in SEVERITIES:
        cases.append(
            RouteCase(
                {"severity": severity, "category": "payments"},
                expected_receivers(routing, severity, "payments", None, tops[severity]),
                severity in mute,
            )
        )
        cases.append(
            RouteCase(
                {"severity": severity, "escalation": "1"},
                expected_receivers(routing, severity, None, "1", tops[severity]),
                severity in mute,
            )
        )
    watchdog = {"alertname": "Watchdog", "severity": "low", "category": "monitoring"}
    watchdog |= {"escalation": "1", "notify": "heartbeat"}
    cases.append(RouteCase(watchdog, (heartbeat_receiver(routing, NOBODY),), False))
    # The owner's reports: their own receivers only, whatever the severity; never muted.
    cases += report_cases(routing)
    for labels in ({"alertname": "Custom"}, {"severity": "warning", "category": "payments"}):
        receivers = expected_receivers(routing, labels.get("severity", ""), None, None)
        cases.append(RouteCase(labels, receivers, False))
    return cases + shop_cases(routing, mute, tops)


def report_cases(routing: Routing) -> list[RouteCase]:
    """The owner's reports reach their own receivers only, whatever the severity, never
    muted: the default ones, then each shop's (its own receivers where it has report routes
    of its own, the default ones where it has not)."""
    report = {"severity": "low", "category": "sales"}
    digest = {"alertname": "DailyDigest", **report, "notify": "digest", "slot": "morning"}
    ticker = {"alertname": "SalesTicker", **report, "notify": "ticker", "minute": "0"}
    cases = [
        RouteCase(digest, digest_receivers(routing, NOBODY), False),
        RouteCase(ticker, ticker_receivers(), False),
    ]
    for shop in routing.shops():
        label, value, _routes = shop
        cases.append(
            RouteCase({**digest, label: value}, digest_receivers(routing, NOBODY, shop), False)
        )
        cases.append(RouteCase({**ticker, label: value}, ticker_receivers(shop), False))
    return cases


def shop_cases(routing: Routing, mute: Collection[str], tops: dict[str, int]) -> list[RouteCase]:
    """Alerts of a shop with routes of its own (routing.yaml ``scopes``) reach the shop's
    receivers, and the default ones after them only when the shop says ``also_default``.
    (A shop with report routes only takes the default routes: the default matrix.)"""
    cases = []
    for label, value, shop in routing.alert_shops():
        own = routing.for_shop(shop)
        for severity in SEVERITIES:
            for category in CATEGORIES:
                for tier in TIERS:
                    found = expected_receivers(own, severity, category, tier, tops[severity])
                    receivers = [shop_receiver(label, value, shop, r) for r in found]
                    if shop.also_default:
                        receivers += expected_receivers(
                            routing, severity, category, tier, tops[severity]
                        )
                    labels = {"severity": severity, "category": category, "escalation": tier}
                    # Each branch that tells no one resolves to ``nobody``.
                    case = RouteCase({**labels, label: value}, tuple(receivers), severity in mute)
                    cases.append(case)
    return cases


def route_tests_file(cases: list[RouteCase], sources: str) -> str:
    body: dict[str, Any] = {
        "cases": [
            {
                "labels": case.labels,
                "receivers": list(case.receivers),
                "muted_outside_business_hours": case.muted_outside_business_hours,
            }
            for case in cases
        ]
    }
    what = (
        "Route tests of alertmanager.yml: each case's labels must reach exactly these "
        "receivers, in this order.\n# Run one: amtool config routes test "
        "--config.file=alertmanager/alertmanager.yml --verify.receivers=R1,R2 label=value ..."
    )
    return header(sources, what) + dump(body)


def load_route_cases(data: Any) -> list[RouteCase]:
    """Cases back from the parsed routes.yml (the tests and `boxoffice check` read it)."""
    return [
        RouteCase(
            {str(k): str(v) for k, v in case["labels"].items()},
            tuple(str(r) for r in case["receivers"]),
            bool(case["muted_outside_business_hours"]),
        )
        for case in data["cases"]
    ]
