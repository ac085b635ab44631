"""Two shops, one long-term store: the global view with real parts (issue 20, item 5).

Shops A and B each run their own PostgreSQL database (seeded with the project's demo data),
two ``boxoffice serve`` replicas on it and their own Prometheus, which labels what it sends
with ``external_labels: {seller: a|b}`` (the scope label of thresholds.yaml) and sends it
to one VictoriaMetrics by remote_write. vmalert evaluates the generated rules (scope label
``seller``) on that global view and alerts a real Alertmanager running the generated
configuration, whose routing.yaml sends each seller's alerts to that seller's people.

What it proves: an oversell in A's database fires once (two replicas, one alert), only for
A, carrying ``seller="a"``, and reaches A's receivers while B's hear nothing; the business
dashboard's all-time revenue panel, read from the store with every variable at "All", is
the sum of both databases' revenue. Also: every generated rule file passes vmalert's own
check (``vmalert -dryRun``), so the same bundle runs on Prometheus and on vmalert.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from exporter.config.yamlfile import read_mapping
from exporter.db.schema import create_schema
from exporter.db.seed import seed_database
from exporter.demo.sinks import ChatSinks, Notification, SmtpSink
from exporter.generate.alertdefs import ALERT_DEFS
from exporter.generate.alertmanager.routing import Routing
from exporter.generate.alertmanager.routing_load import load_routing
from exporter.generate.grafana.dashboards import dashboard_files
from exporter.generate.grafana.queries import substitute_variables
from exporter.generate.rules.rule_files import rule_files
from exporter.generate.rules.ruleset import RuleSet, build_ruleset
from exporter.generate.thresholds import load_thresholds
from tests.support.alertmanager import alert_states, running_alertmanager
from tests.support.alertpath import Sink, local_routing, write_alertmanager_config
from tests.support.data import add_order
from tests.support.exporter import wait_for
from tests.support.fakehttp import serving
from tests.support.globalview import Shop, running_shop, scratch_databases
from tests.support.inbox import RecordingInbox
from tests.support.victoria import Store, dry_run, running_victoria, running_vmalert

ROOT = Path(__file__).parent.parent
THRESHOLDS = ROOT / "rules" / "thresholds.yaml"
ROUTING = ROOT / "alertmanager" / "routing.yaml"
SCOPE = "seller"
SHOPS = ("a", "b")  # the scope label's values
EXTRA_SALES = {"b": 5}  # B also sold these orders, so the shops' revenue differs
# Each seller's own people (routing.yaml's scopes): Slack channel, and one audience with an
# email address and an SMS group, told at tier 1.
PEOPLE = {
    "a": {"slack": "#shop-a", "email": "oncall-a@example.com", "sms": "oncall-a"},
    "b": {"slack": "#shop-b", "email": "oncall-b@example.com", "sms": "oncall-b"},
}
# Who hears a critical alert of each seller at tier 1, (channel, target): the seller's own
# people, and the platform's critical channel and PagerDuty service, shared by every seller.
RECEIVERS = {
    name: [("slack", p["slack"]), ("email", p["email"]), ("sms", p["sms"])]
    for name, p in PEOPLE.items()
}
SHARED = [("slack", "#critical-alerts"), ("pagerduty", "trigger")]
SETTLE = 4.0  # seconds of Alertmanager flushes watched for a duplicate after the first
REVENUE_PANEL = ("business", "Revenue (all time)")


def _vmalert_knows_keep_firing_for(tmp: Path) -> bool:
    probe = tmp / "probe.yml"
    rule = {"alert": "Probe", "expr": "vector(1)", "keep_firing_for": "1m"}
    probe.write_text(yaml.safe_dump({"groups": [{"name": "probe", "rules": [rule]}]}))
    return dry_run([probe]).returncode == 0


def global_thresholds(tmp: Path) -> Path:
    """rules/thresholds.yaml with ``seller`` as its scope label; on a vmalert that does not
    know ``keep_firing_for`` (Debian's 1.79), with it set to 0s for every alert, the way
    docs/global-view.md tells a seller on that version."""
    data = read_mapping(str(THRESHOLDS))
    data["scope"] = {"labels": [SCOPE]}
    if not _vmalert_knows_keep_firing_for(tmp):
        alerts = dict(data.get("alerts") or {})
        for spec in ALERT_DEFS:
            settings = dict(alerts.get(spec.name) or {})
            settings["keep_firing_for"] = "0s"
            alerts[spec.name] = settings
        data["alerts"] = alerts
    path = tmp / "thresholds.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_rules(tmp: Path) -> tuple[RuleSet, list[Path]]:
    """The rule files ``boxoffice generate`` writes for the global thresholds."""
    ruleset = build_ruleset(load_thresholds(str(global_thresholds(tmp)), "thresholds.yaml"))
    out = tmp / "rules"
    out.mkdir()
    paths = []
    for name, text in rule_files(ruleset, "thresholds.yaml").items():
        (out / name).write_text(text)
        paths.append(out / name)
    return ruleset, sorted(paths)


def test_every_generated_rule_file_passes_vmalerts_check(tmp_path: Path) -> None:
    knows_keep_firing_for = _vmalert_knows_keep_firing_for(tmp_path)
    # The bundle as committed: its MetricsQL and templates are vmalert's too. An older
    # vmalert refuses keep_firing_for, and that only.
    for path in sorted((ROOT / "rules" / "generated").glob("*.yml")):
        result = dry_run([path])
        if not knows_keep_firing_for and "keep_firing_for:" in path.read_text():
            assert result.returncode != 0, f"{path.name}: accepted keep_firing_for"
            assert "unknown fields in rule: keep_firing_for" in result.stdout, result.stdout
            result = dry_run([_without_keep_firing_for(path, tmp_path)])
        assert result.returncode == 0, f"{path.name}: {result.stdout[-2000:]}"
    # The global view's bundle (scope labels, keep_firing_for off where vmalert lacks it).
    _ruleset, scoped = write_rules(tmp_path)
    for path in scoped:
        result = dry_run([path])
        assert result.returncode == 0, f"{path.name}: {result.stdout[-2000:]}"


def _without_keep_firing_for(path: Path, tmp: Path) -> Path:
    data = yaml.safe_load(path.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            rule.pop("keep_firing_for", None)
    out = tmp / f"no-keep-{path.name}"
    out.write_text(yaml.safe_dump(data))
    return out


def seed(dsn: str, now: datetime) -> None:
    """The demo data of seed 1 as of ``now``: every shop sells the same tour (the same
    events, cities and tiers), so a rule that merged shops would hide one shop's incident
    behind the other's healthy numbers."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_schema(conn)
    # No inventory incidents in the demo data: the only oversell is the one the test makes.
    seed_database(dsn, orders=2_000, seed=1, now=now, workers=1, inventory_incidents=False)


def sell(dsn: str, orders: int) -> None:
    """``orders`` more paid orders of one ticket each, on the last tier on sale."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT t.id, t.price_cents FROM ticket_tiers t JOIN events e ON e.id = t.event_id"
            " WHERE e.status = 'on_sale' ORDER BY e.starts_at DESC, t.id DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        for _ in range(orders):
            add_order(conn, row[0], quantity=1, amount_cents=row[1], status="completed")


def revenue_in_database(dsn: str) -> dict[str, float]:
    """Paid revenue per currency in major units, straight from the orders table."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT lower(currency), sum(amount_total_cents) FROM orders"
            " WHERE paid_at IS NOT NULL GROUP BY 1"
        ).fetchall()
    return {currency: int(cents) / 100 for currency, cents in rows}


