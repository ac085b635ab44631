"""Incremental collection of the default query pack's counters (docs/incremental.md).

The engine keeps settled totals and a boundary per database. Each cycle it reads only the
rows whose stream timestamp is at or after the boundary, in the collection's snapshot,
moves the rows older than ``now() - overlap`` into the settled totals, and recounts the
rest next cycle, so a transaction that commits up to ``overlap`` late is still counted
exactly once. Rows that can still change after settling (pending orders that may fail,
open sessions that may expire, orders refunded in parts) are watched by primary key.

Nothing here changes until a cycle has fully succeeded: a failed cycle leaves the state
as it was, and the next one reads the same rows again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from prometheus_client.core import Metric
from psycopg.rows import class_row

from exporter.catalog import (
    DRIFT_METRIC,
    FULL_COMPUTATIONS_METRIC,
    RECONCILED_AT_METRIC,
    RECONCILIATIONS_METRIC,
)
from exporter.sources import streams as st
from exporter.sources.engine_series import Tier, drift_by_metric, render
from exporter.sources.families import family
from exporter.sources.querypack import MetricSpec
from exporter.sources.replay import Position
from exporter.sources.samples import Sample

log = logging.getLogger(__name__)

# One metric's series as the engine renders them.
Rendered = tuple[MetricSpec, list[Sample]]

# Where "now" comes from when no position is given: the database's clock, so that exporter
# and database hosts need not agree on the time (tests pass their own).
DbClock = Callable[[psycopg.Connection[Any]], datetime]


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """How far back late commits are caught, how long changes of old rows are watched."""

    overlap: timedelta = timedelta(minutes=2)
    track_for: timedelta = timedelta(days=30)
    timeout: float = 10.0  # statement timeout of a regular cycle (s)
    full_timeout: float = 600.0  # statement timeout of the full computation at start (s)


@dataclass(kw_only=True)
class EngineState:
    """Everything carried from one cycle to the next; replaced whole after a success."""

    boundary: datetime | None = None
    settled: st.Totals = field(default_factory=dict)
    pending_orders: dict[int, datetime] = field(default_factory=dict)
    open_sessions: dict[str, datetime] = field(default_factory=dict)
    refund_memos: dict[int, st.RefundMemo] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """What a restart must carry over: the state, the corrections, the counters' highs."""

    state: EngineState
    offsets: st.Totals
    exposed: tuple[tuple[tuple[str, tuple[str, ...]], float], ...]


@dataclass(frozen=True)
class CycleResult:
    """One cycle's exact totals (before corrections) and tiers, with the state to keep."""

    totals: st.Totals
    tiers: tuple[Tier, ...]
    state: EngineState


@dataclass(kw_only=True)
class Handoff:
    """A reconciliation's exported snapshot, and the engine's totals read in it."""

    snapshot_id: str
    taken: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    totals: st.Totals | None = None


@dataclass(frozen=True)
class Drift:
    """What a reconciliation found: per metric, the absolute difference in its own units."""

    at: float  # Unix time
    by_metric: dict[str, float]
    corrections: st.Totals


def run_cycle(
    conn: psycopg.Connection[Any],
    state: EngineState,
    settings: EngineSettings,
    *,
    now: datetime | None,
    advance: bool = True,
) -> CycleResult:
    """Read the streams past the boundary in the current transaction; pure apart from SQL.

    ``now`` is the database's position (:mod:`exporter.sources.replay`), read before the
    transaction's snapshot; None when a standby cannot tell it, and then nothing new
    settles (without a boundary yet, everything is read and the next cycle reads it again).
    ``advance=False`` keeps the boundary where it is: a cycle reading an imported, older
    snapshot must not settle rows that later commits could still add to.
    """
    if now is None or not advance:
        settle = state.boundary if state.boundary is not None else st.BEGINNING
        reference = state.boundary
    else:
        settle = now - settings.overlap
        if state.boundary is not None:
            settle = max(settle, state.boundary)
        reference = now
    keep = reference - settings.track_for if reference is not None else st.BEGINNING
    bounds = st.Bounds(since=state.boundary, settle=settle, keep=keep)
    params = bounds.params()
    split = st.Split(settled=dict(state.settled), window={})
    memos = dict(state.refund_memos)
    _fold_streams(conn, params, split, memos)
    pending = _watch(
        conn,
        state.pending_orders,
        (st.PENDING_RESOLVED_SQL, st.PENDING_SETTLING_SQL),
        params,
        split,
        lambda status, code: (st.FAILED, code) if status == "failed" else None,
    )
    sessions = _watch(
        conn,
        state.open_sessions,
        (st.OPEN_RESOLVED_SQL, st.OPEN_SETTLING_SQL),
        params,
        split,
        lambda status: (st.SESSIONS_EXPIRED,) if status == "expired" else None,
    )
    keep = bounds.keep
    memos = {k: m for k, m in memos.items() if m.refunded_at >= keep}
    with conn.cursor(row_factory=class_row(Tier)) as cur:
        tiers = tuple(cur.execute(st.TIERS_SQL.sql.encode()).fetchall())
    new_state = EngineState(
        boundary=settle if now is not None or state.boundary is not None else None,
        settled=split.settled,
        pending_orders={k: at for k, at in pending.items() if at >= keep},
        open_sessions={k: at for k, at in sessions.items() if at >= keep},
        refund_memos=memos,
    )
    return CycleResult(st.merged(split.settled, split.window), tiers, new_state)


