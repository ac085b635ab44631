"""Rows fetched per query and label value lengths are bounded, and what was cut is counted."""

from __future__ import annotations

import time

import pytest

from exporter.config import ConfigError
from exporter.sources.samples import clip_label
from tests.support.exporter import config_for, running_exporter, scrape

WEBHOOKS = "boxoffice_webhook_events_total"


@pytest.mark.parametrize(
    ("value", "limit", "clipped"),
    [
        ("short", 32, False),
        ("x" * 32, 32, False),
        ("x" * 33, 32, True),
        ("é" * 5000, 40, True),
    ],
)
def test_clip_label_keeps_short_values_and_marks_long_ones(
    value: str, limit: int, clipped: bool
) -> None:
    result, was_clipped = clip_label(value, limit)
    assert was_clipped is clipped
    assert len(result) <= limit
    if clipped:
        assert result.startswith(value[:8]) and "…" in result
        # Two long values sharing a prefix stay two series.
        assert clip_label(value + "y", limit)[0] != result
    else:
        assert result == value


def _series(pg_dsn: str, sql: str, **env: str) -> tuple[dict[str, float], dict[str, float], int]:
    config = config_for(
        pg_dsn,
        BOXOFFICE_METRICS_BOXOFFICE_WEBHOOK_EVENTS_TOTAL_SQL=sql,
        BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1h",
        **env,
    )
    with running_exporter(config) as (exporter, url):
        (runner,) = exporter.runners
        runner.run_once()
        # The scheduler's own first cycle may still be finishing: read the counters and the
        # number of cycles from the same snapshot (the count unchanged across the scrape).
        for _ in range(50):
            cycles = runner.snapshot().cycles
            series = scrape(url)
            if runner.snapshot().cycles == cycles:
                break
            time.sleep(0.1)
    published = {
        dict(labels)["provider"]: v for (name, labels), v in series.items() if name == WEBHOOKS
    }
    cut = {
        name: v
        for (name, labels), v in series.items()
        if name.endswith("_truncated_total") and dict(labels)["metric"] == WEBHOOKS
    }
    return published, cut, cycles


def test_rows_past_the_limit_are_not_fetched_and_are_counted(pg_schema: str) -> None:
    published, cut, cycles = _series(
        pg_schema,
        "SELECT 'p' || g AS provider, g::int8 AS value FROM generate_series(1, 50) AS g",
        BOXOFFICE_SOURCES_POSTGRES_MAX_ROWS_PER_QUERY="5",
    )
    assert published == {f"p{g}": g for g in range(1, 6)}
    assert cut == {"boxoffice_query_rows_truncated_total": 45 * cycles}


def test_long_label_values_are_clipped_and_counted(pg_schema: str) -> None:
    published, cut, cycles = _series(
        pg_schema,
        "SELECT repeat('x', 2000000) AS provider, 1::int8 AS value "
        "UNION ALL SELECT 'short', 2::int8",
        BOXOFFICE_SOURCES_POSTGRES_MAX_LABEL_LENGTH="64",
    )
    (long_value,) = [p for p in published if p != "short"]
    assert len(long_value) == 64 and long_value.startswith("xxxx") and "…" in long_value
    assert published["short"] == 2
    assert cut == {"boxoffice_label_values_truncated_total": 1 * cycles}


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_ROWS_PER_QUERY", "0"), ("MAX_LABEL_LENGTH", "8")],
)
def test_bounds_must_be_sane(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        config_for(
            "postgresql://nobody@127.0.0.1:9/x", **{f"BOXOFFICE_SOURCES_POSTGRES_{name}": value}
        )
