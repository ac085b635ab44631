"""promtool tests of reports.yml (issue 18): the day start is held all day and taken again at
local midnight, today and yesterday come out of it, and the digest is active at its slot's
local minute for ``active_for`` only.

promtool's clock starts at the Unix epoch, in the seller's zone's standard offset (the
offset table starts later), with one paid order a minute for two days.
"""

from __future__ import annotations

from typing import Any

from exporter.generate.digest_settings import minute_of_day
from exporter.generate.promql import duration_text
from exporter.generate.rules.recording import TIME_GROUP, local_offset
from exporter.generate.rules.reports import (
    DAYS_GROUP,
    DIGEST,
    FIGURES,
    FIGURES_GROUP,
    REPORTS_GROUP,
    ROW,
)
from exporter.generate.thresholds import Thresholds
from exporter.generate.yaml_text import dump, header

_START = 10  # orders counted when Prometheus starts
_SERIES = (
    'boxoffice_orders_paid_total{city="Denver", tier="ga", payment_method="card", '
    'member="false", currency="usd"}'
)


def _at(seconds: float) -> str:
    return duration_text(seconds) if seconds else "0s"


def _orders(t: float) -> float:
    return _START + t // 60


def report_tests(th: Thresholds, source: str) -> str | None:
    """The test file's text; None when no digest slot is enabled."""
    slots = th.file.digest.slots()
    if not slots:
        return None
    offset = local_offset(th, 0)
    midnight = 86400 - (offset % 86400)  # the first local midnight after promtool's start
    day = (midnight + offset) // 86400
    now, start = "sum(boxoffice:digest:orders)", "sum(boxoffice:digest_day_start:orders)"
    checks: list[dict[str, Any]] = [
        _expr(start, 60, _START, "the first evaluation starts the day"),
        _expr(start, midnight - 60, _START, "held until local midnight"),
        _expr(start, midnight + 3600, _orders(midnight), "taken again at local midnight"),
        _expr(f"{now} - {start}", midnight + 3600, 60.0, "today so far: an hour of orders"),
        _expr(
            "sum(boxoffice:digest_day_start:orders - "
            "(boxoffice:digest_day_start:orders offset 1d))",
            midnight + 86400 + 600,
            1440.0,
            "yesterday: a whole local day of orders",
        ),
    ]
    # The digest's text reads its figures from one record: today so far, and yesterday.
    for row, when, value in (
        ("today-paid_orders", midnight + 3600, 60.0),
        ("yesterday-paid_orders", midnight + 86400 + 600, 1440.0),
    ):
        series = f'{FIGURES}{{{ROW}="{row}"}}'
        checks.append(_expr(series, when, value, f"the digest's figures: {row}", series))
    active = th.file.digest.active_for
    for slot, at in slots:
        moment = midnight + minute_of_day(at) * 60
        alerts = f'ALERTS{{alertname="{DIGEST}", slot="{slot}"}}'
        labels = {
            "__name__": "ALERTS",
            "alertname": DIGEST,
            "alertstate": "firing",
            "severity": "low",
            "category": "sales",
            "notify": "digest",
            "slot": slot,
            "day": str(day),
        }
        shown = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
        checks += [
            _expr(alerts, moment - 60, None, f"{slot}: not before {at}"),
            {
                "expr": alerts,
                "eval_time": _at(moment),
                "exp_samples": [{"labels": f"ALERTS{{{shown}}}", "value": 1}],
            },
            _expr(alerts, moment + active, None, f"{slot}: over after active_for"),
        ]
    length = int((midnight + 86400 + 1200) // 60)
    body = {
        "rule_files": ["../generated/recording.yml", "../generated/reports.yml"],
        "evaluation_interval": "1m",
        "group_eval_order": [TIME_GROUP, DAYS_GROUP, FIGURES_GROUP, REPORTS_GROUP],
        "tests": [
            {
                "name": "digest day and slots",
                "interval": "1m",
                "input_series": [{"series": _SERIES, "values": f"{_START}+1x{length}"}],
                "promql_expr_test": [{k: v for k, v in c.items() if k != "why"} for c in checks],
            }
        ],
    }
    what = "promtool tests of reports.yml: the digest's day and slots."
    return header(source, what) + dump(body)


def _expr(expr: str, at: float, value: float | None, why: str, shown: str = "{}") -> dict[str, Any]:
    """A check of ``expr`` at ``at``: one sample ``shown`` (its labels) of ``value``, or none."""
    samples = [] if value is None else [{"labels": shown, "value": value}]
    return {"expr": expr, "eval_time": _at(at), "exp_samples": samples, "why": why}
