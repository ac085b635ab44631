"""Realistic demo sales for the reference schema, generated in SQL and deterministic.

Every random choice for order ``i`` is a hash of ``(i, seed, salt)``, so the same seed and
``now`` give the same rows whatever the batch size or query plan. Events and tiers are a
few dozen rows planned in Python; orders, checkout sessions and webhook logs are generated
set-based, one statement per batch. Capacities are set last, from the sales, so the data
has what the alerts need to show at any size: one oversold tier, a sold-out event, nearly
sold-out tiers, the rest comfortably on sale.

Why one module of ~430 lines: planning the catalogue, the batches and the capacities share
the hash salts and the shape tables, and splitting them would scatter one deterministic recipe
over several files; the per-batch SQL already lives apart in ``seed_batch.sql``.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from exporter.db.schema import create_schema, schema_sql
from exporter.db.shop import (
    ABANDONED_SHARE,
    CITIES,
    FAILED_SHARE,
    FAILURE_CODES,
    HOURLY,
    PARTIAL_REFUND_SHARE,
    PAYMENT_METHODS,
    REFUNDED_SHARE,
    SELLER_TIMEZONE,
    WEBHOOK_ERRORS,
    WEEKDAY,
)
from exporter.lifecycle import Failure

TABLES = ("webhook_logs", "orders", "checkout_sessions", "ticket_tiers", "events")
_TIER_SHARE = {"ga": 0.8, "vip": 0.2}

_SALES_WINDOW = timedelta(days=120)
_HISTORY = timedelta(days=365)


class SeedError(Failure):
    """The database cannot be seeded as asked (one line, for the CLI; bad input, exit 2)."""

    exit_code = 2


@dataclass(frozen=True, kw_only=True)
class SeedSummary:
    """How much demo data was written."""

    events: int
    tiers: int
    orders: int
    checkout_sessions: int
    webhook_logs: int
    cities: int


@dataclass(frozen=True, kw_only=True)
class _Tier:
    id: int
    event_id: int
    tier: str
    price_cents: int
    currency: str
    window_start: datetime
    window_end: datetime
    cancelled: bool
    weight: float


def seed_database(
    dsn: str,
    *,
    orders: int = 200_000,
    seed: int = 1,
    now: datetime | None = None,
    replace: bool = False,
    batch_size: int = 100_000,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
    inventory_incidents: bool = True,
) -> SeedSummary:
    """Fill the reference schema at ``dsn`` with a year of sales.

    With ``inventory_incidents`` (the default) the events on sale include one oversold
    tier, one sold-out event and a few nearly sold-out tiers, so every inventory alert and
    panel has something to show; without, every tier on sale has room left, so only what
    happens next (a demo scenario) raises inventory alerts.

    Batches run on ``workers`` connections at once: rows depend only on their ids, so the
    result is the same whatever the order the batches finish in.
    """
    if orders < 1:
        raise SeedError("--orders must be at least 1")
    with psycopg.connect(dsn, autocommit=True) as conn:
        if now is None:
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            now = row[0]
        assert now is not None
        _prepare(conn, replace)
        tiers = _plan(conn, seed, now)
        # A bulk load is much faster without the secondary indexes; create_schema restores them.
        for index in re.findall(r"CREATE INDEX IF NOT EXISTS (\w+)", schema_sql()):
            conn.execute(f"DROP INDEX IF EXISTS {index}")
        try:
            params = _batch_parameters(tiers, seed, now)
            batches = [
                (low, min(orders, low + batch_size - 1)) for low in range(1, orders + 1, batch_size)
            ]
            _run_batches(dsn, tiers, params, batches, workers, progress)
        finally:
            create_schema(conn)
        _session_setup(conn, tiers)
        _open_sessions(conn, tiers, seed, now, count=min(200, 5 + orders // 20_000))
        _set_capacities(conn, seed, now, incidents=inventory_incidents)
        for table in ("events", "ticket_tiers", "orders", "webhook_logs"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
            )
        for table in TABLES:
            conn.execute(f"ANALYZE {table}")
        return _summary(conn)


def _run_batches(
    dsn: str,
    tiers: Sequence[_Tier],
    params: dict[str, Any],
    batches: Sequence[tuple[int, int]],
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    local = threading.local()
    connections: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()

    def run(low: int, high: int) -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = psycopg.connect(dsn, autocommit=True)
            with lock:
                connections.append(conn)
            local.conn = conn
            _session_setup(conn, tiers, bulk=True)
        conn.execute(_BATCH_SQL, {**params, "lo": low, "hi": high})
        return high - low + 1

    executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="seed")
    try:
        futures = [executor.submit(run, low, high) for low, high in batches]
        for future in as_completed(futures):
            done = future.result()
            if progress is not None:
                progress(done)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        for conn in connections:
            conn.close()


def _session_setup(
    conn: psycopg.Connection[Any], tiers: Sequence[_Tier], *, bulk: bool = False
) -> None:
    """The per-connection helpers: the hash-based random function and the tier plan."""
    conn.execute(_RANDOM_FUNCTION)
    if bulk:
        conn.execute("SET synchronous_commit = off")
        # Rows are consistent by construction; skipping the per-row foreign-key triggers
        # (as a restore does) saves a quarter of the time. Only superusers may.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS seed_tiers (idx int PRIMARY KEY, tier_id bigint, "
        "price_cents bigint, currency text, window_start timestamptz, window_end timestamptz, "
        "week0 timestamp, weeks int, cancelled boolean)"
    )
    conn.execute("TRUNCATE seed_tiers")
    zone = ZoneInfo(SELLER_TIMEZONE)
    rows = []
    for idx, t in enumerate(tiers, start=1):
        local = t.window_start.astimezone(zone)
        monday = (local - timedelta(days=local.weekday())).replace(
            tzinfo=None, hour=0, minute=0, second=0, microsecond=0
        )
        weeks = (
            math.ceil((t.window_end.astimezone(zone).replace(tzinfo=None) - monday).days / 7) + 1
        )
        rows.append(
            (
                idx,
                t.id,
                t.price_cents,
                t.currency,
                t.window_start,
                t.window_end,
                monday,
                weeks,
                t.cancelled,
            )
        )
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO seed_tiers VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)


def _prepare(conn: psycopg.Connection[Any], replace: bool) -> None:
    create_schema(conn)
    if replace:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        return
    for table in TABLES:
        row = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()
        if row and row[0]:
            raise SeedError(f"table {table} already has rows; --replace empties the tables first")


def _plan(conn: psycopg.Connection[Any], seed: int, now: datetime) -> list[_Tier]:
    """Insert events and tiers: 2-3 past dates and 1-2 upcoming per city, one cancelled."""
    rng = random.Random(seed)
    events: list[tuple[int, str, str, str, datetime, str, float]] = []
    for city, currency in CITIES:
        offsets = {-rng.randint(20, 340) for _ in range(rng.randint(2, 3))}
        offsets |= {rng.randint(10, 115) for _ in range(rng.randint(1, 2))}
        for offset in sorted(offsets):
            day = (now + timedelta(days=offset)).date()
            starts_at = datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)
            slug = f"{city.lower().replace(' ', '-')}-{day.isoformat()}"
            status = "closed" if offset < 0 else "on_sale"
            events.append(
                (len(events) + 1, slug, city, currency, starts_at, status, rng.uniform(0.5, 1.5))
            )
    upcoming = [e for e in events if e[5] == "on_sale"]
    cancelled_id = upcoming[rng.randrange(len(upcoming))][0]
    tiers: list[_Tier] = []
    for event_id, _slug, _city, currency, starts_at, _status, popularity in events:
        start = max(starts_at - _SALES_WINDOW, now - _HISTORY)
        end = min(starts_at, now)
        prices = {
            "ga": rng.choice((9900, 12900, 14900, 17900, 19900)),
            "vip": rng.choice((29900, 34900, 39900, 49900)),
        }
        for tier, share in _TIER_SHARE.items():
            days = max((end - start).total_seconds() / 86400, 1.0)
            tiers.append(
                _Tier(
                    id=len(tiers) + 1,
                    event_id=event_id,
                    tier=tier,
                    price_cents=prices[tier],
                    currency=currency,
                    window_start=start,
                    window_end=end,
                    cancelled=event_id == cancelled_id,
                    weight=popularity * share * days,
                )
            )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO events (id, slug, name, city, starts_at, status) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    e[0],
                    e[1],
                    f"Barber Business Workshop {e[2]}",
                    e[2],
                    e[4],
                    "cancelled" if e[0] == cancelled_id else e[5],
                )
                for e in events
            ],
        )
        # Capacity is set from the sales at the end.
        cur.executemany(
            "INSERT INTO ticket_tiers (id, event_id, tier, price_cents, capacity) VALUES (%s, %s, %s, %s, 0)",
            [(t.id, t.event_id, t.tier, t.price_cents) for t in tiers],
        )
    return tiers


def _thresholds(weights: Sequence[float]) -> list[float]:
    """Lower bounds of each bucket on [0, 1), for width_bucket()."""
    total = sum(weights)
    return [0.0, *[c / total for c in accumulate(weights)][:-1]]


def _batch_parameters(tiers: Sequence[_Tier], seed: int, now: datetime) -> dict[str, Any]:
    hour_of_week = [WEEKDAY[d] * HOURLY[h] for d in range(7) for h in range(24)]
    return {
        "seed": seed,
        "now": now,
        "tz": SELLER_TIMEZONE,
        "tier_cum": _thresholds([t.weight for t in tiers]),
        "hour_cum": _thresholds(hour_of_week),
        "codes": [c for c, _ in FAILURE_CODES],
        "code_cum": _thresholds([w for _, w in FAILURE_CODES]),
        "methods": [m for m, _ in PAYMENT_METHODS],
        "method_cum": _thresholds([w for _, w in PAYMENT_METHODS]),
        "webhook_errors": list(WEBHOOK_ERRORS),
        "failed": FAILED_SHARE,
        "refunded": FAILED_SHARE + REFUNDED_SHARE,
        "partial": PARTIAL_REFUND_SHARE,
        "abandoned": ABANDONED_SHARE,
    }


# A uniform number in [0, 1) from (i, salt): 53 bits of PostgreSQL's 64-bit integer hash.
_RANDOM_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.rnd(i bigint, salt bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(i, salt) & 9007199254740991)::float8 / 9007199254740992.0 $$
"""