def oversell(dsn: str) -> tuple[str, str]:
    """A broken inventory check: one paid order for three more GA tickets than the first
    event on sale has seats. Returns that tier's (event, tier)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT t.id, e.slug, t.tier, t.capacity, t.price_cents,"
            " COALESCE((SELECT lower(o.currency) FROM orders o WHERE o.tier_id = t.id LIMIT 1),"
            " 'usd') FROM ticket_tiers t JOIN events e ON e.id = t.event_id"
            " WHERE e.status = 'on_sale' AND t.tier = 'ga' ORDER BY e.starts_at, t.id LIMIT 1"
        ).fetchone()
        assert row is not None
        tier_id, slug, tier, capacity, price, currency = row
        quantity = int(capacity) + 3
        add_order(
            conn,
            tier_id,
            quantity=quantity,
            amount_cents=quantity * int(price),
            currency=currency,
            status="completed",
        )
    return str(slug), str(tier)


def shop_routing(tmp: Path, *, chat: str, smtp: str, bridge: str) -> Routing:
    """routing.yaml with each seller's own people (``scopes``), every endpoint on
    127.0.0.1."""
    data = read_mapping(str(ROUTING))
    audiences = dict(data["audiences"])
    scopes: dict[str, Any] = {}
    for name, people in PEOPLE.items():
        audience = f"oncall_{name}"
        audiences[audience] = {"email": [people["email"]], "sms_group": people["sms"]}
        scopes[name] = {"slack_channel": people["slack"], "escalation": {"tier_1": [audience]}}
    data["audiences"] = audiences
    data["scopes"] = {SCOPE: scopes}
    path = tmp / "routing.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    routing = load_routing(str(path), "routing.yaml")
    local = local_routing(routing, tmp, sink=chat, bridge=bridge, heartbeat=None)
    f = local.file
    assert f.email is not None
    email = dataclasses.replace(f.email, smarthost=smtp)
    return dataclasses.replace(local, file=dataclasses.replace(f, email=email))


def revenue_panel(ruleset: RuleSet) -> str:
    """The all-time revenue panel's query as generated for these thresholds, with every
    variable at All (the scope variables included)."""
    dashboard, title = REVENUE_PANEL
    files = dashboard_files(ruleset, "thresholds.yaml")
    board = json.loads(next(text for path, text in files.items() if dashboard in path))
    for panel in board["panels"]:
        if panel.get("title") == title:
            expr = substitute_variables(panel["targets"][0]["expr"])
            return re.sub(r"\$\{?\w+\}?", ".*", expr)
    raise AssertionError(f"no panel {title!r} on the {dashboard} dashboard")


@dataclasses.dataclass
class World:
    shops: dict[str, Shop]
    store: Store
    vmalert: Store
    alertmanager: str
    inbox: RecordingInbox
    bridge: Sink
    ruleset: RuleSet


@pytest.fixture(scope="module")
def world(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Both shops, the store, vmalert and Alertmanager, once for this module's tests; ready
    when every replica of both shops is in the store."""
    tmp = tmp_path_factory.mktemp("global")
    now = datetime.now(UTC)
    ruleset, rules = write_rules(tmp)
    inbox = RecordingInbox()
    with ExitStack() as stack:
        databases = stack.enter_context(scratch_databases(pg_server, len(SHOPS)))
        dsns = dict(zip(SHOPS, databases, strict=True))
        for name, dsn in dsns.items():
            seed(dsn, now)
            sell(dsn, EXTRA_SALES.get(name, 0))
        chat = ChatSinks(inbox)
        chat.start()
        stack.callback(chat.stop)
        smtp = SmtpSink(inbox)
        smtp.start()
        stack.callback(smtp.stop)
        bridge = stack.enter_context(serving(Sink()))
        routing = shop_routing(tmp, chat=chat.url, smtp=smtp.address, bridge=bridge.url)
        am_dir = tmp / "alertmanager"
        am_dir.mkdir()
        config = write_alertmanager_config(am_dir, routing, ruleset)
        alertmanager = stack.enter_context(running_alertmanager(config, am_dir))
        store = stack.enter_context(running_victoria(tmp / "victoria"))
        shops = {
            name: stack.enter_context(
                running_shop(name, dsn, tmp / name, scope={SCOPE: name}, store=store.url)
            )
            for name, dsn in dsns.items()
        }
        vmalert = stack.enter_context(
            running_vmalert(tmp / "vmalert", rules, store=store.url, alertmanager=alertmanager)
        )
        # Each shop's two replicas reach the store through that shop's Prometheus, labelled.
        expected = {
            (name, url.removeprefix("http://"))
            for name, shop in shops.items()
            for url in shop.exporters
        }
        wait_for(lambda: _up(store) == expected, timeout=30, interval=0.5)
        yield World(shops, store, vmalert, alertmanager, inbox, bridge, ruleset)


