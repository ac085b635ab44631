"""Where the heartbeat's state lives: the last beat, up or down, and whether it was told.

One row, ``pipeline``, in the bridge's store (SQLite, or the PostgreSQL store bridges of an
Alertmanager cluster share, so that both agree on the last beat and only one texts), or in
memory for a dry run. The decision is :func:`decide`, pure: the stores read the row under
their lock, ask it, and write back what it returns.

A change of state is told once: the bridge that finds the change claims the telling (a
lease of ``lease`` seconds), sends, then marks it ``told``; a send that fails releases the
claim so the next check tries again, and a claim left by a bridge that died is taken over
once its lease is over (the on-call group may then get that text twice).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from exporter.smsbridge.store import IdempotencyStore

State = Literal["up", "down"]

_TABLE = "sms_bridge_heartbeat"
_ROW = "pipeline"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('up', 'down')),
    last_beat DOUBLE PRECISION NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL,
    told BOOLEAN NOT NULL,
    claimed_at DOUBLE PRECISION
)
"""


@dataclass(frozen=True, kw_only=True)
class Beat:
    """The heartbeat's state as stored."""

    state: State
    last_beat: float
    changed_at: float  # when ``state`` began
    told: bool  # the on-call group has been texted about ``state``
    claimed_at: float | None = None  # a bridge is texting it now


@dataclass(frozen=True, kw_only=True)
class Telling:
    """This bridge holds the claim to text ``state`` (which began at ``since``)."""

    state: State
    since: float
    last_beat: float


def decide(beat: Beat, *, now: float, timeout: float, lease: float) -> tuple[Beat, Telling | None]:
    """The state after a check at ``now``, and what this bridge must text, if anything."""
    if beat.state == "up" and beat.last_beat < now - timeout:
        beat = Beat(state="down", last_beat=beat.last_beat, changed_at=now, told=False)
    elif beat.state == "down" and beat.last_beat >= beat.changed_at:
        # Back before anyone was told it was down: nothing happened as far as people know.
        down_told = beat.told or beat.claimed_at is not None
        beat = Beat(state="up", last_beat=beat.last_beat, changed_at=now, told=not down_told)
    if beat.told or (beat.claimed_at is not None and beat.claimed_at >= now - lease):
        return beat, None
    claimed = replace(beat, claimed_at=now)
    return claimed, Telling(state=beat.state, since=beat.changed_at, last_beat=beat.last_beat)


def after_beat(beat: Beat | None, now: float) -> Beat:
    """A heartbeat arrived at ``now``."""
    if beat is None:
        return Beat(state="up", last_beat=now, changed_at=now, told=True)
    return replace(beat, last_beat=max(beat.last_beat, now))


def after_start(beat: Beat | None, now: float) -> Beat:
    """A bridge starts: the pipeline gets ``timeout`` from now to prove itself, unless it is
    already known to be down (then only a real beat brings it back)."""
    if beat is None or beat.state == "up":
        return after_beat(beat, now)
    return beat


def after_telling(beat: Beat, telling: Telling, *, told: bool) -> Beat:
    """The claim of ``telling`` ends: told, or released for the next check to try again."""
    if beat.state != telling.state or beat.changed_at != telling.since:
        return beat  # the state moved on meanwhile: its own telling is pending
    return replace(beat, told=beat.told or told, claimed_at=None)


class Beats(Protocol):
    """The heartbeat's state, changed atomically."""

    def start(self, now: float) -> Beat:
        """Record a bridge starting."""

    def beat(self, now: float) -> Beat:
        """Record a heartbeat."""

    def check(self, *, now: float, timeout: float, lease: float) -> tuple[Beat, Telling | None]:
        """Apply :func:`decide` and keep its result."""

    def finish(self, telling: Telling, *, told: bool) -> None:
        """End the claim of ``telling``."""


class MemoryBeats:
    """The state in this process only (a dry run): a restart forgets the last beat."""

    def __init__(self) -> None:
        self._beat: Beat | None = None
        self._lock = threading.Lock()

    def start(self, now: float) -> Beat:
        with self._lock:
            self._beat = after_start(self._beat, now)
            return self._beat

    def beat(self, now: float) -> Beat:
        with self._lock:
            self._beat = after_beat(self._beat, now)
            return self._beat

    def check(self, *, now: float, timeout: float, lease: float) -> tuple[Beat, Telling | None]:
        with self._lock:
            self._beat, telling = decide(
                self._beat or after_beat(None, now), now=now, timeout=timeout, lease=lease
            )
            return self._beat, telling

    def finish(self, telling: Telling, *, told: bool) -> None:
        with self._lock:
            if self._beat is not None:
                self._beat = after_telling(self._beat, telling, told=told)


class StoredBeats:
    """The state as a row of the bridge's store, read and written in one of its
    transactions (SQLite's write lock, PostgreSQL's row lock): bridges sharing a store agree."""

    def __init__(self, store: IdempotencyStore) -> None:
        self._store = store
        store.ensure_tables(_SCHEMA)

    def _change(self, change: Any) -> Any:
        store = self._store
        with store._transaction() as conn:
            found = store._run(
                conn,
                f"SELECT state, last_beat, changed_at, told, claimed_at FROM {_TABLE} "
                f"WHERE name = %s{store._lock_row}",
                (_ROW,),
            ).fetchone()
            before = None
            if found is not None:
                state, last_beat, changed_at, told, claimed_at = found
                before = Beat(
                    state=state,
                    last_beat=float(last_beat),
                    changed_at=float(changed_at),
                    told=bool(told),
                    claimed_at=None if claimed_at is None else float(claimed_at),
                )
            after, result = change(before)
            if after != before:
                store._run(
                    conn,
                    f"INSERT INTO {_TABLE} (name, state, last_beat, changed_at, told, claimed_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                    "state = excluded.state, last_beat = excluded.last_beat, "
                    "changed_at = excluded.changed_at, told = excluded.told, "
                    "claimed_at = excluded.claimed_at",
                    (
                        _ROW,
                        after.state,
                        after.last_beat,
                        after.changed_at,
                        after.told,
                        after.claimed_at,
                    ),
                )
            return result

    def start(self, now: float) -> Beat:
        beat: Beat = self._change(lambda b: (after_start(b, now),) * 2)
        return beat

    def beat(self, now: float) -> Beat:
        beat: Beat = self._change(lambda b: (after_beat(b, now),) * 2)
        return beat

    def check(self, *, now: float, timeout: float, lease: float) -> tuple[Beat, Telling | None]:
        def change(b: Beat | None) -> tuple[Beat, tuple[Beat, Telling | None]]:
            after, telling = decide(
                b or after_beat(None, now), now=now, timeout=timeout, lease=lease
            )
            return after, (after, telling)

        result: tuple[Beat, Telling | None] = self._change(change)
        return result

    def finish(self, telling: Telling, *, told: bool) -> None:
        def change(b: Beat | None) -> tuple[Beat | None, None]:
            return (after_telling(b, telling, told=told) if b else None), None

        self._change(change)
