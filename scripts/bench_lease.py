"""API calls with one and with two exporter replicas, and the takeover after a kill (issue 17).

    .venv/bin/python scripts/bench_lease.py [--seconds 60] [--interval 5]

Runs `boxoffice serve` as real processes against the fake Stripe and Twilio of tests/support
(on 127.0.0.1) and a throwaway database on the local PostgreSQL (BOXOFFICE_BENCH_DSN, default
the test server) as lease database, and counts the requests each fake received per minute:
one replica with the lease, two replicas with the lease, two replicas without it. Then, with
two leased replicas, it kills the leader (SIGKILL) and measures the time until the other
replica publishes boxoffice_source_leader 1 for both sources.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.exporter import free_port
from tests.support.fake_stripe import API_KEY, FakeStripe
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import serving

SERVER = os.environ.get("BOXOFFICE_BENCH_DSN", "host=127.0.0.1 port=5432 user=postgres")


@contextmanager
def lease_database() -> Iterator[str]:
    name = f"boxoffice_bench_lease_{uuid.uuid4().hex[:8]}"
    admin = make_conninfo(**{**conninfo_to_dict(SERVER), "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(**{**conninfo_to_dict(SERVER), "dbname": name})
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Replica:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "exporter", "serve"],
                env={**os.environ, **env, "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{self.port}"},
                stdout=out,
                stderr=out,
            )

    def leaders(self) -> dict[str, float]:
        try:
            text = requests.get(f"{self.url}/metrics", timeout=2).text
        except requests.RequestException:
            return {}
        return {
            s.labels["source"]: s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "boxoffice_source_leader"
        }

    def up(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _wait(check: object, timeout: float) -> float:
    """Seconds until ``check()`` is truthy (polled every 50 ms), bounded."""
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise SystemExit(f"condition not met within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="counting window per run")
    parser.add_argument("--interval", default="5s", help="Stripe and Twilio interval")
    args = parser.parse_args()
    with (
        TemporaryDirectory() as tmp,
        lease_database() as dsn,
        serving(FakeStripe()) as stripe,
        serving(FakeTwilio()) as twilio,
    ):
        Path(tmp, "key").write_text(API_KEY + "\n")
        Path(tmp, "token").write_text(AUTH_TOKEN + "\n")
        base = {
            "BOXOFFICE_DSN": dsn,
            "BOXOFFICE_SOURCES_POSTGRES_ENABLED": "false",
            "BOXOFFICE_SOURCES_STRIPE_ENABLED": "true",
            "BOXOFFICE_SOURCES_STRIPE_API_KEY_FILE": str(Path(tmp, "key")),
            "BOXOFFICE_SOURCES_STRIPE_API_BASE": stripe.url,
            "BOXOFFICE_SOURCES_STRIPE_INTERVAL": args.interval,
            "BOXOFFICE_SOURCES_TWILIO_ENABLED": "true",
            "BOXOFFICE_SOURCES_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "BOXOFFICE_SOURCES_TWILIO_AUTH_TOKEN_FILE": str(Path(tmp, "token")),
            "BOXOFFICE_SOURCES_TWILIO_API_BASE": twilio.url,
            "BOXOFFICE_SOURCES_TWILIO_INTERVAL": args.interval,
        }
        print("| replicas | lease | Stripe requests/min | Twilio requests/min |")
        print("|---|---|---|---|")
        for count, leased in ((1, True), (2, True), (2, False)):
            env = {**base, **({"BOXOFFICE_HA_LEASE_DATABASE": "default"} if leased else {})}
            replicas = [Replica(env, Path(tmp, f"r{i}.log")) for i in range(count)]
            try:
                for r in replicas:
                    _wait(r.up, 60)
                time.sleep(2)  # past every replica's first cycle
                s0, t0 = len(stripe.requests), len(twilio.requests)
                time.sleep(args.seconds)
                per_min = 60 / args.seconds
                s = (len(stripe.requests) - s0) * per_min
                t = (len(twilio.requests) - t0) * per_min
                print(f"| {count} | {'yes' if leased else 'no'} | {s:.0f} | {t:.0f} |")
            finally:
                for r in replicas:
                    r.stop()
        # Takeover: kill the leader of both sources, time until the other leads both.
        env = {**base, "BOXOFFICE_HA_LEASE_DATABASE": "default"}
        first = Replica(env, Path(tmp, "k1.log"))
        _wait(lambda: first.leaders() == {"stripe": 1.0, "twilio": 1.0}, 60)
        second = Replica(env, Path(tmp, "k2.log"))
        try:
            _wait(lambda: second.leaders() == {"stripe": 0.0, "twilio": 0.0}, 60)
            first.process.send_signal(signal.SIGKILL)
            took = _wait(lambda: second.leaders() == {"stripe": 1.0, "twilio": 1.0}, 120)
            print(
                f"\ntakeover after SIGKILL of the leader (interval {args.interval}): {took:.2f} s"
            )
        finally:
            first.stop()
            second.stop()


if __name__ == "__main__":
    main()