def test_an_incident_in_one_shop_fires_once_for_that_shop_and_reaches_its_people(
    world: World,
) -> None:
    assert not _firing(world, "InventoryOversold"), "an oversell before the incident"
    event, tier = oversell(world.shops["a"].dsn)
    fired = wait_for(lambda: _firing(world, "InventoryOversold"), timeout=30, interval=0.5)
    # Once: two replicas scraped by A's Prometheus, one alert; nothing for B, which sells
    # the same tier with seats left (merged, B's stock would have hidden A's oversell).
    shown = [(a["labels"].get(SCOPE), a["labels"]["event"], a["labels"]["tier"]) for a in fired]
    assert shown == [("a", event, tier)], fired
    wait_for(lambda: _told(world, "InventoryOversold"), timeout=20)
    # Alertmanager flushes a group every second here: a duplicate (a second alert for the
    # same oversell, from the other replica or from B) would arrive within a few flushes.
    time.sleep(SETTLE)
    _check_routed(world, event, tier)


def test_every_rule_evaluates_on_the_store(world: World) -> None:
    """MetricsQL runs every generated expression: every rule was evaluated (bounded: a group
    with an interval of its own is first evaluated within it) and none failed."""
    errors: dict[str, str] = {}
    categories = dict.fromkeys(built.alert.spec.category for built in world.ruleset.alerts)
    slowest = max(g.interval for c in categories for g in world.ruleset.category_groups(c))

    def evaluated() -> bool:
        errors.clear()
        errors.update(world.vmalert.rule_errors())
        return not errors

    try:
        wait_for(evaluated, timeout=20 + slowest, interval=0.5)
    except AssertionError:
        raise AssertionError(f"rules that did not evaluate on the store: {errors}") from None


