"""The generated rules evaluated over a corpus in a real Prometheus.

Raw series are backfilled as TSDB blocks; recording rules are materialized pass by pass (a
pass reads only raw series and earlier passes), each pass's results backfilled in turn, the
way ``promtool tsdb create-blocks-from rules`` does; then every alerting rule's expression is
evaluated at each evaluation step and replayed through Prometheus' alert state machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from exporter.quality.corpus import Corpus, SeriesKey, openmetrics_lines, openmetrics_samples
from exporter.quality.firing import Episode, Labels, replay
from exporter.quality.prometheus import Server, backfill
from exporter.quality.rules import AlertRule, RuleSet

# notify labels of news rather than incidents: a tier sold out ("once"), the owner's daily
# digest and sales ticker. Counted per alert, never as noise.
INFORMATIONAL = frozenset({"once", "digest", "ticker"})

_MAX_POINTS = 10_000
Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Span:
    """Evaluation times: every ``step`` seconds from ``start`` up to and including ``last``."""

    start: float
    last: float
    step: int

    @property
    def times(self) -> list[float]:
        count = int((self.last - self.start) // self.step) + 1
        return [self.start + i * self.step for i in range(count)]


def _chunks(span: Span, *, daily: bool, tz: ZoneInfo) -> list[tuple[float, float]]:
    """Query ranges covering ``span``; local-day aligned when the expression uses ``@ end()``.

    ``@ end()`` means the evaluation time in a rule but the range's end in ``query_range``;
    a range that never crosses local midnight makes the two agree for ``local_day`` tests.
    """
    chunks: list[tuple[float, float]] = []
    begin = span.start
    while begin <= span.last:
        if daily:
            local = datetime.fromtimestamp(begin, tz).replace(hour=0, minute=0, second=0)
            midnight = (local + timedelta(days=1, hours=2)).replace(hour=0).timestamp()
            end = min(span.last, begin + ((midnight - begin - 1) // span.step) * span.step)
        else:
            end = min(span.last, begin + (_MAX_POINTS - 1) * span.step)
        chunks.append((begin, end))
        begin = end + span.step
    return chunks


def _series(
    server: Server, expr: str, span: Span, tz: ZoneInfo
) -> dict[Labels, list[tuple[float, float]]]:
    merged: dict[Labels, list[tuple[float, float]]] = {}
    for begin, end in _chunks(span, daily="@ end()" in expr or "@ start()" in expr, tz=tz):
        for labels, values in server.query_range(expr, begin, end, span.step).items():
            merged.setdefault(labels, []).extend(values)
    return merged


def materialize(
    rules: RuleSet, span: Span, data_dir: Path, *, tz: ZoneInfo, lookback_s: int, log: Progress
) -> None:
    """Write every recording rule's results over ``span`` into ``data_dir``, pass by pass."""
    for number, rules_of_pass in enumerate(rules.levels(), start=1):
        results: dict[SeriesKey, list[tuple[float, float]]] = {}
        with Server(data_dir, lookback_s=lookback_s) as server:
            for rule in rules_of_pass:
                for labels, values in _series(server, rule.expr, span, tz).items():
                    kept = tuple((k, v) for k, v in labels if k != "__name__")
                    results[(rule.record, kept)] = values
        log(f"  pass {number}: {len(rules_of_pass)} recording rules, {len(results)} series")
        if results:
            backfill(openmetrics_samples(results), data_dir.parent, data_dir)


def _blind(server: Server, span: Span, tz: ZoneInfo) -> dict[str, set[float]]:
    """Per exporter source, the evaluation times at which it reported ``source_up == 0``."""
    down = _series(server, "max by (source) (boxoffice_source_up) == 0", span, tz)
    return {
        dict(labels).get("source", ""): {t for t, _ in values} for labels, values in down.items()
    }


def episodes_of(
    rule: AlertRule, server: Server, span: Span, tz: ZoneInfo, blind: dict[str, set[float]]
) -> list[Episode]:
    """The notifications one alerting rule sends over ``span``."""
    active: dict[Labels, list[float]] = {}
    value_at: dict[Labels, dict[float, float]] = {}
    for labels, values in _series(server, rule.expr, span, tz).items():
        kept = tuple((k, v) for k, v in labels if k != "__name__")
        active.setdefault(kept, []).extend(t for t, _ in values)
        value_at.setdefault(kept, {}).update(values)

    def held(labels: Labels, t: float) -> bool:
        source = rule.labels.get("source") or dict(labels).get("source", "")
        return rule.holds_while_blind and t in blind.get(source, set())

    return [
        Episode(
            alert=rule.alert,
            severity=rule.severity,
            labels=labels,
            start=start,
            end=end,
            informational=rule.labels.get("notify") in INFORMATIONAL,
            value=value_at.get(labels, {}).get(start),
        )
        for labels, start, end in replay(
            active,
            span.times,
            for_s=rule.for_s,
            keep_firing_for_s=rule.keep_firing_for_s,
            held=held,
        )
    ]


def evaluate(
    corpus: Corpus,
    rules: RuleSet,
    work: Path,
    *,
    scored_from: float,
    timezone: str,
    log: Progress = lambda _: None,
) -> list[Episode]:
    """Backfill ``corpus``, materialize the recording rules, and replay every first-tier alert.

    Escalation tiers 2 and 3 repeat tier 1's condition with a longer ``for``; a notification
    is tier 1's, so only those rules are replayed.
    """
    tz = ZoneInfo(timezone)
    window = corpus.window
    data_dir = work / "data"
    lookback = window.interval * 3 // 2
    backfill(openmetrics_lines(corpus), work, data_dir)
    log("  raw series backfilled")
    full = Span(start=window.start, last=window.end - window.interval, step=window.interval)
    materialize(rules, full, data_dir, tz=tz, lookback_s=lookback, log=log)
    scored = Span(start=scored_from, last=full.last, step=window.interval)
    found: list[Episode] = []
    with Server(data_dir, lookback_s=lookback) as server:
        blind = _blind(server, scored, tz)
        for rule in rules.alerts:
            if rule.escalation == "1":
                found.extend(episodes_of(rule, server, scored, tz, blind))
    log(f"  {len(found)} notifications")
    return sorted(found, key=lambda e: (e.start, e.alert))
