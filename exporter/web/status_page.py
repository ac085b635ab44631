"""Where each figure of the status page comes from (docs/status-page.md).

- Revenue and orders, today and in the last hour: Prometheus (``status_page.prometheus_url``),
  one instant query of the four expressions below, each tagged with a ``figure`` label.
  "Today" is the seller's local day, from the generated clock rules (boxoffice:local_day).
- Firing alerts: Alertmanager's API v2 (``status_page.alertmanager_url``).
- Open checkouts, the scarcest tiers and each source's health: the exporter's own latest
  snapshots, so the page shows them with neither configured.

The two remote calls run side by side, each within ``status_page.timeout``; their answers
are kept for a few seconds and shared by concurrent requests, so a page left open on many
phones costs Prometheus one query per interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.collect.scheduler import Snapshot
from exporter.config.settings import StatusPageSettings
from exporter.web.landing import source_state
from exporter.web.status import (
    SEVERITY_ORDER,
    AlertRow,
    Figure,
    SourceRow,
    StatusView,
    TierRow,
    render_status_page,
    since_label,
)

if TYPE_CHECKING:
    import requests

    from exporter.web.status_remote import Alert, Series

# Paid orders, deduplicated across exporter replicas the way the generated rules do it.
_PAID = "sum(max by (city, tier, payment_method, member, currency) (boxoffice_orders_paid_total))"
EXPRESSIONS: dict[str, str] = {
    # The generated recording rule (rules/generated/sales.yml).
    "revenue_today": "boxoffice:revenue:today",
    # Built like boxoffice:revenue:today: now, minus the lowest value since local midnight.
    "orders_today": (
        f"{_PAID} - min_over_time(({_PAID} and on() "
        "(boxoffice:local_day == on() (boxoffice:local_day @ end())))[1d:5m])"
    ),
    "revenue_hour": "max by (currency) (increase(boxoffice_revenue_total[1h]))",
    "orders_hour": (
        "sum(max by (city, tier, payment_method, member, currency) "
        "(increase(boxoffice_orders_paid_total[1h])))"
    ),
}
_FIGURE = "figure"
REMOTE_FIGURES = tuple(EXPRESSIONS)
CACHE_SECONDS = 5.0
# Prometheus is asked for its answer as of a whole second this long ago, shown on the page:
# every scrape and rule evaluation stamped before it has landed, so anyone who asks
# Prometheus the same expression at that instant gets the same figure.
QUERY_LAG = 5
MAX_TIERS = 5
MAX_ALERTS_SHOWN = 20


def combined_query() -> str:
    """The one query the page sends: every expression, tagged by a ``figure`` label."""
    return " or ".join(
        f'label_replace({expr}, "{_FIGURE}", "{key}", "", "")' for key, expr in EXPRESSIONS.items()
    )


def remote_figures(found: list[Series]) -> dict[str, Figure]:
    """Each figure's values by currency (empty currency for counts)."""
    values: dict[str, list[tuple[str, float]]] = {key: [] for key in REMOTE_FIGURES}
    for series in found:
        key = series.labels.get(_FIGURE, "")
        if key in values:
            values[key].append((series.labels.get("currency", ""), series.value))
    return {
        key: Figure(tuple(v)) if v else Figure(problem="no data yet") for key, v in values.items()
    }


def alert_rows(alerts: list[Alert]) -> tuple[tuple[AlertRow, ...], int]:
    """The alerts to show, most severe and oldest first, and how many more there are."""

    def rank(alert: Alert) -> tuple[int, str, str]:
        severity = alert.labels.get("severity", "")
        order = (
            SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
        )
        return order, alert.starts_at, alert.labels.get("alertname", "")

    ranked = sorted(alerts, key=rank)
    rows = tuple(
        AlertRow(
            name=a.labels.get("alertname", "unnamed alert"),
            severity=a.labels.get("severity", ""),
            summary=a.annotations.get("summary") or a.annotations.get("description", ""),
            since=since_label(a.starts_at),
        )
        for a in ranked[:MAX_ALERTS_SHOWN]
    )
    return rows, max(0, len(ranked) - MAX_ALERTS_SHOWN)