def test_the_global_revenue_panel_adds_up_both_shops_databases(world: World) -> None:
    """The panel, read from the store, equals the databases' revenue added up, per currency
    (bounded: the store has a collection a few seconds after it is made)."""
    expr = revenue_panel(world.ruleset)
    want: dict[str, float] = {}
    for shop in world.shops.values():
        for currency, total in revenue_in_database(shop.dsn).items():
            want[currency] = want.get(currency, 0.0) + total
    shown: dict[str, float] = {}

    def adds_up() -> bool:
        result = world.store.query(expr)
        shown.clear()
        for sample in result:
            currency = sample["metric"].get("currency", "?")
            assert currency not in shown, f"{expr}: two series for {currency}: {result}"
            shown[currency] = float(sample["value"][1])
        return shown.keys() == want.keys() and all(abs(shown[c] - want[c]) < 0.005 for c in want)

    try:
        wait_for(adds_up, timeout=20, interval=0.5)
    except AssertionError:
        raise AssertionError(f"{expr}\nshows {shown}\ndatabases {want}") from None


def _up(store: Store) -> set[tuple[str | None, str | None]]:
    found = store.query('up{job="boxoffice"} == 1')
    return {(s["metric"].get(SCOPE), s["metric"].get("instance")) for s in found}


def _firing(world: World, name: str) -> list[dict[str, Any]]:
    """vmalert's firing alerts called ``name`` at tier 1."""
    return [
        a
        for a in world.vmalert.alerts()
        if a["name"] == name and a["state"] == "firing" and a["labels"].get("escalation") == "1"
    ]


def _told(world: World, name: str) -> list[Notification]:
    """Firing notifications of ``name`` so far (Slack, PagerDuty, email)."""
    return [n for n in world.inbox.all() if n.alertname == name and n.status == "firing"]


def _check_routed(world: World, event: str, tier: str) -> None:
    """Alertmanager holds the one alert, with A's labels; A's people heard it once on each
    of their channels; nobody else heard anything (B's people, the default routes)."""
    held = [
        labels
        for labels in map(dict, alert_states(world.alertmanager))
        if labels["alertname"] == "InventoryOversold"
    ]
    assert [(h.get(SCOPE), h["event"], h["tier"], h["escalation"]) for h in held] == [
        ("a", event, tier, "1")
    ], held
    texted = [
        (r.path.rsplit("/", 1)[-1], alert["labels"])
        for r in list(world.bridge.requests)
        if r.path.startswith("/alerts/")
        for alert in json.loads(r.body)["alerts"]
    ]
    assert texted, "no SMS for the oversell"
    assert all(labels.get(SCOPE) == "a" for _group, labels in texted), texted
    told = [(n.channel, n.target) for n in world.inbox.all() if n.status == "firing"]
    sms = [("sms", group) for group, _labels in texted]
    mine = set(RECEIVERS["a"] + SHARED)
    assert mine <= set(told + sms), f"A's people missed it: {sorted(mine - set(told + sms))}"
    assert sorted(told + sms) == sorted(set(told + sms)), f"told more than once: {told + sms}"
    theirs = set(RECEIVERS["b"]) & set(told + sms)
    assert not theirs, f"B's people were told of A's incident: {sorted(theirs)}"
    others = set(told + sms) - mine
    assert not others, f"told beyond A's people: {sorted(others)}"
