"""alertmanager/routing.yaml: YAML -> typed schema (unknown keys refused) -> checks -> frozen.

The file says who hears about what: Slack channels per category, the PagerDuty service,
SMTP, the SMS bridge, the audiences (email addresses and SMS bridge groups), which
audiences each escalation tier adds, the severity -> channel matrix, timing per severity
and which inhibitions apply. Business hours and the time zone are not repeated here: they
come from rules/thresholds.yaml, so the rules and the muting cannot disagree.

Every problem is a :class:`ConfigError` naming the file, the dotted path and the reason,
e.g. ``escalation.tier_2[0]: unknown audience 'cfo' (audiences: cto, oncall)``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

from exporter.config.errors import ConfigError
from exporter.config.typed import Duration, field, join, positive
from exporter.config.yamlfile import load_typed
from exporter.generate.alertdefs import SEVERITIES, Category, Severity
from exporter.generate.threshold_values import ErrorAt

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
_AUDIENCE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_SMS_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # as the bridge accepts them
_EMAIL = re.compile(r"[^@\s,<>\"]+@[^@\s,<>\"]+\.[^@\s,<>\"]+")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_HOSTPORT = re.compile(r"[A-Za-z0-9.-]+:\d{1,5}")


def _absolute(value: str) -> str | None:
    if not os.path.isabs(value):
        return f"must be an absolute path (as Alertmanager sees it), got {value!r}"
    if any(c in value for c in "\n\"'{}"):
        return "must not contain quotes, braces or newlines"
    return None


def _slack_channel(value: str) -> str | None:
    ok = _SLACK_CHANNEL.fullmatch(value)
    return None if ok else f"must be a Slack channel like #payment-alerts, got {value!r}"


def _email(value: str) -> str | None:
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
    default_channel: str = field("#alerts", check=_slack_channel, doc="Categories not listed.")
    critical_channel: str = field("#critical-alerts", check=_slack_channel)
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
    from_: str = field(key="from", check=_email)
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
        "#daily-reports", check=_slack_channel, doc="Slack channel (null: no Slack)."
    )
    email: list[str] = field(default_factory=list, doc="Addresses the digest is emailed to.")
    group_wait: Duration = field(Duration(30), doc="Wait before sending a slot's digest.")


@dataclass(frozen=True, kw_only=True)
class TickerRoute:
    """Where the sales ticker goes (notify="ticker"): Slack only, never muted."""

    slack_channel: str = field("#sales-notifications", check=_slack_channel)
    group_wait: Duration = field(Duration(10), doc="Wait before sending a minute's ticker.")


@dataclass(frozen=True, kw_only=True)
class ShopDigestRoute:
    """Where one shop's daily digest goes instead of the default digest route. Nothing is
    taken from the default route: a key left out is not inherited (the default channel and
    list are where the other shops read theirs). Timing is the default route's."""

    slack_channel: str | None = field(None, check=_slack_channel, doc="Slack channel (null: none).")
    email: list[str] = field(default_factory=list, doc="Addresses the digest is emailed to.")


