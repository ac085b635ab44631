"""alertmanager/alertmanager.yml from routing.yaml, the business hours and the rule set.

The route tree starts with the heartbeat branch (the always-firing Watchdog to the SMS
bridge or a dead-man's switch, never to people: ``heartbeat.py``), then the owner's reports
(the daily digest and the sales ticker to their own receivers: ``reports.py``), then the
informational
branch: alerts labelled ``notify="once"`` (a
state worth knowing, like a tier sold out) go to the business channel (the category's Slack
channel and routing.yaml's informational audiences by email) with a repeat interval of a
year, and stop there: whatever their severity, they never page, escalate or repeat. Then
one branch per severity (its timing) and under it one leaf per
notification: the Slack channel of the alert's category, #critical-alerts for critical
ones, PagerDuty, then the email and SMS receivers of the alert's escalation tier. Leaves
``continue``, so an alert reaches every leaf it matches. Slack and PagerDuty hear only tier
1: an alert's tier 1 fires first and keeps firing while tiers 2 and 3 do, so the shared
channels are told once, and each tier's alert adds its own audience; a severity has leaves
for the tiers it reaches only (thresholds.yaml ``escalation.top_tier``). Tiers never inhibit
each other. Leaves of the severities muted outside business hours carry
``mute_time_intervals`` (Alertmanager does not pass those down to child routes).

One module, a little over 400 lines: the leaves, the route tree, receivers and inhibition
are one document whose parts name each other's receivers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from exporter.generate.alertdefs import SEVERITIES, Severity
from exporter.generate.alertmanager.heartbeat import (
    HEARTBEAT,
    heartbeat_receiver,
    heartbeat_route,
    heartbeat_webhooks,
)
from exporter.generate.alertmanager.muting import outside_business_hours, time_interval
from exporter.generate.alertmanager.reports import report_receivers, report_routes
from exporter.generate.alertmanager.routing import TIERS, Routing, ShopRoutes
from exporter.generate.promql import duration_text
from exporter.generate.rules.ruleset import RuleSet
from exporter.generate.thresholds import BusinessHours
from exporter.generate.yaml_text import dump, header

Shop = tuple[str, str, ShopRoutes]  # scope label, its value, the shop's routes
OUTSIDE_BUSINESS_HOURS = "outside-business-hours"
NOBODY = "nobody"  # an escalation tier with no audience for a channel: nothing to send
PAGERDUTY = "pagerduty"
TEMPLATE_FILE = "boxoffice.tmpl"


def slack_receiver(channel: str) -> str:
    return f"slack-{channel.lstrip('#')}"


def tier_receiver(tier: str, kind: str) -> str:
    return f"tier{tier}-{kind}"


INFORMATIONAL = 'notify="once"'
ONCE_EMAIL = "once-email"


def once_receiver(channel: str) -> str:
    """The Slack receiver of informational alerts: no resolved message unless configured."""
    return f"once-{channel.lstrip('#')}"


def tier_matcher(tier: str) -> str:
    """Tier 1 also takes alerts without an escalation label (rules written by hand)."""
    return 'escalation=~"1|"' if tier == "1" else f'escalation="{tier}"'


def _tmpl(name: str) -> str:
    return '{{ template "' + name + '" . }}'


@dataclass(frozen=True)
class Leaf:
    matchers: tuple[str, ...]
    receiver: str


def tier_has(routing: Routing, tier: str, kind: str) -> bool:
    """Whether some audience of ``tier`` can be told by ``kind`` (email or sms)."""
    for name in routing.tier_audiences(tier):
        audience = routing.file.audiences[name]
        if audience.email if kind == "email" else audience.sms_group:
            return True
    return False


def _slack_leaves(routing: Routing) -> list[Leaf]:
    slack = routing.file.slack
    by_channel: dict[str, list[str]] = {}
    for category, channel in slack.channels.items():
        if channel != slack.default_channel:
            by_channel.setdefault(channel, []).append(category)
    leaves = [
        Leaf((f'category=~"{"|".join(sorted(cats))}"',), slack_receiver(channel))
        for channel, cats in sorted(by_channel.items())
    ]
    others = sorted(c for cats in by_channel.values() for c in cats)
    rest = (f'category!~"{"|".join(others)}"',) if others else ()
    leaves.append(Leaf(rest, slack_receiver(slack.default_channel)))
    return leaves


def leaves(routing: Routing, severity: Severity, top: int = 3) -> list[Leaf]:
    """The notifications of one severity reaching tier ``top`` at most, in tree order."""
    channels = routing.channels(severity)
    first = tier_matcher("1")
    out: list[Leaf] = []
    if "slack" in channels:
        out += [Leaf((first, *leaf.matchers), leaf.receiver) for leaf in _slack_leaves(routing)]
        if severity == "critical":
            out.append(Leaf((first,), slack_receiver(routing.file.slack.critical_channel)))
    if "pagerduty" in channels:
        out.append(Leaf((first,), PAGERDUTY))
    for tier in TIERS[:top]:
        for kind in ("email", "sms"):
            if kind in channels and tier_has(routing, tier, kind):
                out.append(Leaf((tier_matcher(tier),), tier_receiver(tier, kind)))
    return out


def informational_leaves(routing: Routing) -> list[Leaf]:
    """Where notify="once" alerts go: the category's Slack channel, the listed audiences."""
    info = routing.file.informational
    out: list[Leaf] = []
    if info.slack:
        out += [
            Leaf(leaf.matchers, once_receiver(leaf.receiver)) for leaf in _slack_leaves(routing)
        ]
    if any(routing.file.audiences[name].email for name in info.audiences):
        out.append(Leaf((), ONCE_EMAIL))
    return out