# One statement per batch, kept as SQL beside the schema.
_BATCH_SQL = resources.files("exporter.db").joinpath("seed_batch.sql").read_text(encoding="utf-8")


def _open_sessions(
    conn: psycopg.Connection[Any], tiers: Sequence[_Tier], seed: int, now: datetime, count: int
) -> None:
    """Buyers in checkout right now, holding tickets of upcoming events for 30 minutes."""
    upcoming = [t.id for t in tiers if t.window_end == now and not t.cancelled]
    conn.execute(
        """
        INSERT INTO checkout_sessions (id, tier_id, quantity, status, created_at, expires_at)
        SELECT 'cs_live_c1' || substr(md5(%(seed)s || '/open/' || g), 1, 30),
               (%(tiers)s::bigint[])[1 + floor(pg_temp.rnd(g, %(seed)s * 64 + 40) * %(n)s)::int],
               1 + floor(pg_temp.rnd(g, %(seed)s * 64 + 41) * 2)::int, 'open', c.at, c.at + interval '30 minutes'
        FROM generate_series(1, %(count)s) AS g
        CROSS JOIN LATERAL (SELECT %(now)s - interval '20 minutes' * pg_temp.rnd(g, %(seed)s * 64 + 42) AS at) c
        """,
        {"seed": seed, "tiers": upcoming, "n": len(upcoming), "count": count, "now": now},
    )


