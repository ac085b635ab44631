"""Pure functions of the rules generator, as tables: time zones, PromQL names, formatting."""

from __future__ import annotations

import itertools
import pathlib
from datetime import UTC, datetime

import pytest
import yaml

from exporter.generate import series
from exporter.generate.alertdefs import ALERT_DEFS
from exporter.generate.localtime import offset_expression, offset_periods, standard_offset
from exporter.generate.promql import PromQLSyntaxError, duration_text, metric_names
from exporter.generate.rules.alertkit import Ladder
from exporter.generate.rules.alerts import BUILDERS
from exporter.generate.rules.model import Text, format_value, humanize_duration
from exporter.generate.rules.promtool_series import Counter
from exporter.generate.selectors import parse_selector, satisfying


def _utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# (zone, year, [(period start in UTC, offset seconds)])
PERIODS = [
    (
        "America/New_York",
        2025,
        [("2025-01-01T00:00", -18000), ("2025-03-09T07:00", -14400), ("2025-11-02T06:00", -18000)],
    ),
    (
        "America/New_York",
        2026,
        [("2026-01-01T00:00", -18000), ("2026-03-08T07:00", -14400), ("2026-11-01T06:00", -18000)],
    ),
    (
        "Europe/Berlin",
        2025,
        [("2025-01-01T00:00", 3600), ("2025-03-30T01:00", 7200), ("2025-10-26T01:00", 3600)],
    ),
    (
        "Europe/London",
        2025,
        [("2025-01-01T00:00", 0), ("2025-03-30T01:00", 3600), ("2025-10-26T01:00", 0)],
    ),
    # Southern hemisphere: summer time at both ends of the year.
    (
        "Australia/Sydney",
        2025,
        [("2025-01-01T00:00", 39600), ("2025-04-05T16:00", 36000), ("2025-10-04T16:00", 39600)],
    ),
    # Half-hour offsets and no daylight saving time.
    ("Asia/Kolkata", 2025, [("2025-01-01T00:00", 19800)]),
    ("UTC", 2025, [("2025-01-01T00:00", 0)]),
]


@pytest.mark.parametrize(("zone", "year", "expected"), PERIODS)
def test_offset_periods_follow_the_tz_database(
    zone: str, year: int, expected: list[tuple[str, int]]
) -> None:
    periods = offset_periods(zone, year, year)
    assert [(p.start, p.offset) for p in periods] == [(_utc(s), o) for s, o in expected]
    assert periods[-1].end == _utc(f"{year + 1}-01-01T00:00")
    assert all(a.end == b.start for a, b in itertools.pairwise(periods))


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("America/New_York", -18000),
        ("Europe/Berlin", 3600),
        ("Australia/Sydney", 36000),
        ("Asia/Kolkata", 19800),
        ("UTC", 0),
    ],
)
def test_standard_offset(zone: str, offset: int) -> None:
    assert standard_offset(zone, 2025) == offset


def test_offset_expression_adds_only_the_periods_that_differ() -> None:
    periods = offset_periods("America/New_York", 2025, 2025)
    assert offset_expression(periods, -18000) == (
        "vector(-18000\n  +3600 * (time() >= bool 1741503600) * (time() < bool 1762063200))"
    )
    assert offset_expression(offset_periods("Asia/Kolkata", 2025, 2026), 19800) == "vector(19800)"


NAMES = [
    ("up", ["up"]),
    ('up{job=~"boxoffice.*"} == 0', ["up"]),
    (
        "sum by (le) (rate(http_request_duration_seconds_bucket[5m]))",
        ["http_request_duration_seconds_bucket"],
    ),
    (
        "max by (event, city, tier) (boxoffice_inventory_available_tickets) <= 10 > 5",
        ["boxoffice_inventory_available_tickets"],
    ),
    ("sum without (instance) (x) / on (a) group_left (b, c) y", ["x", "y"]),
    ("a:b:c offset 1w", ["a:b:c"]),
    ("x offset -5m + y @ 1609746000", ["x", "y"]),
    ("min_over_time((x and on() (d == on() (d @ end())))[1d:5m])", ["x", "d"]),
    ('label_replace(vector(1), "currency", "usd", "", "")', []),
    (
        "time() - max(boxoffice_last_paid_order_timestamp_seconds)",
        ["boxoffice_last_paid_order_timestamp_seconds"],
    ),
    ("hour(t) * 60 + minute(t) >= bool 540", ["t"]),
    ("1e3 * x and ignoring(le) 0x1F > inf or nan < y", ["x", "y"]),
    ('x{a="b}", c=~"sum(y)"}', ["x"]),
    ("# a comment mentioning z\nx", ["x"]),
    ("sum(rate(x[5m])) unless on(slo) count(y)", ["x", "y"]),
    ("topk(3, x) or bottomk by (a) (2, y)", ["x", "y"]),
]


@pytest.mark.parametrize(("expr", "names"), NAMES)
def test_metric_names(expr: str, names: list[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ['x{a="b}', 'x{a="b"', "x[5m"])
def test_metric_names_refuses_unterminated(expr: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        metric_names(expr)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1.5, "1.5s"),
        (59, "59s"),
        (60, "1m 0s"),
        (7200, "2h 0m 0s"),
        (68400, "19h 0m 0s"),
        (90061, "1d 1h 1m 1s"),
        (-60, "-1m 0s"),
    ],
)
def test_humanize_duration_matches_prometheus(seconds: float, text: str) -> None:
    assert humanize_duration(seconds) == text