def local_figures(
    snapshots: Iterable[Snapshot], now_monotonic: float
) -> tuple[Figure, tuple[TierRow, ...], str | None]:
    """Open checkouts and the scarcest tiers from fresh snapshots of the exporter itself."""
    checkouts: list[float] = []
    available: dict[tuple[str, str, str], float] = {}
    capacity: dict[tuple[str, str, str], float] = {}
    seen = False
    for snap in snapshots:
        if not snap.fresh(now_monotonic):
            continue
        for family in snap.families:
            if family.name == "boxoffice_checkout_sessions_open":
                seen = True
                checkouts += [s.value for s in family.samples]
            elif family.name in (
                "boxoffice_inventory_available_tickets",
                "boxoffice_inventory_capacity_tickets",
            ):
                seen = True
                into = available if family.name.endswith("available_tickets") else capacity
                for s in family.samples:
                    key = (
                        s.labels.get("event", ""),
                        s.labels.get("city", ""),
                        s.labels.get("tier", ""),
                    )
                    into[key] = s.value
    problem = None if seen else "not available: the PostgreSQL source has no fresh data"
    open_checkouts = Figure((("", sum(checkouts)),)) if checkouts else Figure(problem=problem)
    rows = [
        TierRow(event=k[0], city=k[1], tier=k[2], available=available[k], capacity=capacity[k])
        for k in available.keys() & capacity.keys()
        if capacity[k] > 0
    ]
    rows.sort(key=lambda r: (r.available / r.capacity, r.available, r.event, r.city, r.tier))
    return open_checkouts, tuple(rows[:MAX_TIERS]), problem


def source_rows(snapshots: Iterable[Snapshot], now_monotonic: float) -> tuple[SourceRow, ...]:
    return tuple(
        SourceRow(
            source=snap.source,
            state=source_state(snap, now_monotonic),
            last_success=snap.last_success,
            error=snap.last_error or "",
        )
        for snap in snapshots
    )


@dataclass(frozen=True)
class _Remote:
    evaluated_at: int | None  # Unix time the figures are Prometheus' answer for
    figures: dict[str, Figure]
    alerts: tuple[AlertRow, ...]
    alerts_more: int
    alerts_problem: str | None


class StatusPage:
    """Renders /status from the snapshots and, when configured, Prometheus and Alertmanager."""

    def __init__(
        self,
        settings: StatusPageSettings,
        snapshots: Callable[[], list[Snapshot]],
        *,
        session: requests.Session | None = None,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._settings = settings
        self._snapshots = snapshots
        # Made at the first remote fetch: requests (and status_remote) are imported only
        # then, which keeps them out of the exporter's start before /metrics answers.
        self._session = session
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, _Remote] | None = None

    def render(self) -> str:
        now = time.monotonic()
        snapshots = self._snapshots()
        remote = self._remote(now)
        open_checkouts, tiers, tiers_problem = local_figures(snapshots, now)
        view = StatusView(
            generated_at=time.time(),
            refresh=round(self._settings.refresh),
            figures_at=remote.evaluated_at,
            revenue_today=remote.figures["revenue_today"],
            orders_today=remote.figures["orders_today"],
            revenue_hour=remote.figures["revenue_hour"],
            orders_hour=remote.figures["orders_hour"],
            open_checkouts=open_checkouts,
            tiers=tiers,
            tiers_problem=tiers_problem,
            alerts=remote.alerts,
            alerts_more=remote.alerts_more,
            alerts_problem=remote.alerts_problem,
            sources=source_rows(snapshots, now),
        )
        return render_status_page(view)

    def _remote(self, now: float) -> _Remote:
        # One fetch at a time; requests arriving meanwhile wait for it and share its answer.
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            remote = self._fetch()
            self._cached = (time.monotonic(), remote)
            return remote

    def _client(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc credentials from the environment
        return self._session

    def _fetch(self) -> _Remote:
        s = self._settings
        at = int(time.time()) - QUERY_LAG
        session = self._client() if s.prometheus_url or s.alertmanager_url else None
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="status") as pool:
            prom = pool.submit(self._prometheus, session, at) if s.prometheus_url else None
            am = pool.submit(self._alertmanager, session) if s.alertmanager_url else None
            figures = (
                prom.result()
                if prom
                else dict.fromkeys(
                    REMOTE_FIGURES, Figure(problem="not configured (status_page.prometheus_url)")
                )
            )
            alerts: tuple[tuple[AlertRow, ...], int, str | None] = (
                am.result() if am else ((), 0, "Not configured (status_page.alertmanager_url).")
            )
        return _Remote(at if prom else None, figures, *alerts)

    def _prometheus(self, session: requests.Session | None, at: int) -> dict[str, Figure]:
        assert self._settings.prometheus_url is not None and session is not None
        from exporter.web.status_remote import Unavailable, query

        try:
            found = query(
                session,
                self._settings.prometheus_url,
                combined_query(),
                at=at,
                timeout=float(self._settings.timeout),
            )
        except Unavailable as exc:
            return dict.fromkeys(REMOTE_FIGURES, Figure(problem=f"Prometheus not available: {exc}"))
        return remote_figures(found)

    def _alertmanager(
        self, session: requests.Session | None
    ) -> tuple[tuple[AlertRow, ...], int, str | None]:
        assert self._settings.alertmanager_url is not None and session is not None
        from exporter.web.status_remote import Unavailable, firing_alerts

        try:
            alerts = firing_alerts(
                session,
                self._settings.alertmanager_url,
                timeout=float(self._settings.timeout),
            )
        except Unavailable as exc:
            return (), 0, f"Alertmanager not available: {exc}."
        rows, more = alert_rows(alerts)
        return rows, more, None
