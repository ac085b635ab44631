"""Where a database stands in time: the clock that settles rows, and how far behind it is.

On a primary every committed row is visible, so the database's ``now()`` is the clock the
incremental engine settles rows by. On a hot standby it is not: a row committed on the
primary at ``c`` becomes visible only when replay reaches its commit record, minutes later
if replay lags. There the clock is the standby's *replayed position*:

- when the standby has replayed everything it received and its WAL receiver is streaming,
  it is as current as the primary has told it to be: its own ``now()`` (an idle standby
  has an old last-replayed commit while being fully caught up);
- otherwise, the commit time of the last replayed transaction
  (``pg_last_xact_replay_timestamp()``): every transaction that committed before it on the
  primary has been replayed, since commits are replayed in WAL order.

docs/incremental.md explains why that keeps the counters exact whatever the replay lag.
The position must be read *before* the cycle's snapshot is taken (in its own transaction):
replay only moves forward, so an earlier position is never newer than the snapshot's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

# pg_stat_wal_receiver shows its row to every role while a WAL receiver runs, its status
# only to roles with pg_read_all_stats (pg_monitor): there it must be 'streaming'. The LSN
# functions need no privilege. On a primary all but the first two are NULL.
POSITION_SQL = """
SELECT pg_is_in_recovery(), now(), pg_last_xact_replay_timestamp(),
       pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(),
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver
               WHERE COALESCE(status, 'streaming') = 'streaming')"""


@dataclass(frozen=True)
class Position:
    """The clock rows settle by, and how many seconds the database is behind its primary.

    ``at`` is None when a standby cannot tell (nothing replayed since it started and not
    caught up): nothing new settles until it can. ``lag`` is None then too.
    """

    at: datetime | None
    lag: float | None
    standby: bool = False


def position_of(
    in_recovery: bool,
    now: datetime,
    replayed_commit: datetime | None,
    replayed_all_received: bool | None,
    receiving: bool,
) -> Position:
    """Decide the position from what :data:`POSITION_SQL` returns (pure)."""
    if not in_recovery:
        return Position(now, 0.0)
    if replayed_all_received and receiving:
        return Position(now, 0.0, standby=True)
    if replayed_commit is None:
        return Position(None, None, standby=True)
    # Clocks of primary and standby may differ slightly: a lag is never negative.
    at = min(replayed_commit, now)
    return Position(at, (now - at).total_seconds(), standby=True)


def read_position(conn: psycopg.Connection[Any]) -> Position:
    """The database's position, read in a transaction of its own (committed here)."""
    row = conn.execute(POSITION_SQL.encode()).fetchone()
    conn.commit()
    assert row is not None
    return position_of(*row)
