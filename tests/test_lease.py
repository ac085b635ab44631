"""Replicas that share work (issue 17 item 3): one replica polls each API source at a time.

Pure: the lease key and what a standby cycle does to a snapshot. Components: two advisory
leases on a real PostgreSQL database. Integration: two running exporters, each with its own
Stripe key of one account, against the fake Stripe and one lease database: only the leader
calls Stripe and publishes its series; when the leader stops (its session closes) or its
session is cut by the server (what a killed process amounts to), the other replica polls
at its next cycle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from exporter.app import Exporter
from exporter.collect.scheduler import Snapshot, next_snapshot
from exporter.config import Config, Database, load_config
from exporter.sources.base import Collection, Failure
from exporter.sources.lease import AdvisoryLease, lease_key
from tests.support.exporter import free_port, running_exporter, scrape, value, wait_for
from tests.support.fake_stripe import API_KEY, FakeStripe
from tests.support.fakehttp import serving

OTHER_KEY = "rk_test_51OtherReplicaKeyOfTheSameAccount0000000000"


# --- pure -------------------------------------------------------------------------------


def test_lease_key_is_stable_64_bit_and_tells_sources_and_accounts_apart() -> None:
    key = lease_key("stripe", "https://api.stripe.com", "")
    assert key == lease_key("stripe", "https://api.stripe.com", "")
    assert -(2**63) <= key < 2**63
    others = {
        lease_key("twilio", "https://api.stripe.com", ""),
        lease_key("stripe", "https://api.stripe.com", "shop-2"),
        lease_key("twilio", "https://api.twilio.com", "AC1", ""),
        lease_key("twilio", "https://api.twilio.com", "AC2", ""),
    }
    assert key not in others and len(others) == 4


@pytest.mark.parametrize(
    ("result", "up", "last_success", "leader"),
    [
        (Collection(leader=False), False, 100.0, False),  # standby: collected nothing
        (Collection(leader=True), True, 200.0, True),
        (Collection(failures=(Failure("http", "boom"),), leader=True), False, 100.0, True),
        (Collection(), True, 200.0, None),  # a source without a lease
    ],
)
def test_a_standby_cycle_is_not_a_success(
    result: Collection, up: bool, last_success: float, leader: bool | None
) -> None:
    before = Snapshot(source="stripe", interval=60, timeout=20, up=True, last_success=100.0)
    after = next_snapshot(before, result, now=200.0, mono=1.0, duration=0.1)
    assert (after.up, after.last_success, after.leader) == (up, last_success, leader)
    assert sum(after.errors.values()) == len(result.failures)


# --- components on a real database --------------------------------------------------------


def _db(dsn: str) -> Database:
    return Database(name="default", dsn=dsn, pool_max_size=1, connect_timeout=2.0)


def _cut_lease_holders(dsn: str) -> int:
    """Terminate the sessions holding an advisory lock in this test's database (what the
    server does to the connection of a killed process); how many there were."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
            "AND a.application_name = 'boxoffice-lease'"
        ).fetchall()
    assert all(ok for (ok,) in cut)
    return len(cut)


def test_one_lease_holder_at_a_time_and_release_on_close(pg_dsn: str) -> None:
    key = lease_key("stripe", "http://127.0.0.1", "")
    first, second = AdvisoryLease(_db(pg_dsn), key), AdvisoryLease(_db(pg_dsn), key)
    other = AdvisoryLease(_db(pg_dsn), lease_key("twilio", "http://127.0.0.1", "AC1", ""))
    try:
        assert first.hold() is True
        assert second.hold() is False
        assert first.hold() is True  # still held on later cycles
        assert other.hold() is True  # another source has its own lease
        first.close()
        # The server frees the lock when the backend of the closed session exits, an
        # instant later: the other lease gets it at its next try after that.
        wait_for(second.hold, timeout=10, interval=0.05)
        assert first.hold() is False
    finally:
        for lease in (first, second, other):
            lease.close()


def test_a_session_cut_by_the_server_frees_the_lease(pg_dsn: str) -> None:
    key = lease_key("stripe", "http://127.0.0.1", "")
    first, second = AdvisoryLease(_db(pg_dsn), key), AdvisoryLease(_db(pg_dsn), key)
    try:
        assert first.hold() is True
        assert second.hold() is False
        assert _cut_lease_holders(pg_dsn) == 1
        # The cut session's lock is freed: the other lease takes it, and the cut one,
        # reconnected, stands by.
        wait_for(second.hold, timeout=10, interval=0.05)
        assert first.hold() is False
    finally:
        first.close()
        second.close()


def test_an_unreachable_lease_database_answers_unknown() -> None:
    lease = AdvisoryLease(_db("host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1"), 1)
    assert lease.hold() is None
    lease.close()


# --- two running exporters -----------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with serving(FakeStripe()) as server:
        server.other_keys = {OTHER_KEY}
        yield server  # type: ignore[misc]


def _replica(fake: FakeStripe, pg_dsn: str, tmp_path: Path, key: str) -> Config:
    key_file = tmp_path / f"stripe_key_{key[-4:]}"
    key_file.write_text(key + "\n")
    env = {
        "BOXOFFICE_DSN": pg_dsn,
        "BOXOFFICE_DATABASES_DEFAULT_CONNECT_TIMEOUT": "2s",
        "BOXOFFICE_SOURCES_POSTGRES_ENABLED": "false",
        "BOXOFFICE_SOURCES_STRIPE_ENABLED": "true",
        "BOXOFFICE_SOURCES_STRIPE_API_KEY_FILE": str(key_file),
        "BOXOFFICE_SOURCES_STRIPE_API_BASE": fake.url,
        "BOXOFFICE_SOURCES_STRIPE_INTERVAL": "500ms",
        "BOXOFFICE_SOURCES_STRIPE_TIMEOUT": "1s",
        "BOXOFFICE_HA_LEASE_DATABASE": "default",
    }
    return load_config(None, env=env)


