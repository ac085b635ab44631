"""One replica polls each API source: a lease held as a PostgreSQL session advisory lock.

Several exporter replicas would each poll Stripe and Twilio, doubling the calls against
Stripe's per-account rate limit (the one the shop's checkout uses). With a lease database
configured (``ha.lease_database``), each replica keeps a dedicated connection to it and,
before every cycle of an API source, holds or tries ``pg_try_advisory_lock(key)``. The
replica that holds it polls; the others stand by: no business series, ``source_up 0``
(so a leader that cannot collect still makes the max over replicas 0), and
``boxoffice_source_leader 0``. The lock belongs to the session: when the leader stops or
is killed, the server closes its connection and frees the lock, and a standby takes it at
its next cycle, within one interval.

The key is a hash of the source's name and the account it reads (API address, Twilio's
account SID, ``ha.lease_scope``), never of a secret. When the lease database cannot be
reached, the replica polls anyway (fail open): the monitoring keeps working at the cost of
duplicate calls until the database is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import replace
from typing import Any

import psycopg

from exporter.config import Database
from exporter.sources.base import Collection, Source
from exporter.sources.pgconn import first_line

log = logging.getLogger(__name__)


def lease_key(source: str, *identity: str) -> int:
    """A signed 64-bit advisory lock key from the source and its account's identity."""
    text = "\0".join(("boxoffice-lease", source, *identity))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class AdvisoryLease:
    """A session advisory lock on a connection of its own."""

    def __init__(self, db: Database, key: int) -> None:
        self.db = db
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False

    def hold(self) -> bool | None:
        """True: this session holds the lock; False: another does; None: no database.

        A lost session is reopened at once, so a replica whose connection was cut answers
        for the new session (which holds nothing until it wins the lock again).
        """
        for _ in range(2):
            if self._conn is None:
                try:
                    self._conn = self._connect()
                except psycopg.Error as exc:
                    log.warning("lease database %r unreachable: %s", self.db.name, first_line(exc))
                    return None
            try:
                if self._held:
                    # The lock lives as long as the session: a live session still holds it.
                    self._conn.execute("SELECT 1")
                else:
                    row = self._conn.execute(
                        "SELECT pg_try_advisory_lock(%s)", [self.key]
                    ).fetchone()
                    self._held = bool(row and row[0])
                return self._held
            except psycopg.Error as exc:
                log.warning("lease session on %r lost: %s", self.db.name, first_line(exc))
                self.close()
        return None

    def close(self) -> None:
        """Close the session, which frees the lock."""
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _connect(self) -> psycopg.Connection[Any]:
        timeout = max(1, round(self.db.connect_timeout))
        return psycopg.connect(
            self.db.dsn,
            autocommit=True,
            connect_timeout=timeout,
            application_name="boxoffice-lease",
            prepare_threshold=None,
            # A dead server or path must not hang a cycle: keepalives and a bound on
            # unacknowledged data end the session on our side in seconds. The same settings
            # for the server's side of the session end it there when this machine vanishes,
            # which frees the lock for a standby (a killed process's socket closes at once).
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=10_000,
            options=(
                f"-c statement_timeout={timeout * 1000} -c tcp_keepalives_idle=5 "
                "-c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 -c tcp_user_timeout=10000"
            ),
        )


class LeasedSource:
    """An API source polled only while this replica holds its lease."""

    def __init__(self, inner: Source, lease: AdvisoryLease) -> None:
        self.inner = inner
        self.lease = lease
        self.name = inner.name
        self.interval = inner.interval
        self.timeout = inner.timeout
        self._leading: bool | None = None

    def collect(self) -> Collection:
        held = self.lease.hold()
        leading = held is not False
        if leading != self._leading:
            if held is False:
                log.info("source %s: another replica holds the lease; standing by", self.name)
            elif held:
                log.info("source %s: lease taken; this replica polls", self.name)
            else:
                log.warning("source %s: lease unknown (no lease database); polling", self.name)
            self._leading = leading
        if not leading:
            return Collection(leader=False)
        return replace(self.inner.collect(), leader=True)

    def close(self) -> None:
        self.lease.close()
        self.inner.close()