def _set_capacities(
    conn: psycopg.Connection[Any], seed: int, now: datetime, *, incidents: bool = True
) -> None:
    """Capacities from the sales: one tier oversold by 2, one event sold out, a few nearly;
    without ``incidents``, the tiers with the fewest left keep 150 to 250 and none is out."""
    rows = conn.execute(
        """
        SELECT t.id, t.event_id, t.tier, e.status,
               COALESCE(sum(o.quantity) FILTER (WHERE o.paid_at IS NOT NULL), 0),
               COALESCE(sum(o.quantity) FILTER (WHERE o.paid_at IS NOT NULL AND o.payment_status = 'refunded'), 0),
               (SELECT COALESCE(sum(s.quantity), 0) FROM checkout_sessions s
                 WHERE s.tier_id = t.id AND s.status = 'open' AND s.expires_at > %s)
        FROM ticket_tiers t JOIN events e ON e.id = t.event_id
        LEFT JOIN orders o ON o.tier_id = t.id
        GROUP BY t.id, t.event_id, t.tier, e.status
        ORDER BY t.id
        """,
        [now],
    ).fetchall()
    rng = random.Random(seed * 31 + 7)
    capacity: dict[int, int] = {}
    net = {r[0]: int(r[4]) - int(r[5]) + int(r[6]) for r in rows}
    reserved = {r[0]: int(r[6]) for r in rows}
    on_sale = [r for r in rows if r[3] == "on_sale"]
    rng.shuffle(on_sale)
    # The oversold tier holds no reservation, so it stays oversold when sessions expire.
    oversold = next(
        (r for r in on_sale if r[2] == "ga" and net[r[0]] >= 2 and reserved[r[0]] == 0), None
    )
    if not incidents:
        oversold = None
    if oversold is not None:
        capacity[oversold[0]] = net[oversold[0]] - 2
    sold_out_event = next((r[1] for r in on_sale if oversold is None or r[1] != oversold[1]), None)
    if not incidents:
        sold_out_event = None
    for r in on_sale:
        if r[1] == sold_out_event:
            capacity[r[0]] = net[r[0]]
    nearly = {"ga": 2, "vip": 2}
    for r in on_sale:
        tier_id, tier = r[0], r[2]
        if tier_id in capacity or r[1] == sold_out_event:
            continue
        if nearly.get(tier, 0) > 0:
            nearly[tier] -= 1
            capacity[tier_id] = net[tier_id] + (
                rng.randint(150, 250)
                if not incidents
                else rng.randint(3, 10)
                if tier == "ga"
                else rng.randint(1, 5)
            )
        else:
            room = 10 if incidents else 1000
            capacity[tier_id] = max(
                net[tier_id] + room, math.ceil(net[tier_id] / rng.uniform(0.3, 0.8))
            )
    for r in rows:
        if r[0] not in capacity:  # past and cancelled events: sold about 90% of the room
            capacity[r[0]] = math.ceil(int(r[4]) * 1.1) + 2
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE ticket_tiers SET capacity = %s WHERE id = %s",
            [(c, t) for t, c in capacity.items()],
        )
        if sold_out_event is not None:
            cur.execute("UPDATE events SET status = 'sold_out' WHERE id = %s", [sold_out_event])


def _summary(conn: psycopg.Connection[Any]) -> SeedSummary:
    counts = {}
    for table in TABLES:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        counts[table] = int(row[0]) if row else 0
    row = conn.execute("SELECT count(DISTINCT city) FROM events").fetchone()
    return SeedSummary(
        events=counts["events"],
        tiers=counts["ticket_tiers"],
        orders=counts["orders"],
        checkout_sessions=counts["checkout_sessions"],
        webhook_logs=counts["webhook_logs"],
        cities=int(row[0]) if row else 0,
    )
