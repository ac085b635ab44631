"""Periodic full reconciliation of the incremental totals, off the collection's hot path.

A background thread opens its own read-only transaction, exports its snapshot and hands
the snapshot id to the engine; the next collection cycle reads in that same snapshot and
reports its totals. The thread then recomputes every quantity from all rows in the
snapshot, so both sides see exactly the same data, and the engine publishes the
difference and corrects itself. The full scans run on the reconciliation's connection
with their own timeout, never inside a collection cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from exporter.sources.incremental import Drift, Handoff, IncrementalEngine, full_totals
from exporter.sources.pgconn import set_statement_timeout

# Opens the reconciliation's own connection: not one of the collection pool's, so that a
# pool of one connection still leaves the collection cycle a connection to read in with.
Connect = Callable[[], psycopg.Connection[Any]]

log = logging.getLogger(__name__)


class Reconciler:
    """Reconciles one engine every ``interval`` seconds in a daemon thread."""

    def __init__(
        self,
        engine: IncrementalEngine,
        connect: Connect,
        *,
        database: str,
        interval: float,
        wait: float,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._database = database
        self._interval = interval
        self._wait = wait  # how long a collection cycle may take to read the snapshot
        self._timeout = timeout
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Reconcile every interval from now on (the first after one interval)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"reconcile-{self._database}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop, cancelling a reconciliation that is running (its query is interrupted)."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.cancel_safe(timeout=2)
        if self._thread is not None:
            self._thread.join(5)

    def run_once(self) -> Drift | None:
        """One reconciliation; None when no collection cycle read the snapshot in time."""
        with self._connect() as conn:
            self._conn = conn
            try:
                return self._reconcile(conn)
            finally:
                self._conn = None

    def _reconcile(self, conn: psycopg.Connection[Any]) -> Drift | None:
        with conn.transaction():
            set_statement_timeout(conn, self._timeout)
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            handoff = Handoff(snapshot_id=str(row[0]) if row else "")
            self._engine.offer_snapshot(handoff)
            deadline = time.monotonic() + self._wait
            while not handoff.done.wait(0.2):
                if self._stop.is_set() or time.monotonic() > deadline:
                    break
            if not handoff.done.is_set() or handoff.totals is None:
                self._engine.withdraw_snapshot(handoff)
                log.warning(
                    "reconciliation of database %r skipped: no collection cycle read its "
                    "snapshot within %.0fs",
                    self._database,
                    self._wait,
                )
                return None
            full = full_totals(conn)
        drift = self._engine.reconciled(full, handoff.totals, self._clock())
        found = {name: value for name, value in drift.by_metric.items() if value}
        if found:
            log.warning(
                "reconciliation of database %r found drift, corrected: %s", self._database, found
            )
        else:
            log.info("reconciliation of database %r: no drift", self._database)
        return drift

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            if self._engine.full:
                # No cycle has collected yet (the database may be down since start): there
                # is nothing to compare, and no cycle would read the snapshot.
                continue
            try:
                self.run_once()
            except psycopg.Error as exc:
                text = str(exc).strip().splitlines()
                log.warning(
                    "reconciliation of database %r failed: %s",
                    self._database,
                    text[0] if text else type(exc).__name__,
                )