def _leaf_routes(found: Iterable[Leaf], mute: bool) -> list[dict[str, Any]]:
    """One child route per receiver leaf; each continues so every audience hears it."""
    children = []
    for leaf in found:
        child: dict[str, Any] = {"receiver": leaf.receiver}
        if leaf.matchers:
            child["matchers"] = list(leaf.matchers)
        if mute:
            child["mute_time_intervals"] = [OUTSIDE_BUSINESS_HOURS]
        child["continue"] = True
        children.append(child)
    return children


def grouped_by(routing: Routing, scope: tuple[str, ...]) -> list[str]:
    """routing.yaml's ``group_by`` and the scope labels: one shop's alerts never share a
    notification with another shop's."""
    group_by = list(routing.file.group_by)
    if group_by == ["..."]:
        return group_by
    return group_by + [label for label in scope if label not in group_by]


def _informational_route(routing: Routing, muted: bool, scope: tuple[str, ...]) -> dict[str, Any]:
    """First in the tree and not continuing: these alerts never reach a severity branch, so
    no PagerDuty, SMS or escalation, whatever their severity label says."""
    timing = routing.timing("low")
    mute = muted and bool(routing.file.mute_outside_business_hours)
    children = _leaf_routes(informational_leaves(routing), mute)
    group_by = grouped_by(routing, scope)
    if group_by != ["..."]:  # one notification per ticket tier
        group_by += [label for label in ("event", "city", "tier") if label not in group_by]
    return {
        "receiver": NOBODY,
        "matchers": [INFORMATIONAL],
        "group_by": group_by,
        "group_wait": duration_text(routing.timing("medium").group_wait),
        "group_interval": duration_text(timing.group_interval),
        "repeat_interval": duration_text(routing.file.informational.repeat_interval),
        "routes": children,
    }


def identifying_labels(ruleset: RuleSet) -> list[str]:
    """Labels that tell two alerts of the same name apart (the severity excepted).

    Alertmanager's ``equal`` counts a label missing on both sides as equal, so the union
    over every alert is right for each of them.
    """
    names: set[str] = set()
    for built in ruleset.alerts:
        for rule in built.rules:
            names |= set(rule.labels)
        for scenario in built.scenarios:
            for labels, _model in scenario.results():
                names |= set(labels)
    names.discard("severity")
    names.discard("alertname")
    return ["alertname", *sorted(names)]


