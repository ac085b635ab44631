"""Generated alertmanager.yml: the real amtool (0.25) checks it and runs the route tests.

Route tests come from alertmanager/tests/routes.yml (every severity x category x tier);
a hand-written table holds the seeds' key cases so the generator cannot drift with its
own expectations. Muting, inhibition and business-hours intervals are checked on the
parsed file and, for the intervals, against a minute-by-minute model of the week.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.generate.alertmanager.config import OUTSIDE_BUSINESS_HOURS, alertmanager_config
from exporter.generate.alertmanager.muting import WEEKDAYS, time_interval, weekday_ranges
from exporter.generate.alertmanager.route_tests import RouteCase, load_route_cases
from exporter.generate.output import ALERTMANAGER_CONFIG, ROUTE_TESTS, load_inputs
from exporter.generate.thresholds import BusinessHours

ROOT = Path(__file__).parent.parent
CONFIG = ROOT / ALERTMANAGER_CONFIG


def _amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail(
            "amtool not installed (scripts/test.sh installs Debian's prometheus-alertmanager)"
        )
    return path


def _amtool_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_amtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _generated() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


def _with_local_templates(tmp_path: Path) -> Path:
    """The committed config with the templates glob pointed at the repository's templates."""
    text = CONFIG.read_text().replace(
        "/etc/alertmanager/templates/*.tmpl", str(ROOT / "alertmanager/templates/*.tmpl")
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    return path


def test_amtool_check_config_accepts_the_generated_config_and_templates(tmp_path: Path) -> None:
    result = _amtool_run("check-config", str(_with_local_templates(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout
    assert "5 inhibit rules" in result.stdout


def test_templates_render_with_amtool() -> None:
    glob = str(ROOT / "alertmanager/templates/*.tmpl")
    text = '{{ template "boxoffice.slack.color" . }}|{{ template "boxoffice.title" . }}'
    result = _amtool_run("template", "render", f"--template.glob={glob}", f"--template.text={text}")
    assert result.returncode == 0, result.stderr
    # amtool's example data: two alerts, no severity or alertname common to both.
    assert result.stdout.strip() == "#36B9CC|[ALERTSTATUS] 2 alerts"


def _cases() -> list[RouteCase]:
    return load_route_cases(yaml.safe_load((ROOT / ROUTE_TESTS).read_text()))


def test_route_tests_cover_every_severity_category_and_tier() -> None:
    seen = {
        (c.labels["severity"], c.labels["category"], c.labels["escalation"])
        for c in _cases()
        if {"severity", "category", "escalation"} <= set(c.labels)
    }
    assert len(seen) == 4 * 7 * 3


def test_amtool_routes_test_passes_every_generated_route_test() -> None:
    cases = _cases()

    def run(case: RouteCase) -> str | None:
        result = _amtool_run(*case.amtool_args(str(CONFIG)))
        if result.returncode != 0:
            return f"{case.labels}: expected {case.receivers}, got {result.stdout.strip()}"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(run, cases) if f]
    assert failures == []


# The seeds' matrix, written out by hand (seed 000 channels, seed 001 tiers: critical
# escalates to tier 3, high to tier 2, medium and low never).
SEED_CASES = [
    (
        {"severity": "critical", "category": "payments", "escalation": "1"},
        "slack-payment-alerts,slack-critical-alerts,pagerduty,tier1-email,tier1-sms",
    ),
    ({"severity": "critical", "category": "payments", "escalation": "2"}, "tier2-email,tier2-sms"),
    ({"severity": "critical", "category": "sales", "escalation": "3"}, "tier3-email,tier3-sms"),
    (
        {"severity": "critical", "category": "availability", "escalation": "1"},
        "slack-alerts,slack-critical-alerts,pagerduty,tier1-email,tier1-sms",
    ),
    (
        {"severity": "high", "category": "inventory", "escalation": "1"},
        "slack-inventory-alerts,tier1-email,tier1-sms",
    ),
    ({"severity": "high", "category": "monitoring", "escalation": "2"}, "tier2-email,tier2-sms"),
    (
        {"severity": "medium", "category": "inventory", "escalation": "1"},
        "slack-inventory-alerts,tier1-email",
    ),
    ({"severity": "high", "category": "payments", "escalation": "3"}, "nobody"),
    ({"severity": "medium", "category": "payments", "escalation": "2"}, "nobody"),
    ({"severity": "medium", "category": "payments", "escalation": "3"}, "nobody"),
    ({"severity": "low", "category": "sales", "escalation": "2"}, "nobody"),
    ({"severity": "low", "category": "sales", "escalation": "1"}, "slack-alerts,tier1-email"),
    ({"severity": "high", "category": "webhooks"}, "slack-alerts,tier1-email,tier1-sms"),
    ({"alertname": "Watchdog"}, "slack-alerts"),
    # Sold out: the business channel once, never PagerDuty or SMS, whatever the severity.
    (
        {
            "alertname": "InventorySoldOut",
            "severity": "low",
            "category": "inventory",
            "escalation": "1",
            "notify": "once",
        },
        "once-slack-inventory-alerts,once-email",
    ),
    (
        {"severity": "critical", "category": "inventory", "escalation": "1", "notify": "once"},
        "once-slack-inventory-alerts,once-email",
    ),
]


@pytest.mark.parametrize(("labels", "receivers"), SEED_CASES)
def test_seed_matrix_routes(labels: dict[str, str], receivers: str) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    result = _amtool_run(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receivers}",
        *args,
    )
    assert result.returncode == 0, f"{labels}: got {result.stdout.strip()}"


def test_medium_and_low_leaves_are_muted_outside_business_hours_and_others_are_not() -> None:
    config = _generated()
    intervals = {i["name"] for i in config["time_intervals"]}
    assert intervals == {OUTSIDE_BUSINESS_HOURS}
    branches = {b["matchers"][0]: b for b in config["route"]["routes"]}
    # The heartbeat branch (a leaf of its own) goes to a machine: never muted.
    heartbeat = branches.pop('notify="heartbeat"')
    assert "routes" not in heartbeat and "mute_time_intervals" not in heartbeat
    # The owner's reports: their own receivers, never muted, never a severity branch.
    digest, ticker = branches.pop('notify="digest"'), branches.pop('notify="ticker"')
    assert [leaf["receiver"] for leaf in digest["routes"]] == ["digest-slack", "digest-email"]
    assert ticker["receiver"] == "ticker-slack" and "routes" not in ticker
    for report in (digest, ticker):  # the leaves continue to each other, not past them
        assert "mute_time_intervals" not in report and not report.get("continue")
    assert not any("mute_time_intervals" in leaf for leaf in digest["routes"])
    severities = {f'severity="{s}"' for s in ("critical", "high", "medium", "low")}
    assert set(branches) == {'notify="once"'} | severities
    for matcher, branch in branches.items():
        # The business channel (notify="once") keeps business hours too.
        muted = matcher in ('severity="medium"', 'severity="low"', 'notify="once"')
        assert branch["routes"], matcher
        for leaf in branch["routes"]:
            assert leaf.get("mute_time_intervals") == ([OUTSIDE_BUSINESS_HOURS] if muted else None)
    assert "mute_time_intervals" not in config["route"]
    muted_cases = {
        c.labels.get("severity")
        for c in _cases()
        if c.muted_outside_business_hours and "notify" not in c.labels
    }
    assert muted_cases == {"medium", "low"}
    informational = [c for c in _cases() if c.labels.get("notify") == "once"]
    assert informational and all(c.muted_outside_business_hours for c in informational)
    heartbeat = [c for c in _cases() if c.labels.get("notify") == "heartbeat"]
    assert [c.receivers for c in heartbeat] == [("heartbeat",)]
    assert not heartbeat[0].muted_outside_business_hours


def test_inhibit_rules() -> None:
    rules = _generated()["inhibit_rules"]
    by_source = {tuple(r["source_matchers"]): r for r in rules}
    critical = by_source[('severity="critical"',)]
    assert critical["target_matchers"] == ['severity=~"high|medium|low"']
    # Same alert and labels, the tier included: a higher tier never silences a lower one.
    for label in ("alertname", "escalation", "event", "city", "tier", "source", "currency"):
        assert label in critical["equal"]
    assert "severity" not in critical["equal"]
    assert not any("escalation" in m for r in rules for m in r["source_matchers"])
    source_down = by_source[('alertname="ExporterSourceDown"',)]
    assert source_down["target_matchers"] == ['source=~".+"', 'category!="monitoring"']
    assert source_down["equal"] == ["source"]
    exporter_down = by_source[('alertname="ExporterDown"',)]
    assert exporter_down["target_matchers"] == ['source=~".+"', 'category!="monitoring"']
    assert "equal" not in exporter_down


def test_no_secret_values_only_file_references() -> None:
    text = CONFIG.read_text()
    config = _generated()
    assert config["global"]["slack_api_url_file"].startswith("/run/secrets/")
    assert config["global"]["smtp_auth_password_file"].startswith("/run/secrets/")
    for key in (
        "slack_api_url:",
        "smtp_auth_password:",
        "routing_key:",
        "service_key:",
        "credentials:",
        "password:",
        "api_url:",
    ):
        assert f" {key}" not in text, key
    sms = [r for r in config["receivers"] if r["name"] != "heartbeat"]
    hooks = [w for r in sms for w in r.get("webhook_configs", [])]
    assert {w["url"] for w in hooks} == {
        f"http://sms-bridge:9799/alerts/{g}"
        for g in ("engineering-lead", "oncall", "cto", "product", "everyone")
    }
    for hook in hooks:
        assert hook["send_resolved"] is True
        assert hook["max_alerts"] == 20
        assert hook["http_config"]["authorization"]["credentials_file"].endswith("sms_bridge_token")


def _in_business_hours(hours: BusinessHours, day: int, minute: int) -> bool:
    """thresholds.yaml's meaning, written plainly: hours start on the listed days."""
    start = int(hours.start[:2]) * 60 + int(hours.start[3:])
    end = int(hours.end[:2]) * 60 + int(hours.end[3:])
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    today, yesterday = days[day], days[(day - 1) % 7]
    if start < end:
        return today in hours.days and start <= minute < end
    return (today in hours.days and minute >= start) or (yesterday in hours.days and minute < end)


def _muted_by(entries: list[dict[str, Any]], day: int, minute: int) -> bool:
    """Alertmanager's reading of time_intervals entries (weekday ranges Sunday-first)."""
    sunday_first = ["sunday", *WEEKDAYS[:6]]
    name = WEEKDAYS[day]
    for entry in entries:
        in_days = False
        for text in entry["weekdays"]:
            first, _, last = text.partition(":")
            lo, hi = sunday_first.index(first), sunday_first.index(last or first)
            in_days |= lo <= sunday_first.index(name) <= hi
        if not in_days:
            continue
        times = entry.get("times")
        if times is None:
            return True
        for t in times:
            start = int(t["start_time"][:2]) * 60 + int(t["start_time"][3:])
            end = int(t["end_time"][:2]) * 60 + int(t["end_time"][3:])
            if start <= minute < end:
                return True
    return False


HOURS = [
    BusinessHours(),
    BusinessHours("09:00", "17:30", ["mon", "tue", "wed", "thu", "fri"]),
    BusinessHours("18:00", "02:00", ["fri", "sat"]),
    BusinessHours("20:00", "04:00", ["sun"]),
    BusinessHours("00:00", "24:00", ["sat", "sun"]),
    BusinessHours("06:15", "23:45", ["mon", "wed", "sun"]),
]


@pytest.mark.parametrize("hours", HOURS, ids=lambda h: f"{h.start}-{h.end}-{'.'.join(h.days)}")
def test_outside_business_hours_is_exactly_the_complement(hours: BusinessHours) -> None:
    entries = time_interval(hours, "Europe/Berlin")
    assert all(e["location"] == "Europe/Berlin" for e in entries)
    wrong = [
        (WEEKDAYS[day], minute)
        for day in range(7)
        for minute in range(0, 1440, 5)
        if _muted_by(entries, day, minute) == _in_business_hours(hours, day, minute)
    ]
    assert wrong == []


def test_amtool_accepts_intervals_running_past_midnight_and_the_weekend(tmp_path: Path) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    th = inputs.ruleset.thresholds
    hours = BusinessHours("18:00", "02:00", ["fri", "sat", "sun"])
    file = dataclasses.replace(th.file, business_hours=hours, timezone="Australia/Lord_Howe")
    ruleset = dataclasses.replace(inputs.ruleset, thresholds=dataclasses.replace(th, file=file))
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config(inputs.routing, ruleset, "test"))
    result = _amtool_run("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    weekdays = yaml.safe_load(path.read_text())["time_intervals"][0]["time_intervals"]
    assert ["sunday", "saturday"] in [e["weekdays"] for e in weekdays]  # a run split at Sunday


@pytest.mark.parametrize(
    ("days", "text"),
    [
        ((0, 1, 2, 3, 4), ["monday:friday"]),
        ((0, 1, 2, 3, 4, 5, 6), ["sunday:saturday"]),
        ((5, 6), ["sunday", "saturday"]),
        ((6, 0), ["sunday:monday"]),
        ((0, 2, 4), ["monday", "wednesday", "friday"]),
        ((3,), ["thursday"]),
    ],
)
def test_weekday_ranges_count_from_sunday(days: tuple[int, ...], text: list[str]) -> None:
    assert weekday_ranges(days) == text
