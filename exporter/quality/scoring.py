"""Precision, recall, detection and reset time per alert, from notifications and incidents.

Definitions (docs/alerting-quality.md states them for readers):

- A notification is one firing episode of a first-tier rule; a page is one of severity high
  or critical.
- A notification *detects* an incident when its alert is among the incident kind's expected
  alerts and it starts firing between the incident's start and its end plus the kind's
  detection budget (an alert already firing before the incident sends nothing new, so it does
  not count). Its detection time is from the incident's start to that first firing; its reset
  time is from the incident's end to its resolution (negative: it resolved while the incident
  still ran).
- Precision of an alert is the share of its notifications that detect an incident; recall is
  the share of the incidents expecting it that it detects.
- A notification is *healthy-time noise* when it overlaps no incident (incident windows are
  widened by the detection budget and an hour of aftermath); noise per shop-week divides them
  by the healthy time simulated. Alerts labelled ``notify="once"`` (a tier sold out) and the
  owner's reports (``notify="digest"`` or ``"ticker"``) are counted per alert but never as
  noise: they are news for the business channel, not incidents.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from exporter.quality.firing import Episode
from exporter.quality.incidents import EFFECT_UNITS, EXPECTED, Incident, Kind

PAGE_SEVERITIES = frozenset({"critical", "high"})
AFTERMATH_S = 3600.0
DAY_S = 86400.0
WEEK_S = 7 * 86400.0


@dataclass(frozen=True, kw_only=True)
class ShopRun:
    """One profile's scored weeks: what was injected and what fired."""

    profile: str
    start: float
    end: float
    incidents: tuple[Incident, ...]
    episodes: tuple[Episode, ...]
    # The harm each incident did (incidents.EFFECT_UNITS), None for kinds not counted.
    effects: tuple[float | None, ...] = ()

    @property
    def healthy_weeks(self) -> float:
        busy = sum(
            min(self.end, i.end + i.expectation.budget_s + AFTERMATH_S) - i.start
            for i in self.incidents
        )
        return max(0.0, self.end - self.start - busy) / WEEK_S


def detects(episode: Episode, incident: Incident) -> bool:
    """Whether ``episode`` counts as catching ``incident`` (expected alert, in its window)."""
    expected = incident.expectation
    return (
        episode.alert in expected.alerts
        and incident.start <= episode.start <= incident.end + expected.budget_s
    )


def overlaps_incident(episode: Episode, incidents: tuple[Incident, ...]) -> bool:
    """Whether ``episode`` is about an incident rather than noise: it overlaps the incident
    (plus its budget and an hour of aftermath), or it is one of the incident's expected
    alerts starting later the same day, as a day's total (revenue so far) shows what the
    incident lost until the day ends."""
    return any(
        (episode.start <= i.end + i.expectation.budget_s + AFTERMATH_S and episode.end > i.start)
        or (episode.alert in i.expectation.alerts and i.start <= episode.start <= i.end + DAY_S)
        for i in incidents
    )


@dataclass(kw_only=True)
class AlertScore:
    """Counts and timings of one (alert, severity) over every run."""

    notifications: int = 0
    true_positive: int = 0
    expected: int = 0
    detected: int = 0
    noise: int = 0
    detection_s: list[float] = field(default_factory=list)
    reset_s: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.true_positive / self.notifications if self.notifications else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.expected if self.expected else None


@dataclass(kw_only=True)
class KindScore:
    """Recall and detection time of one incident kind, by any of its expected alerts."""

    injected: int = 0
    detected: int = 0
    detection_s: list[float] = field(default_factory=list)
    reset_s: list[float] = field(default_factory=list)
    by: set[str] = field(default_factory=set)


@dataclass(kw_only=True)
class Scores:
    """Everything the tables print, from one set of runs."""

    alerts: dict[tuple[str, str], AlertScore]
    kinds: dict[Kind, KindScore]
    # Per profile: (healthy shop-weeks, pages, medium/low notifications) in healthy time.
    noise: dict[str, tuple[float, int, int]]


def _first_detection(episodes: list[Episode], incident: Incident) -> tuple[float, float] | None:
    hits = [e for e in episodes if detects(e, incident)]
    if not hits:
        return None
    detection = min(e.start for e in hits) - incident.start
    reset = max(e.end for e in hits) - incident.end
    return detection, reset


def _count_notifications(
    run: ShopRun, alerts: dict[tuple[str, str], AlertScore]
) -> tuple[int, int]:
    """Tally ``run``'s notifications; returns its healthy-time (pages, others)."""
    pages = quiet = 0
    for episode in run.episodes:
        cell = alerts[(episode.alert, episode.severity)]
        cell.notifications += 1
        if any(detects(episode, i) for i in run.incidents):
            cell.true_positive += 1
        if episode.informational or overlaps_incident(episode, run.incidents):
            continue  # notify once/digest/ticker: news (a sell-out, a report), not noise
        cell.noise += 1
        if episode.severity in PAGE_SEVERITIES:
            pages += 1
        else:
            quiet += 1
    return pages, quiet