def inhibit_rules(routing: Routing, ruleset: RuleSet) -> list[dict[str, Any]]:
    inhibit = routing.file.inhibit
    business = ['source=~".+"', 'category!="monitoring"']
    # One shop's ExporterDown or source down silences that shop's alerts only.
    scope = tuple(ruleset.thresholds.file.scope.labels)
    rules: list[dict[str, Any]] = []
    if inhibit.by_severity:
        equal = identifying_labels(ruleset)
        equal += [label for label in scope if label not in equal]
        for i, severity in enumerate(SEVERITIES[:-1]):
            lower = "|".join(SEVERITIES[i + 1 :])
            rules.append(
                {
                    "source_matchers": [f'severity="{severity}"'],
                    "target_matchers": [f'severity=~"{lower}"'],
                    "equal": list(equal),
                }
            )
    if inhibit.source_down:
        rules.append(
            {
                "source_matchers": ['alertname="ExporterSourceDown"'],
                "target_matchers": list(business),
                "equal": ["source", *scope],
            }
        )
    if inhibit.exporter_down:
        rule: dict[str, Any] = {
            "source_matchers": ['alertname="ExporterDown"'],
            "target_matchers": list(business),
        }
        if scope:
            rule["equal"] = list(scope)
        rules.append(rule)
    return rules