def database_now(conn: psycopg.Connection[Any]) -> datetime:
    """The transaction's start time on the database's clock (rows are stamped with it)."""
    now = _one(conn, "SELECT now()")
    assert isinstance(now, datetime)
    return now


def full_totals(conn: psycopg.Connection[Any]) -> st.Totals:
    """Every quantity recomputed from all rows: what reconciliation compares against."""
    far = st.Bounds(since=None, settle=st.END_OF_TIME, keep=st.END_OF_TIME).params()
    split = st.Split(settled={}, window={})
    _fold_streams(conn, far, split, {})
    return st.merged(split.settled, split.window)


def _fold_streams(
    conn: psycopg.Connection[Any],
    params: dict[str, Any],
    split: st.Split,
    memos: dict[int, st.RefundMemo],
) -> None:
    st.fold_paid(_rows(conn, st.PAID_SQL, params), split)
    st.fold_failed(_rows(conn, st.FAILED_SQL, params), split)
    st.fold_refunds(_rows(conn, st.REFUNDS_SQL, params), split, memos)
    st.fold_counts(st.SESSIONS_CREATED, _rows(conn, st.SESSIONS_CREATED_SQL, params), split)
    st.fold_counts(st.SESSIONS_COMPLETED, _rows(conn, st.SESSIONS_COMPLETED_SQL, params), split)
    st.fold_counts(st.SESSIONS_EXPIRED, _rows(conn, st.SESSIONS_EXPIRED_SQL, params), split)
    st.fold_webhooks(_rows(conn, st.WEBHOOKS_SQL, params), split)


def _watch(
    conn: psycopg.Connection[Any],
    watched: dict[Any, datetime],
    queries: tuple[st.Query, st.Query],
    params: dict[str, Any],
    split: st.Split,
    counts_as: Callable[..., st.Key | None],
) -> dict[Any, datetime]:
    """Settle the watched rows that changed since, and start watching the newly settling.

    ``queries`` are (resolved, settling): the watched rows that left their waiting status,
    as (id, status, ...), and the waiting rows whose timestamp settles now, as (id, at).
    ``counts_as`` says which quantity a resolved row adds one to, if any.
    """
    resolved, settling = queries
    still = dict(watched)
    if watched:
        for row_id, *outcome in _rows(conn, resolved, {"ids": list(watched)}):
            del still[row_id]
            key = counts_as(*outcome)
            if key is not None:
                st.add(split.settled, key, 1)
    for row_id, at in _rows(conn, settling, params):
        still[row_id] = at
    return still


def _rows(conn: psycopg.Connection[Any], query: st.Query, params: dict[str, Any]) -> list[Any]:
    with conn.cursor() as cur:
        cur.execute(query.sql.encode(), params)
        return cur.fetchall()


def _one(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql.encode()).fetchone()
    return row[0] if row else None