def _cycles(exporter: Exporter) -> int:
    return exporter.runners[0].snapshot().cycles


@pytest.mark.parametrize("how", ["stopped", "session_cut"])
def test_two_replicas_one_polls_and_the_other_takes_over_at_its_next_cycle(
    fake: FakeStripe, pg_dsn: str, tmp_path: Path, how: str
) -> None:
    now = int(time.time())
    fake.add_charge(now - 30, amount=2500)
    fake.add_charge(now - 20, amount=4000)
    with running_exporter(_replica(fake, pg_dsn, tmp_path, API_KEY)) as (a, a_url):
        wait_for(lambda: value(scrape(a_url), "boxoffice_source_leader", source="stripe") == 1)
        with running_exporter(_replica(fake, pg_dsn, tmp_path, OTHER_KEY)) as (b, b_url):
            start = _cycles(b)
            wait_for(lambda: _cycles(b) >= start + 5)
            a_calls = fake.requests_with_key(API_KEY)
            assert a_calls > 0
            assert fake.requests_with_key(OTHER_KEY) == 0  # the standby never called Stripe

            standby, leader = scrape(b_url), scrape(a_url)
            assert value(standby, "boxoffice_source_leader", source="stripe") == 0
            assert value(standby, "boxoffice_source_up", source="stripe") == 0
            assert not any(name.startswith("boxoffice_stripe_") for name, _ in standby)
            landing = requests.get(f"{b_url}/", timeout=5).text
            assert '<td class="standby">standby</td>' in landing
            assert value(leader, "boxoffice_source_up", source="stripe") == 1
            charges = value(leader, "boxoffice_stripe_charges_total")
            assert charges == 2

            if how == "stopped":
                a.stop()  # closes its lease session
            else:
                # A killed leader: it stops polling without giving anything back, and the
                # server ends its session.
                a.runners[0].stop()
                assert _cut_lease_holders(pg_dsn) == 1
            released = _cycles(b)
            # Within one interval: the first cycle B starts once the server has freed the
            # lock polls (the cycle in flight at the release may still stand by).
            took_over = wait_for(lambda: b.runners[0].snapshot().leader and b.runners[0].snapshot())
            assert took_over.up
            assert took_over.cycles <= released + 2
            assert fake.requests_with_key(OTHER_KEY) > 0
            after = scrape(b_url)
            assert value(after, "boxoffice_source_leader", source="stripe") == 1
            assert value(after, "boxoffice_stripe_charges_total") == 2


# --- two exporter processes, the leader killed --------------------------------------------


def _serve(
    fake: FakeStripe, pg_dsn: str, tmp_path: Path, key: str
) -> tuple[subprocess.Popen[str], str]:
    key_file = tmp_path / f"stripe_key_{key[-4:]}"
    key_file.write_text(key + "\n")
    port = free_port()
    env = {
        **os.environ,
        "BOXOFFICE_DSN": pg_dsn,
        "BOXOFFICE_DATABASES_DEFAULT_CONNECT_TIMEOUT": "2s",
        "BOXOFFICE_SOURCES_POSTGRES_ENABLED": "false",
        "BOXOFFICE_SOURCES_STRIPE_ENABLED": "true",
        "BOXOFFICE_SOURCES_STRIPE_API_KEY_FILE": str(key_file),
        "BOXOFFICE_SOURCES_STRIPE_API_BASE": fake.url,
        "BOXOFFICE_SOURCES_STRIPE_INTERVAL": "500ms",
        "BOXOFFICE_SOURCES_STRIPE_TIMEOUT": "1s",
        "BOXOFFICE_HA_LEASE_DATABASE": "default",
        "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
    }
    with (tmp_path / f"serve_{key[-4:]}.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve"], env=env, stdout=log, stderr=log, text=True
        )
    return process, f"http://127.0.0.1:{port}"


def _leader(url: str) -> float | None:
    try:
        return value(scrape(url), "boxoffice_source_leader", source="stripe")
    except requests.RequestException:
        return None


def test_the_leader_process_killed_the_other_process_polls(
    fake: FakeStripe, pg_dsn: str, tmp_path: Path
) -> None:
    fake.add_charge(int(time.time()) - 30, amount=2500)
    first, first_url = _serve(fake, pg_dsn, tmp_path, API_KEY)
    second = None
    try:
        wait_for(lambda: _leader(first_url) == 1, timeout=30)
        second, second_url = _serve(fake, pg_dsn, tmp_path, OTHER_KEY)
        wait_for(lambda: _leader(second_url) == 0, timeout=30)
        assert fake.requests_with_key(OTHER_KEY) == 0
        first.send_signal(signal.SIGKILL)  # no shutdown: the server closes its session
        first.wait(timeout=10)
        wait_for(lambda: _leader(second_url) == 1, timeout=30)
        assert fake.requests_with_key(OTHER_KEY) > 0
        assert value(scrape(second_url), "boxoffice_stripe_charges_total") == 1
        assert (
            "lease taken; this replica polls"
            in (tmp_path / f"serve_{OTHER_KEY[-4:]}.log").read_text()
        )
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
