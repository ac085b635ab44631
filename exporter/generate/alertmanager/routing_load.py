"""Reading routing.yaml: YAML -> typed schema (unknown keys refused) -> checks -> frozen.

The schema and the checked :class:`Routing` live in ``routing.py``; here is everything that
refuses a file: each check raises one :class:`ConfigError` naming the file, the dotted path
and the reason, e.g. ``escalation.tier_2[0]: unknown audience 'cfo' (audiences: cto,
oncall)``, before anything is rendered.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from exporter.config.errors import ConfigError
from exporter.config.typed import join
from exporter.config.yamlfile import load_typed
from exporter.generate.alertdefs import SEVERITIES
from exporter.generate.alertmanager.routing import (
    AUDIENCE_NAME,
    CATEGORIES,
    LABEL_NAME,
    TIERS,
    Channel,
    DigestRoute,
    Escalation,
    PagerDuty,
    Routing,
    RoutingFile,
    ShopDigestRoute,
    SmsBridge,
    Timing,
    email_problem,
    slack_channel_problem,
)
from exporter.generate.threshold_values import ErrorAt


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
        problem = slack_channel_problem(parsed.slack.channels[category])
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
        problem = email_problem(address)
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
            if not LABEL_NAME.fullmatch(label):
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
        if not AUDIENCE_NAME.fullmatch(name):
            raise error(where, "audience names are lowercase letters, digits and _")
        if not audience.email and audience.sms_group is None:
            raise error(where, "give email addresses, an sms_group or both")
        for i, address in enumerate(audience.email):
            problem = email_problem(address)
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
        if not LABEL_NAME.fullmatch(label) or label.startswith("__"):
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