class IncrementalEngine:
    """The running totals of one database's default-pack counters, with their corrections."""

    def __init__(
        self,
        specs: Sequence[MetricSpec],
        settings: EngineSettings,
        *,
        clock: DbClock = database_now,
    ) -> None:
        self.specs = tuple(specs)
        self.settings = settings
        self._clock = clock
        self._state = EngineState()
        self._offsets: st.Totals = {}
        self._exposed: dict[tuple[str, tuple[str, ...]], float] = {}
        self._lock = threading.Lock()
        self._handoff: Handoff | None = None
        # The last cycle's corrected totals and tiers, and the series rendered from them.
        self._rendered: tuple[st.Totals, tuple[Tier, ...], list[Rendered]] | None = None
        self._drift: Drift | None = None
        self._reconciliations = 0
        self._full_computations = 0

    @property
    def full(self) -> bool:
        """True until the first full computation has succeeded."""
        return self._state.boundary is None

    @property
    def statement_timeout(self) -> float:
        """Seconds the next cycle's statements may take: longer for the full computation."""
        return self.settings.full_timeout if self.full else self.settings.timeout

    def snapshot_to_import(self) -> str | None:
        """A reconciliation's snapshot the next cycle must read in, if one waits (once)."""
        with self._lock:
            handoff = self._handoff
            if handoff is None or handoff.taken or self.full:
                return None
            handoff.taken = True
            return handoff.snapshot_id

    def collect(
        self,
        conn: psycopg.Connection[Any],
        *,
        imported: str | None,
        position: Position | None = None,
    ) -> tuple[list[tuple[MetricSpec, list[Sample]]], list[Metric]]:
        """Run one cycle in the current transaction, bounded by :attr:`statement_timeout`.

        ``position`` is the database's, read before this transaction's snapshot; without
        it the engine's clock is asked (the database's ``now()``, or a test's clock).
        Returns the default-pack series (for the cardinality guard) and the engine's own
        reconciliation families.
        """
        now = position.at if position is not None else self._clock(conn)
        full = self.full
        result = run_cycle(conn, self._state, self.settings, now=now, advance=imported is None)
        with self._lock:
            self._full_computations += full
            self._state = result.state
            if imported is not None and self._handoff and self._handoff.snapshot_id == imported:
                self._handoff.totals = st.merged(result.totals, self._offsets)
                self._handoff.done.set()
            corrected = st.merged(result.totals, self._offsets) if self._offsets else result.totals
            return list(self._series(corrected, result.tiers)), self._reconciliation_families()

    def published(self) -> Published:
        """The state and what was published from it, for a checkpoint."""
        with self._lock:
            return Published(
                state=self._state, offsets=dict(self._offsets), exposed=tuple(self._exposed.items())
            )

    def restore(self, published: Published) -> None:
        """Continue from a checkpoint instead of the full computation (before any cycle)."""
        with self._lock:
            self._state = published.state
            self._offsets = dict(published.offsets)
            self._exposed = dict(published.exposed)
            self._rendered = None

    def offer_snapshot(self, handoff: Handoff) -> None:
        """A reconciliation exported a snapshot; the next cycle reads in it."""
        with self._lock:
            self._handoff = handoff

    def withdraw_snapshot(self, handoff: Handoff) -> None:
        """The reconciliation gave up waiting; cycles go back to their own snapshots."""
        with self._lock:
            if self._handoff is handoff:
                self._handoff = None

    def reconciled(self, full: st.Totals, incremental: st.Totals, at: float) -> Drift:
        """Record what a reconciliation found, and correct the totals from the next cycle on.

        Corrections upward show at once; downward ones are held by the counters never
        going backwards until the true total catches up.
        """
        corrections = {
            key: full.get(key, 0) - incremental.get(key, 0)
            for key in full.keys() | incremental.keys()
            if full.get(key, 0) != incremental.get(key, 0)
        }
        drift = Drift(at, drift_by_metric(full, incremental), corrections)
        with self._lock:
            self._offsets = {k: v for k, v in st.merged(self._offsets, corrections).items() if v}
            self._drift = drift
            self._reconciliations += 1
            self._handoff = None
        return drift

    def _series(self, corrected: st.Totals, tiers: tuple[Tier, ...]) -> list[Rendered]:
        """The series of ``corrected`` and ``tiers``: last cycle's objects when both are equal.

        Most cycles of a shop change no total and no tier; rendering them again (a sample
        per tier and metric, each compared with what was exposed) is then skipped, and the
        unchanged sample lists tell :mod:`exporter.sources.reuse` that nothing moved. The
        counters' highs are unchanged too: they were raised to these very values last time.
        """
        last = self._rendered
        if last is not None and last[0] == corrected and last[1] == tiers:
            return last[2]
        series = [
            (spec, self._monotonic(spec.name, samples))
            if spec.kind == "counter"
            else (spec, samples)
            for spec, samples in render(self.specs, corrected, tiers)
        ]
        self._rendered = (corrected, tiers, series)
        return series

    def _monotonic(self, name: str, samples: list[Sample]) -> list[Sample]:
        """``samples`` never below what was exposed before (one loop: it runs per series)."""
        exposed = self._exposed
        out = []
        for sample in samples:
            key = (name, sample.labels)
            before = exposed.get(key, 0.0)
            if before > sample.value:
                exposed[key] = before
                out.append(replace(sample, value=before))
            else:
                exposed[key] = sample.value
                out.append(sample)
        return out

    def _reconciliation_families(self) -> list[Metric]:
        runs = family(RECONCILIATIONS_METRIC, value=self._reconciliations)
        full = family(FULL_COMPUTATIONS_METRIC, value=self._full_computations)
        if self._drift is None:
            return [runs, full]
        drift = family(DRIFT_METRIC)
        for name in sorted(self._drift.by_metric):
            if name in {spec.name for spec in self.specs}:
                drift.add_metric([name], self._drift.by_metric[name])
        at = family(RECONCILED_AT_METRIC, value=self._drift.at)
        return [runs, full, drift, at]