def _count_detections(
    run: ShopRun,
    severities: dict[str, set[str]],
    alerts: dict[tuple[str, str], AlertScore],
    kinds: dict[Kind, KindScore],
) -> None:
    for incident in run.incidents:
        kind = kinds[incident.kind]
        kind.injected += 1
        found = _first_detection(list(run.episodes), incident)
        if found is not None:
            kind.detected += 1
            kind.detection_s.append(found[0])
            kind.reset_s.append(found[1])
            kind.by |= {e.alert for e in run.episodes if detects(e, incident)}
        for alert in incident.expectation.alerts:
            for severity in severities.get(alert, set()):
                cell = alerts[(alert, severity)]
                cell.expected += 1
                own = [e for e in run.episodes if (e.alert, e.severity) == (alert, severity)]
                hit = _first_detection(own, incident)
                if hit is not None:
                    cell.detected += 1
                    cell.detection_s.append(hit[0])
                    cell.reset_s.append(hit[1])


def score(runs: list[ShopRun], severities: dict[str, set[str]]) -> Scores:
    """Scores of every alert over ``runs``; ``severities`` lists each alert's severities."""
    alerts: dict[tuple[str, str], AlertScore] = defaultdict(AlertScore)
    kinds: dict[Kind, KindScore] = defaultdict(KindScore)
    noise: dict[str, tuple[float, int, int]] = {}
    for run in runs:
        pages, quiet = _count_notifications(run, alerts)
        noise[run.profile] = (run.healthy_weeks, pages, quiet)
        _count_detections(run, severities, alerts, kinds)
    for alert, levels in severities.items():
        for severity in levels:
            alerts[(alert, severity)]  # every rule gets a row, silent ones too
    return Scores(alerts=dict(alerts), kinds=dict(kinds), noise=noise)


def duration(seconds: float | None) -> str:
    """A short human duration: ``45s``, ``12m``, ``3.5h``, ``2.1d``; ``-`` for none."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 120:
        return f"{sign}{s:.0f}s"
    if s < 7200:
        return f"{sign}{s / 60:.0f}m"
    if s < 172800:
        return f"{sign}{s / 3600:.1f}h"
    return f"{sign}{s / 86400:.1f}d"


def _timing(values: list[float]) -> str:
    """``median / max`` of some durations."""
    median = statistics.median(values) if values else None
    return f"{duration(median)} / {duration(max(values, default=None))}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def alert_table(scores: Scores, shop_weeks: float) -> list[str]:
    """The per-alert table as Markdown rows."""
    rows = [
        "| alert | severity | notifications | precision | recall | detection (median / max)"
        " | reset (median / max) | healthy-time notifications per shop-week |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    for (alert, severity), cell in sorted(
        scores.alerts.items(), key=lambda item: (item[0][0], order.get(item[0][1], 9))
    ):
        detection = _timing(cell.detection_s)
        reset = _timing(cell.reset_s)
        per_week = cell.noise / shop_weeks if shop_weeks else 0.0
        recall = _ratio(cell.recall) + (
            f" ({cell.detected}/{cell.expected})" if cell.expected else ""
        )
        rows.append(
            f"| {alert} | {severity} | {cell.notifications} | {_ratio(cell.precision)} | {recall}"
            f" | {detection} | {reset} | {per_week:.1f} |"
        )
    return rows


def kind_table(scores: Scores) -> list[str]:
    """Recall and timing per incident kind, by any expected alert."""
    rows = [
        "| incident | injected | caught | caught within budget | detection (median / max)"
        " | reset (median / max) | caught by | expected alerts |",
        "|---|---:|---:|---:|---|---|---|---|",
    ]
    for kind in Kind:
        cell = scores.kinds.get(kind)
        if cell is None:
            continue
        detection = _timing(cell.detection_s)
        reset = _timing(cell.reset_s)
        budget = EXPECTED[kind].budget_s
        in_budget = sum(1 for d in cell.detection_s if d <= budget)
        rows.append(
            f"| {kind.value} | {cell.injected} | {cell.detected} | {in_budget} ({duration(budget)})"
            f" | {detection} | {reset}"
            f" | {', '.join(sorted(cell.by)) or '-'} | {', '.join(sorted(EXPECTED[kind].alerts))} |"
        )
    return rows


def noise_table(scores: Scores) -> list[str]:
    """Healthy-time notifications per profile."""
    rows = [
        "| profile | healthy shop-weeks | pages (high/critical) | per shop-week"
        " | medium/low | per shop-week |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for profile, (weeks, pages, quiet) in scores.noise.items():
        rows.append(
            f"| {profile} | {weeks:.1f} | {pages} | {pages / weeks if weeks else 0:.1f}"
            f" | {quiet} | {quiet / weeks if weeks else 0:.1f} |"
        )
    return rows


def missed_table(runs: list[ShopRun], timezone: str) -> list[str]:
    """Every incident no expected alert caught, with when it struck and the harm it did."""
    tz = ZoneInfo(timezone)
    rows = [
        "| profile | incident | started (local) | lasted | harm done |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        effects = run.effects or (None,) * len(run.incidents)
        for incident, effect in zip(run.incidents, effects, strict=True):
            if _first_detection(list(run.episodes), incident) is not None:
                continue
            started = datetime.fromtimestamp(incident.start, tz).strftime("%a %H:%M")
            harm = "-" if effect is None else f"{effect:.1f} {EFFECT_UNITS[incident.kind]}"
            rows.append(
                f"| {run.profile} | {incident.kind.value} | {started}"
                f" | {duration(incident.end - incident.start)} | {harm} |"
            )
    return rows