@pytest.mark.parametrize(
    ("fmt", "value", "text"),
    [
        ("percent", 0.5, "50%"),
        ("percent", 2 / 3, "66.67%"),
        ("percent", 0.0999999999, "10%"),
        ("number", 6.5, "6.5"),
        ("number", 12345, "1.234e+04"),
        ("money", 7.5, "7.50"),
        ("seconds", 4.0000001, "4s"),
        ("factor", 19.999999999999996, "20x"),
        ("duration", 600, "10m 0s"),
    ],
)
def test_format_value(fmt: str, value: float, text: str) -> None:
    assert format_value(fmt, value) == text  # type: ignore[arg-type]


def test_text_renders_go_template_and_expected_text() -> None:
    text = Text("{value} {tier} tickets left in {city}.", "number")
    assert (
        text.go()
        == '{{ printf "%.4g" $value }} {{ $labels.tier }} tickets left in {{ $labels.city }}.'
    )
    assert text.expand({"tier": "vip", "city": "lisbon"}, 2) == "2 vip tickets left in lisbon."


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (90, "1m30s"),
        (300, "5m"),
        (86400, "1d"),
        (604800, "1w"),
        (0.5, "500ms"),
        (259200, "3d"),
        (420, "7m"),
    ],
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


UPWARD = Ladder((("critical", 10.0), ("high", 3.0)), upward=True, strict=False)
DOWNWARD = Ladder((("critical", 0.85), ("high", 0.9)), upward=False, strict=True)


def test_ladder_conditions_exclude_more_severe_bands() -> None:
    assert UPWARD.conditions("x") == {"critical": "(x) >= 10", "high": "(x) >= 3 < 10"}
    assert DOWNWARD.conditions("x") == {"critical": "(x) < 0.85", "high": "(x) < 0.9 >= 0.85"}


@pytest.mark.parametrize(
    ("ladder", "value", "severity"),
    [
        (UPWARD, 10, "critical"),
        (UPWARD, 9.99, "high"),
        (UPWARD, 3, "high"),
        (UPWARD, 2.9, None),
        (DOWNWARD, 0.85, "high"),
        (DOWNWARD, 0.84, "critical"),
        (DOWNWARD, 0.9, None),
        (UPWARD, None, None),
    ],
)
def test_ladder_severity(ladder: Ladder, value: float | None, severity: str | None) -> None:
    assert ladder.severity(value) == severity


def test_ladder_targets_put_one_value_in_each_band_and_one_short_of_each_threshold() -> None:
    for ladder in (UPWARD, DOWNWARD):
        for name, value in ladder.targets(ceiling=None if ladder.upward else 1.0):
            expected = None if name.startswith("near-") else name
            if name == "near-critical":
                expected = "high"  # just short of critical is inside the high band
            assert ladder.severity(value) == expected, (name, value)


def test_counter_model_matches_prometheus_increase_on_zero_start_counters() -> None:
    counter = Counter(((600.0, 1.0), (float("inf"), 0.5)))
    assert counter.increase(300, 0, 60) is None
    assert counter.increase(300, 120, 60) == 120  # clamped at the zero point, not extrapolated
    assert counter.increase(300, 900, 60) == 150
    assert counter.series("x", 900, 60).values == "0+60x10 630+30x4"


@pytest.mark.parametrize(
    ("selector", "avoid", "labels"),
    [
        ('x{job="app", code=~"5.."}', None, {"code": "500", "job": "app"}),
        ('x{job="app"}', 'x{job="app", code=~"5.."}', {"code": "200", "job": "app"}),
        ('x{route=~"/api/inventory.*"}', None, {"route": "/api/inventory"}),
        ('x{env!="prod"}', None, {"env": "500"}),
        ("x", None, {}),
    ],
)
def test_satisfying_labels(selector: str, avoid: str | None, labels: dict[str, str]) -> None:
    avoid_matchers = parse_selector(avoid)[1] if avoid else None
    assert satisfying(parse_selector(selector)[1], avoid_matchers) == labels


def test_every_alert_has_exactly_one_builder() -> None:
    assert sorted(BUILDERS) == sorted(d.name for d in ALERT_DEFS)


def test_named_ratio_reads_its_parts_by_name_or_written_out() -> None:
    ratio = series.ratio(series.SMS_FAILED, series.SMS, 3600.0, keep=())
    assert ratio.name == "boxoffice:sms_messages_failed:ratio_increase1h"
    assert (
        ratio.expr == "boxoffice:sms_messages_failed:increase1h / boxoffice:sms_messages:increase1h"
    )
    assert [part.name for part in ratio.parts] == [
        "boxoffice:sms_messages_failed:increase1h",
        "boxoffice:sms_messages:increase1h",
    ]
    inline = ratio.written(lambda part: f"({part.expr})")
    assert inline == (
        "(sum (max by (error_code) (increase(boxoffice_sms_messages_failed_total[1h]))))"
        " / (max (increase(boxoffice_sms_messages_total[1h])))"
    )


def test_slo_ticket_is_silent_while_a_page_long_window_holds_the_burn() -> None:
    """After a page-level burn ends, its failures stay in the ticket's windows for hours:
    the ticket is held off by the page's long windows alone (1h, 6h), not the short ones."""
    path = pathlib.Path(__file__).parent.parent / "rules/generated/availability.yml"
    rules = [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    ticket = next(
        r["expr"]
        for r in rules
        if r.get("alert") == "SLOErrorBudgetBurn"
        and r["labels"]["severity"] == "high"
        and r["labels"]["escalation"] == "1"
    )
    for clause in ticket.split("unless on(slo)")[1:]:
        held_by = clause.split("\n")[0]
        assert "ratio_rate1h" in held_by and "ratio_rate6h" in held_by
        assert "ratio_rate5m" not in held_by and "ratio_rate30m" not in held_by