def _branches(
    routing: Routing, muted: bool, tops: dict[str, int], scope: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The informational branch, then one branch per severity with its leaves."""
    branches = [_informational_route(routing, muted, scope)]
    for severity in SEVERITIES:
        timing = routing.timing(severity)
        mute = muted and severity in routing.file.mute_outside_business_hours
        children = _leaf_routes(leaves(routing, severity, tops[severity]), mute)
        branches.append(
            {
                "receiver": NOBODY,
                "matchers": [f'severity="{severity}"'],
                "group_wait": duration_text(timing.group_wait),
                "group_interval": duration_text(timing.group_interval),
                "repeat_interval": duration_text(timing.repeat_interval),
                "routes": children,
            }
        )
    return branches


def shop_receiver(label: str, value: str, shop: ShopRoutes, receiver: str) -> str:
    """A receiver's name in one shop's branch: its own name where the shop has its own
    audiences or PagerDuty service, the shared one (same channel, same people) otherwise."""
    own = shop.escalation is not None and receiver.startswith("tier")
    own = own or (shop.pagerduty is not None and receiver == PAGERDUTY)
    return f"{label}-{value}-{receiver}" if own else receiver


def _renamed(branches: list[dict[str, Any]], rename: Callable[[str], str]) -> None:
    for branch in branches:
        branch["receiver"] = rename(branch["receiver"])
        _renamed(branch.get("routes", []), rename)


def _shop_route(
    routing: Routing, muted: bool, tops: dict[str, int], scope: tuple[str, ...], shop: Shop
) -> dict[str, Any]:
    """One shop's branch: its alerts, the default tree with the shop's channels and people;
    it ends there unless the shop also tells the default routes."""
    label, value, routes = shop
    branches = _branches(routing.for_shop(routes), muted, tops, scope)
    _renamed(branches, lambda receiver: shop_receiver(label, value, routes, receiver))
    return {
        "receiver": NOBODY,
        "matchers": [f'{label}="{value}"'],
        "routes": branches,
        "continue": routes.also_default,
    }


def _route(
    routing: Routing, muted: bool, tops: dict[str, int], scope: tuple[str, ...]
) -> dict[str, Any]:
    root_timing = routing.timing("high")
    branches = [
        heartbeat_route(routing, heartbeat_receiver(routing, NOBODY)),
        *report_routes(routing, NOBODY, scope),
    ]
    branches += [_shop_route(routing, muted, tops, scope, shop) for shop in routing.alert_shops()]
    branches += _branches(routing, muted, tops, scope)
    return {
        "receiver": slack_receiver(routing.file.slack.default_channel),
        "group_by": grouped_by(routing, scope),
        "group_wait": duration_text(root_timing.group_wait),
        "group_interval": duration_text(root_timing.group_interval),
        "repeat_interval": duration_text(root_timing.repeat_interval),
        "routes": branches,
    }


def _shop_receivers(routing: Routing, used: set[str], known: set[str]) -> list[dict[str, Any]]:
    """The receivers of shops' branches not already defined by the default routes."""
    out: list[dict[str, Any]] = []
    for label, value, shop in routing.alert_shops():
        for receiver in _receivers(routing.for_shop(shop), used | set(_default_names())):
            name = shop_receiver(label, value, shop, receiver["name"])
            if name in used and name not in known:
                out.append({**receiver, "name": name})
                known.add(name)
    return out


def _default_names() -> tuple[str, ...]:
    return (
        PAGERDUTY,
        *(tier_receiver(tier, kind) for tier in TIERS for kind in ("email", "sms")),
    )


def _receivers(routing: Routing, used: set[str]) -> list[dict[str, Any]]:
    f = routing.file
    out: list[dict[str, Any]] = [{"name": NOBODY}]
    channels = sorted(
        {f.slack.default_channel, f.slack.critical_channel, *f.slack.channels.values()}
    )
    for channel in channels:
        name = slack_receiver(channel)
        if name in used:
            out.append({"name": name, "slack_configs": [_slack(routing, channel)]})
    info = f.informational
    for channel in channels:
        name = once_receiver(slack_receiver(channel))
        if name in used:
            slack = {**_slack(routing, channel), "send_resolved": info.send_resolved}
            out.append({"name": name, "slack_configs": [slack]})
    if ONCE_EMAIL in used:
        to = [address for n in info.audiences for address in f.audiences[n].email]
        once_email = {
            "to": ", ".join(to),
            "send_resolved": info.send_resolved,
            "headers": {"Subject": _tmpl("boxoffice.title")},
            "text": _tmpl("boxoffice.email.text"),
        }
        out.append({"name": ONCE_EMAIL, "email_configs": [once_email]})
    out += report_receivers(routing, used)
    if PAGERDUTY in used and f.pagerduty is not None:
        pd: dict[str, Any] = {}
        if f.pagerduty.routing_key_file:
            pd["routing_key_file"] = f.pagerduty.routing_key_file
        else:
            pd["service_key_file"] = f.pagerduty.service_key_file
        if f.pagerduty.url is not None:
            pd["url"] = f.pagerduty.url
        pd.update(
            {
                "send_resolved": f.pagerduty.send_resolved,
                "client": "boxoffice",
                "client_url": _tmpl("boxoffice.dashboard_url"),
                "description": _tmpl("boxoffice.title"),
                "severity": _tmpl("boxoffice.pagerduty.severity"),
                "class": "{{ .CommonLabels.alertname }}",
                "group": "{{ .CommonLabels.category }}",
                "details": {
                    "firing": _tmpl("boxoffice.pagerduty.firing"),
                    "resolved": _tmpl("boxoffice.pagerduty.resolved"),
                    "num_firing": "{{ .Alerts.Firing | len }}",
                    "num_resolved": "{{ .Alerts.Resolved | len }}",
                    "severity": "{{ .CommonLabels.severity }}",
                    "category": "{{ .CommonLabels.category }}",
                    "escalation": "{{ .CommonLabels.escalation }}",
                    "summary": "{{ .CommonAnnotations.summary }}",
                    "runbook_url": _tmpl("boxoffice.runbook_url"),
                    "dashboard_url": _tmpl("boxoffice.dashboard_url"),
                },
            }
        )
        out.append({"name": PAGERDUTY, "pagerduty_configs": [pd]})
    for tier in TIERS:
        audiences = [(n, f.audiences[n]) for n in routing.tier_audiences(tier)]
        email = tier_receiver(tier, "email")
        if email in used:
            out.append(
                {
                    "name": email,
                    "email_configs": [
                        {
                            "to": ", ".join(a.email),
                            "send_resolved": f.email.send_resolved if f.email else False,
                            "headers": {"Subject": _tmpl("boxoffice.title")},
                            "text": _tmpl("boxoffice.email.text"),
                        }
                        for _name, a in audiences
                        if a.email
                    ],
                }
            )
        sms = tier_receiver(tier, "sms")
        if sms in used and f.sms_bridge is not None:
            out.append(
                {
                    "name": sms,
                    "webhook_configs": [
                        _webhook(routing, a.sms_group) for _name, a in audiences if a.sms_group
                    ],
                }
            )
    return out


def _slack(routing: Routing, channel: str) -> dict[str, Any]:
    return {
        "channel": channel,
        "send_resolved": routing.file.slack.send_resolved,
        "color": _tmpl("boxoffice.slack.color"),
        "title": _tmpl("boxoffice.title"),
        "title_link": _tmpl("boxoffice.dashboard_url"),
        "text": _tmpl("boxoffice.slack.text"),
        "fallback": _tmpl("boxoffice.title"),
    }


def _webhook(routing: Routing, group: str) -> dict[str, Any]:
    bridge = routing.file.sms_bridge
    http = _bridge_http(routing)
    assert bridge is not None and http is not None  # routing.yaml: sms_group needs sms_bridge
    return {
        "url": f"{bridge.url.rstrip('/')}/alerts/{group}",
        "send_resolved": bridge.send_resolved,
        "max_alerts": bridge.max_alerts,
        "http_config": http,
    }


def _bridge_http(routing: Routing) -> dict[str, Any] | None:
    """How Alertmanager authenticates to the SMS bridge; None without the bridge."""
    bridge = routing.file.sms_bridge
    if bridge is None:
        return None
    http: dict[str, Any]
    if bridge.basic_auth is not None:
        http = {
            "basic_auth": {
                "username": bridge.basic_auth.username,
                "password_file": bridge.basic_auth.password_file,
            }
        }
    else:
        http = {"authorization": {"type": "Bearer", "credentials_file": bridge.credentials_file}}
    return http


def _global(routing: Routing) -> dict[str, Any]:
    f = routing.file
    out: dict[str, Any] = {"resolve_timeout": duration_text(f.resolve_timeout)}
    out["slack_api_url_file"] = f.slack.api_url_file
    if f.email is not None:
        out["smtp_smarthost"] = f.email.smarthost
        out["smtp_from"] = f.email.from_
        if f.email.auth_username is not None:
            out["smtp_auth_username"] = f.email.auth_username
        if f.email.auth_password_file is not None:
            out["smtp_auth_password_file"] = f.email.auth_password_file
        out["smtp_require_tls"] = f.email.require_tls
    return out


def alertmanager_config(routing: Routing, ruleset: RuleSet, sources: str) -> str:
    """The text of alertmanager.yml; ``sources`` names the inputs in its header."""
    th = ruleset.thresholds.file
    intervals = time_interval(th.business_hours, th.timezone)
    muted = muting_applies(routing, th.business_hours)
    route = _route(routing, muted, top_tiers(ruleset), tuple(th.scope.labels))
    used = _used(route)
    config: dict[str, Any] = {
        "global": _global(routing),
        "templates": [f"{routing.file.templates_dir.rstrip('/')}/*.tmpl"],
    }
    if muted:
        config["time_intervals"] = [{"name": OUTSIDE_BUSINESS_HOURS, "time_intervals": intervals}]
    config["route"] = route
    config["inhibit_rules"] = inhibit_rules(routing, ruleset)
    receivers = _receivers(routing, used)
    receivers += _shop_receivers(routing, used, {r["name"] for r in receivers})
    if HEARTBEAT in used:
        webhooks = heartbeat_webhooks(routing, _bridge_http(routing))
        receivers.insert(1, {"name": HEARTBEAT, "webhook_configs": webhooks})
    config["receivers"] = receivers
    what = (
        "Alertmanager configuration: severity routing, escalation tiers, business-hours "
        "muting, inhibition."
    )
    return header(sources, what) + dump(config)


def _used(route: dict[str, Any]) -> set[str]:
    """Every receiver the route tree names."""
    out = {route["receiver"]}
    for child in route.get("routes", ()):
        out |= _used(child)
    return out


def top_tiers(ruleset: RuleSet) -> dict[str, int]:
    """How far each severity escalates (thresholds.yaml ``escalation.top_tier``)."""
    esc = ruleset.thresholds.file.escalation
    return {severity: esc.tiers(severity) for severity in SEVERITIES}


def muting_applies(routing: Routing, hours: BusinessHours) -> bool:
    """Whether some severity is muted and there are hours outside business hours."""
    return bool(routing.file.mute_outside_business_hours) and bool(outside_business_hours(hours))