@dataclass(frozen=True, kw_only=True)
class ShopTickerRoute:
    """Where one shop's sales ticker goes instead of the default ticker channel."""

    slack_channel: str = field(check=_slack_channel, doc="Slack channel.")


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
        None, check=_slack_channel, doc="The shop's Slack channel, for every category."
    )
    critical_channel: str | None = field(
        None, check=_slack_channel, doc="Where its critical alerts also go (else the default)."
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


def load_routing(path: str, name: str | None = None) -> Routing:
    """Read, type and check routing.yaml; ConfigError on the first problem."""
    name = name or path
    parsed = load_typed(RoutingFile, path, name=name, plain_text=True)
    _check(name, parsed)
    return Routing(name, parsed)


def _check(source: str, parsed: RoutingFile) -> None:
    def error(where: str, reason: str) -> ConfigError:
        return ConfigError(source, where, reason)

    for category in parsed.slack.channels:
        if category not in CATEGORIES:
            known = ", ".join(CATEGORIES)
            raise error(join("slack.channels", category), f"unknown category (known: {known})")
        problem = _slack_channel(parsed.slack.channels[category])
        if problem:
            raise error(join("slack.channels", category), problem)
    critical = parsed.slack.critical_channel
    if critical == parsed.slack.default_channel or critical in parsed.slack.channels.values():
        raise error("slack.critical_channel", f"{critical} must be a channel of its own")
    if parsed.pagerduty is not None:
        _check_pagerduty(parsed.pagerduty, error)
    email = parsed.email
    if email is not None and email.auth_password_file and not email.auth_username:
        raise error("email.auth_username", "is required with auth_password_file")
    if parsed.sms_bridge is not None:
        _check_bridge(parsed.sms_bridge, error)
    _check_audiences(parsed, error)
    _check_channels(parsed, error)
    _check_timing(parsed, error)
    _check_scopes(parsed, error)
    _check_reports(parsed, error)


def _check_digest(
    parsed: RoutingFile, digest: DigestRoute | ShopDigestRoute, where: str, error: ErrorAt
) -> None:
    """A digest route (the default one or a shop's): valid addresses, SMTP for them, and
    somewhere to send it."""
    for i, address in enumerate(digest.email):
        problem = _email(address)
        if problem:
            raise error(join(join(where, "email"), i), problem)
    if digest.email and parsed.email is None:
        raise error(join(where, "email"), "needs the email section (SMTP server)")
    if digest.slack_channel is None and not digest.email:
        raise error(where, "give a slack_channel, email addresses or both")


def _check_reports(parsed: RoutingFile, error: ErrorAt) -> None:
    _check_digest(parsed, parsed.digest, "digest", error)
    for where, wait in (
        ("digest", parsed.digest.group_wait),
        ("ticker", parsed.ticker.group_wait),
    ):
        if not 0 < wait <= 300:
            raise error(f"{where}.group_wait", "must be between 1s and 5m")


def _check_timing(parsed: RoutingFile, error: ErrorAt) -> None:
    for severity in SEVERITIES:
        timing: Timing = getattr(parsed.timing, severity)
        if timing.repeat_interval < timing.group_interval:
            raise error(
                f"timing.{severity}.repeat_interval",
                f"must be at least group_interval ({timing.group_interval:g}s)",
            )
    if len(set(parsed.mute_outside_business_hours)) != len(parsed.mute_outside_business_hours):
        raise error("mute_outside_business_hours", "lists a severity twice")
    if parsed.group_by != ["..."]:
        for i, label in enumerate(parsed.group_by):
            if not _LABEL.fullmatch(label):
                raise error(join("group_by", i), f"is not a label name: {label!r}")
        if len(set(parsed.group_by)) != len(parsed.group_by):
            raise error("group_by", "lists a label twice")


def _check_pagerduty(pagerduty: PagerDuty, error: ErrorAt) -> None:
    if (pagerduty.routing_key_file is None) == (pagerduty.service_key_file is None):
        raise error("pagerduty", "give routing_key_file (Events API v2) or service_key_file")
    if pagerduty.url is not None:
        parts = urlsplit(pagerduty.url)
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            raise error("pagerduty.url", f"must be an http(s) URL, got {pagerduty.url!r}")


def _check_bridge(bridge: SmsBridge, error: ErrorAt) -> None:
    parts = urlsplit(bridge.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise error(
            "sms_bridge.url",
            f"must be an http(s) URL like http://sms-bridge:9799, got {bridge.url!r}",
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise error("sms_bridge.url", "give the bridge's base URL only: /alerts/<group> is added")
    if (bridge.credentials_file is None) == (bridge.basic_auth is None):
        raise error(
            "sms_bridge",
            "give credentials_file (bearer token) or basic_auth: the bridge requires one",
        )


def _check_audiences(parsed: RoutingFile, error: ErrorAt) -> None:
    if not parsed.audiences:
        raise error("audiences", "name at least one audience")
    for name, audience in parsed.audiences.items():
        where = join("audiences", name)
        if not _AUDIENCE.fullmatch(name):
            raise error(where, "audience names are lowercase letters, digits and _")
        if not audience.email and audience.sms_group is None:
            raise error(where, "give email addresses, an sms_group or both")
        for i, address in enumerate(audience.email):
            problem = _email(address)
            if problem:
                raise error(join(join(where, "email"), i), problem)
        if audience.sms_group is not None and parsed.sms_bridge is None:
            raise error(join(where, "sms_group"), "needs the sms_bridge section")
        if audience.email and parsed.email is None:
            raise error(join(where, "email"), "needs the email section (SMTP server)")
    _check_tiers(parsed, error)


def _tier_audiences(
    parsed: RoutingFile, escalation: Escalation, path: str, error: ErrorAt
) -> set[str]:
    """The audiences of one escalation section, each known and told at one tier only."""
    used: set[str] = set()
    for tier in TIERS:
        where = join(path, f"tier_{tier}")
        names: list[str] = getattr(escalation, f"tier_{tier}")
        for i, name in enumerate(names):
            if name not in parsed.audiences:
                known = ", ".join(sorted(parsed.audiences))
                raise error(join(where, i), f"unknown audience {name!r} (audiences: {known})")
            if name in used:
                raise error(join(where, i), f"{name!r} is already told at an earlier tier")
            used.add(name)
    if not escalation.tier_1:
        raise error(join(path, "tier_1"), "name at least one audience")
    return used


def _check_tiers(parsed: RoutingFile, error: ErrorAt) -> None:
    used = _tier_audiences(parsed, parsed.escalation, "escalation", error)
    for label, value, shop in [
        (label, value, shop)
        for label, values in parsed.scopes.items()
        for value, shop in values.items()
    ]:
        if shop.escalation is not None:
            where = join(join(join("scopes", label), value), "escalation")
            used |= _tier_audiences(parsed, shop.escalation, where, error)
    for i, name in enumerate(parsed.informational.audiences):
        where = join("informational.audiences", i)
        if name not in parsed.audiences:
            known = ", ".join(sorted(parsed.audiences))
            raise error(where, f"unknown audience {name!r} (audiences: {known})")
        if not parsed.audiences[name].email:
            raise error(where, f"{name!r} has no email address (informational alerts are email)")
    unused = sorted(set(parsed.audiences) - used)
    if unused:
        raise error(join("audiences", unused[0]), "is in no escalation tier")


_SCOPE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_scopes(parsed: RoutingFile, error: ErrorAt) -> None:
    """Shops' routes: label names and values that make receiver names, own channels."""
    for label, values in parsed.scopes.items():
        if not _LABEL.fullmatch(label) or label.startswith("__"):
            raise error(join("scopes", label), f"is not a label name: {label!r}")
        for value, shop in values.items():
            where = join(join("scopes", label), value)
            if not _SCOPE_VALUE.fullmatch(value):
                raise error(where, "scope values here are letters, digits, '_', '.' and '-'")
            if shop.pagerduty is not None:

                def under(inner: str, reason: str, shop_path: str = where) -> ConfigError:
                    return error(join(shop_path, inner), reason)

                _check_pagerduty(shop.pagerduty, under)
            critical = shop.critical_channel or parsed.slack.critical_channel
            if shop.slack_channel is not None and shop.slack_channel == critical:
                raise error(join(where, "slack_channel"), f"{critical} is the critical channel")
            if shop.digest is not None:
                _check_digest(parsed, shop.digest, join(where, "digest"), error)


def check_scope_labels(routing: Routing, labels: list[str]) -> None:
    """routing.yaml's ``scopes`` name scope labels of thresholds.yaml only."""
    for label in routing.file.scopes:
        if label not in labels:
            known = ", ".join(labels) or "none"
            raise ConfigError(
                routing.source,
                join("scopes", label),
                f"is not a scope label of thresholds.yaml (scope.labels: {known})",
            )


def _check_channels(parsed: RoutingFile, error: ErrorAt) -> None:
    needs = {"email": parsed.email, "sms": parsed.sms_bridge, "pagerduty": parsed.pagerduty}
    for severity in SEVERITIES:
        where = f"channels.{severity}"
        channels: list[Channel] = getattr(parsed.channels, severity)
        if not channels:
            raise error(where, "name at least one channel")
        for i, channel in enumerate(channels):
            if channel in channels[:i]:
                raise error(join(where, i), f"{channel} is listed twice")
            if channel != "slack" and needs[channel] is None:
                section = "sms_bridge" if channel == "sms" else channel
                raise error(join(where, i), f"{channel} needs the {section} section")
