"""Benchmark `boxoffice db seed` against a client-side peer in the same run.

The peer is what a hand-rolled demo seeder usually does: generate rows in Python and stream
them with COPY (the fastest client-side path), for the same three tables (orders, checkout
sessions, webhook logs) at the same ratios, into the same indexed schema.

    .venv/bin/python scripts/bench_seed.py --orders 1000000 [--admin-dsn postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from exporter.db.schema import create_schema
from exporter.db.seed import seed_database


def _fresh(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin, dbname=name)


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _peer_copy(dsn: str, orders: int) -> float:
    """The same three tables at the same ratios, generated in Python and streamed with COPY."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_schema(conn)
        conn.execute(
            "INSERT INTO events (id, slug, name, city, starts_at) VALUES (1, 'e', 'e', 'X', now())"
        )
        conn.execute(
            "INSERT INTO ticket_tiers (id, event_id, tier, price_cents, capacity) VALUES (1, 1, 'ga', 9900, 100)"
        )
        started = time.perf_counter()
        created = [now - timedelta(seconds=rng.randint(0, 365 * 86400)) for _ in range(orders)]
        failed = [rng.random() < 0.04 for _ in range(orders)]
        with conn.cursor() as cur:
            with cur.copy(
                "COPY checkout_sessions (id, tier_id, quantity, status, created_at, completed_at, expires_at) FROM STDIN"
            ) as copy:
                for i in range(orders):
                    done = None if failed[i] else created[i] + timedelta(seconds=30)
                    copy.write_row(
                        (
                            f"cs_{i}",
                            1,
                            1,
                            "expired" if failed[i] else "complete",
                            created[i],
                            done,
                            created[i] + timedelta(minutes=30),
                        )
                    )
                    if rng.random() < 0.12:  # abandoned checkout
                        copy.write_row(
                            (
                                f"cs_a{i}",
                                1,
                                1,
                                "expired",
                                created[i],
                                None,
                                created[i] + timedelta(minutes=30),
                            )
                        )
            with cur.copy(
                "COPY orders (checkout_session_id, tier_id, quantity, amount_total_cents, currency, payment_status, "
                "failure_code, is_member, customer_email, created_at, paid_at) FROM STDIN"
            ) as copy:
                for i in range(orders):
                    quantity = rng.randint(1, 4)
                    copy.write_row(
                        (
                            f"cs_{i}",
                            1,
                            quantity,
                            quantity * 9900,
                            "usd",
                            "failed" if failed[i] else "completed",
                            "card_declined" if failed[i] else None,
                            rng.random() < 0.25,
                            f"buyer{i}@example.com",
                            created[i],
                            None if failed[i] else created[i] + timedelta(seconds=30),
                        )
                    )
            with cur.copy(
                "COPY webhook_logs (provider, event_type, status, created_at, updated_at) FROM STDIN"
            ) as copy:
                for i in range(orders):
                    for event_type in ("checkout.session.completed", "payment_intent.succeeded"):
                        at = created[i] + timedelta(seconds=32)
                        copy.write_row(("stripe", event_type, "processed", at, at))
                    if rng.random() < 0.28:
                        copy.write_row(("twilio", "message.status", "processed", at, at))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get(
            "BOXOFFICE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    with psycopg.connect(args.admin_dsn) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {version[0] if version else '?'}"
    )
    print(f"orders: {args.orders:,}")
    try:
        dsn = _fresh(args.admin_dsn, "boxoffice_bench_seed")
        started = time.perf_counter()
        summary = seed_database(dsn, orders=args.orders, seed=1)
        ours = time.perf_counter() - started
        rows = summary.orders + summary.checkout_sessions + summary.webhook_logs
        print(
            f"boxoffice db seed: {ours:8.1f} s  {summary.orders / ours:10,.0f} orders/s  ({rows:,} rows in 3 tables, indexes built)"
        )
        dsn = _fresh(args.admin_dsn, "boxoffice_bench_peer")
        peer = _peer_copy(dsn, args.orders)
        with psycopg.connect(dsn) as conn:
            counts = [
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()
                for t in ("orders", "checkout_sessions", "webhook_logs")
            ]
        peer_rows = sum(int(c[0]) for c in counts if c)
        print(
            f"peer (Python rows + COPY): {peer:8.1f} s  {args.orders / peer:10,.0f} orders/s  ({peer_rows:,} rows in 3 tables, indexes maintained)"
        )
        print(f"boxoffice db seed is {peer / ours:.1f}x as fast as the peer")
    finally:
        _drop(args.admin_dsn, "boxoffice_bench_seed")
        _drop(args.admin_dsn, "boxoffice_bench_peer")


if __name__ == "__main__":
    main()
