"""alertmanager/routing.yaml: YAML -> typed schema (unknown keys refused) -> checks -> frozen.

The file says who hears about what: Slack channels per category, the PagerDuty service,
SMTP, the SMS bridge, the audiences (email addresses and SMS bridge groups), which
audiences each escalation tier adds, the severity -> channel matrix, timing per severity
and which inhibitions apply. Business hours and the time zone are not repeated here: they
come from rules/thresholds.yaml, so the rules and the muting cannot disagree.

This module is the schema and the checked :class:`Routing`; ``routing_load.py`` reads the
file and holds every check that refuses one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Literal

from exporter.config.typed import Duration, field, positive
from exporter.generate.alertdefs import Category, Severity

Channel = Literal["slack", "email", "sms", "pagerduty"]
CATEGORIES: tuple[Category, ...] = (
    "payments",
    "inventory",
    "sales",
    "messaging",
    "webhooks",
    "availability",
    "monitoring",
)
TIERS: tuple[str, ...] = ("1", "2", "3")

_SLACK_CHANNEL = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}")
AUDIENCE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_SMS_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # as the bridge accepts them
_EMAIL = re.compile(r"[^@\s,<>\"]+@[^@\s,<>\"]+\.[^@\s,<>\"]+")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_HOSTPORT = re.compile(r"[A-Za-z0-9.-]+:\d{1,5}")


def _absolute(value: str) -> str | None:
    if not os.path.isabs(value):
        return f"must be an absolute path (as Alertmanager sees it), got {value!r}"
    if any(c in value for c in "\n\"'{}"):
        return "must not contain quotes, braces or newlines"
    return None


def slack_channel_problem(value: str) -> str | None:
    ok = _SLACK_CHANNEL.fullmatch(value)
    return None if ok else f"must be a Slack channel like #payment-alerts, got {value!r}"


def email_problem(value: str) -> str | None:
    return None if _EMAIL.fullmatch(value) else f"is not an email address: {value!r}"


def _hostport(value: str) -> str | None:
    return None if _HOSTPORT.fullmatch(value) else f"must be host:port, got {value!r}"


def _sms_group(value: str) -> str | None:
    if _SMS_GROUP.fullmatch(value):
        return None
    return "SMS bridge group names are letters, digits, '_', '.' and '-' (as in sms_bridge.groups)"


def _color(value: str) -> str | None:
    ok = re.fullmatch(r"#[0-9A-Fa-f]{6}", value)
    return None if ok else f"must be a colour like #E74A3B, got {value!r}"


@dataclass(frozen=True, kw_only=True)
class Colors:
    """Slack attachment colour per severity (seed 000's palette) and for resolved alerts."""

    critical: str = field("#000000", check=_color)
    high: str = field("#E74A3B", check=_color)
    medium: str = field("#F6C23E", check=_color)
    low: str = field("#36B9CC", check=_color)
    resolved: str = field("#2EB67D", check=_color)


@dataclass(frozen=True, kw_only=True)
class Slack:
    api_url_file: str = field(check=_absolute, doc="File holding the incoming-webhook URL.")
    default_channel: str = field(
        "#alerts", check=slack_channel_problem, doc="Categories not listed."
    )
    critical_channel: str = field("#critical-alerts", check=slack_channel_problem)
    channels: dict[str, str] = field(default_factory=dict, doc="Channel per alert category.")
    colors: Colors = field(default_factory=Colors)
    send_resolved: bool = True


@dataclass(frozen=True, kw_only=True)
class PagerDuty:
    routing_key_file: str | None = field(None, check=_absolute, doc="Events API v2 key file.")
    service_key_file: str | None = field(None, check=_absolute, doc="Events API v1 key file.")
    url: str | None = field(None, doc="Events API endpoint, when not PagerDuty's default.")
    send_resolved: bool = True


@dataclass(frozen=True, kw_only=True)
class Email:
    smarthost: str = field(check=_hostport, doc="SMTP server, host:port.")
    from_: str = field(key="from", check=email_problem)
    auth_username: str | None = None
    auth_password_file: str | None = field(None, check=_absolute)
    require_tls: bool = True
    send_resolved: bool = False


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password_file: str = field(check=_absolute)


@dataclass(frozen=True, kw_only=True)
class SmsBridge:
    url: str = field(doc="Base URL of `boxoffice sms-bridge`; /alerts/<group> is appended.")
    credentials_file: str | None = field(None, check=_absolute, doc="Bearer token file.")
    basic_auth: BasicAuth | None = None
    max_alerts: int = field(20, check=positive, doc="Alerts per webhook; the SMS counts the rest.")
    send_resolved: bool = True


@dataclass(frozen=True)
class Audience:
    email: list[str] = field(default_factory=list)
    sms_group: str | None = field(None, check=_sms_group, doc="A group of sms_bridge.groups.")


@dataclass(frozen=True)
class Escalation:
    tier_1: list[str] = field(doc="Audiences told at once.")
    tier_2: list[str] = field(default_factory=list, doc="Audiences added when tier 2 fires.")
    tier_3: list[str] = field(default_factory=list, doc="Audiences added when tier 3 fires.")


@dataclass(frozen=True, kw_only=True)
class Channels:
    critical: list[Channel] = field(default_factory=lambda: ["slack", "email", "sms", "pagerduty"])
    high: list[Channel] = field(default_factory=lambda: ["slack", "email", "sms"])
    medium: list[Channel] = field(default_factory=lambda: ["slack", "email"])
    low: list[Channel] = field(default_factory=lambda: ["slack", "email"])


@dataclass(frozen=True)
class Timing:
    group_wait: Duration = field(doc="Wait for more alerts of a new group before notifying.")
    group_interval: Duration = field(check=positive, doc="Between notifications of a group.")
    repeat_interval: Duration = field(check=positive, doc="Reminder of an unchanged group.")


def _timing(wait: float, interval: float, repeat: float) -> Timing:
    return Timing(Duration(wait), Duration(interval), Duration(repeat))


@dataclass(frozen=True, kw_only=True)
class Timings:
    critical: Timing = field(default_factory=lambda: _timing(10, 60, 3600))
    high: Timing = field(default_factory=lambda: _timing(30, 300, 4 * 3600))
    medium: Timing = field(default_factory=lambda: _timing(60, 600, 12 * 3600))
    low: Timing = field(default_factory=lambda: _timing(300, 1800, 24 * 3600))


@dataclass(frozen=True, kw_only=True)
class Informational:
    """Alerts labelled notify="once" (a state worth knowing, e.g. a tier sold out): told once
    on the business channel, never paged, escalated or repeated."""

    slack: bool = field(True, doc="The Slack channel of the alert's category.")
    audiences: list[str] = field(default_factory=list, doc="Also told by email (never SMS).")
    repeat_interval: Duration = field(
        Duration(365 * 86400.0),
        check=positive,
        doc="Reminder interval; Alertmanager's --data.retention (120h) caps it in practice.",
    )
    send_resolved: bool = field(False, doc="Also tell when it resolves.")


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """Where the always-firing Watchdog goes (alertmanager/heartbeat.py), never to people."""

    bridge: bool = field(
        True, doc="POST it to the SMS bridge's /heartbeat (needs the sms_bridge section)."
    )
    url_file: str | None = field(
        None,
        check=_absolute,
        doc="File holding an external dead-man's switch URL (Alertmanager 0.26 or later).",
    )
    interval: Duration = field(
        Duration(60),
        check=positive,
        doc="How often Alertmanager sends it (keep it well under the bridge's heartbeat_timeout).",
    )


@dataclass(frozen=True, kw_only=True)
class DigestRoute:
    """Where thresholds.yaml's daily digest goes (notify="digest"): never SMS or PagerDuty,
    never escalated or muted; once per slot."""

    slack_channel: str | None = field(
        "#daily-reports", check=slack_channel_problem, doc="Slack channel (null: no Slack)."
    )
    email: list[str] = field(default_factory=list, doc="Addresses the digest is emailed to.")
    group_wait: Duration = field(Duration(30), doc="Wait before sending a slot's digest.")


@dataclass(frozen=True, kw_only=True)
class TickerRoute:
    """Where the sales ticker goes (notify="ticker"): Slack only, never muted."""

    slack_channel: str = field("#sales-notifications", check=slack_channel_problem)
    group_wait: Duration = field(Duration(10), doc="Wait before sending a minute's ticker.")


@dataclass(frozen=True, kw_only=True)
class ShopDigestRoute:
    """Where one shop's daily digest goes instead of the default digest route. Nothing is
    taken from the default route: a key left out is not inherited (the default channel and
    list are where the other shops read theirs). Timing is the default route's."""

    slack_channel: str | None = field(
        None, check=slack_channel_problem, doc="Slack channel (null: none)."
    )
    email: list[str] = field(default_factory=list, doc="Addresses the digest is emailed to.")


@dataclass(frozen=True, kw_only=True)
class ShopTickerRoute:
    """Where one shop's sales ticker goes instead of the default ticker channel."""

    slack_channel: str = field(check=slack_channel_problem, doc="Slack channel.")


@dataclass(frozen=True)
class Inhibit:
    by_severity: bool = field(True, doc="A severity silences lower ones of the same alert.")
    source_down: bool = field(True, doc="ExporterSourceDown{source} silences its alerts.")
    exporter_down: bool = field(True, doc="ExporterDown silences every business alert.")


@dataclass(frozen=True, kw_only=True)
class ShopRoutes:
    """Where the alerts and reports of one shop go (one value of a scope label of
    thresholds.yaml): what is given replaces the default routes' part for that shop's
    alerts, digest or ticker; the rest (channels per severity, timing, muting,
    informational audiences) is shared."""

    slack_channel: str | None = field(
        None, check=slack_channel_problem, doc="The shop's Slack channel, for every category."
    )
    critical_channel: str | None = field(
        None,
        check=slack_channel_problem,
        doc="Where its critical alerts also go (else the default).",
    )
    escalation: Escalation | None = field(None, doc="The shop's audiences per tier.")
    pagerduty: PagerDuty | None = field(None, doc="The shop's own PagerDuty service.")
    also_default: bool = field(
        False, doc="Also notify the default routes of its alerts (not of its reports)."
    )
    digest: ShopDigestRoute | None = field(None, doc="The shop's own daily digest route.")
    ticker: ShopTickerRoute | None = field(None, doc="The shop's own sales ticker channel.")

    @property
    def routes_alerts(self) -> bool:
        """Whether the shop's alerts go anywhere but the default routes."""
        own = (self.slack_channel, self.critical_channel, self.escalation, self.pagerduty)
        return any(part is not None for part in own)


@dataclass(frozen=True, kw_only=True)
class RoutingFile:
    slack: Slack = field()
    audiences: dict[str, Audience] = field()
    escalation: Escalation = field()
    pagerduty: PagerDuty | None = None
    email: Email | None = None
    sms_bridge: SmsBridge | None = None
    channels: Channels = field(default_factory=Channels)
    mute_outside_business_hours: list[Severity] = field(
        default_factory=lambda: ["medium", "low"], doc="Severities muted outside business hours."
    )
    timing: Timings = field(default_factory=Timings)
    group_by: list[str] = field(
        default_factory=lambda: ["alertname", "category", "severity", "escalation"]
    )
    resolve_timeout: Duration = field(Duration(300), check=positive)
    templates_dir: str = field("/etc/alertmanager/templates", check=_absolute)
    inhibit: Inhibit = field(default_factory=Inhibit)
    informational: Informational = field(default_factory=Informational)
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    scopes: dict[str, dict[str, ShopRoutes]] = field(
        default_factory=dict,
        doc="Per scope label (thresholds.yaml scope.labels), per value: that shop's routes.",
    )
    digest: DigestRoute = field(default_factory=DigestRoute)
    ticker: TickerRoute = field(default_factory=TickerRoute)


@dataclass(frozen=True)
class Routing:
    """routing.yaml, checked and frozen: what alertmanager.yml is rendered from."""

    source: str
    file: RoutingFile

    def channels(self, severity: Severity) -> tuple[Channel, ...]:
        return tuple(getattr(self.file.channels, severity))

    def tier_audiences(self, tier: str) -> tuple[str, ...]:
        return tuple(getattr(self.file.escalation, f"tier_{tier}"))

    def timing(self, severity: Severity) -> Timing:
        timing: Timing = getattr(self.file.timing, severity)
        return timing

    def slack_channel(self, category: str) -> str:
        return self.file.slack.channels.get(category, self.file.slack.default_channel)

    def shops(self) -> list[tuple[str, str, ShopRoutes]]:
        """(label, value, routes) of every shop with routes of its own, in file order."""
        return [
            (label, value, shop)
            for label, values in self.file.scopes.items()
            for value, shop in values.items()
        ]

    def alert_shops(self) -> list[tuple[str, str, ShopRoutes]]:
        """The shops whose alerts have routes of their own (not only reports), in file order:
        the others' alerts take the default routes, once."""
        return [shop for shop in self.shops() if shop[2].routes_alerts]

    def for_shop(self, shop: ShopRoutes) -> Routing:
        """The routing of one shop: the default with the shop's parts in place."""
        f = self.file
        slack = f.slack
        if shop.slack_channel is not None:
            slack = replace(slack, default_channel=shop.slack_channel, channels={})
        if shop.critical_channel is not None:
            slack = replace(slack, critical_channel=shop.critical_channel)
        scoped = replace(
            f,
            slack=slack,
            escalation=shop.escalation or f.escalation,
            pagerduty=shop.pagerduty or f.pagerduty,
        )
        return Routing(self.source, scoped)
