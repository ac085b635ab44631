"""Faults on the live pipeline: PostgreSQL stops in the middle of an incident, Twilio fails
while an alert is being texted. The pipeline of tests/support/pipeline.py, with the demo
profile of the rules at 240x.

PostgreSQL down: the exporter's PostgreSQL series go away with it. ExporterSourceDown
reaches on-call; the payment alert that was firing holds (the generated rules keep a
business alert firing while its source is down, rather than resolve it on no data) and
Alertmanager inhibits it, so nobody hears a false all-clear. When the server is back,
everything recovers without a restart, the alert is judged on fresh data, and its
all-clear goes out.

Twilio down: the bridge answers Alertmanager 503 while Twilio does, Alertmanager retries,
and every recipient gets the text exactly once after Twilio recovers.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exporter.db.schema import create_schema
from exporter.demo.scenarios import SCENARIOS, Phase, Timeline
from exporter.demo.simulator import Settings
from tests.support.exporter import scrape, value, wait_for
from tests.support.fake_twilio import error_reply
from tests.support.fakehttp import serving
from tests.support.pipeline import Pipeline, TimedTwilio, running_pipeline
from tests.test_e2e_incidents import WARMUP, ample

SPEED = 240.0
PAYMENTS = "PaymentSuccessRateLow"


class StoppablePostgres:
    """A PostgreSQL cluster of its own (pgserver) that a test can stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: Any = None

    def start(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
            import pgserver

            get_server = pgserver.get_server  # type: ignore[attr-defined]
            self._server = get_server(self.directory, cleanup_mode="stop")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[StoppablePostgres, str]]:
    server = StoppablePostgres(tmp_path / "pgdata")
    dsn = server.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            create_schema(conn)
            ample(conn)
        yield server, dsn
    finally:
        server.stop()


def _outage(**overrides: Any) -> dict[str, Any]:
    """A payment outage that starts once the pipeline watches and lasts past the test."""
    options: dict[str, Any] = {
        "speed": SPEED,
        "seconds": 120.0,
        "scenario": SCENARIOS["payment-outage"],
        "timeline": Timeline(WARMUP + 16, 100),
        "settings": Settings(peak_per_hour=300, abandon_share=0.02),
    }
    options.update(overrides)
    return options


def _texted(pipeline: Pipeline, name: str, status: str = "firing") -> set[str]:
    return {n.target for n in pipeline.texts() if n.alertname == name and n.status == status}


def _first(pipeline: Pipeline, name: str, status: str, channel: str = "slack") -> float | None:
    times = [
        n.at
        for n in pipeline.notifications()
        if n.alertname == name and n.status == status and n.channel == channel
    ]
    return min(times) if times else None


def _inhibited(pipeline: Pipeline, name: str) -> bool:
    return any(
        a["labels"]["alertname"] == name and a["status"]["inhibitedBy"]
        for a in pipeline.alertmanager_alerts()
    )


def test_postgres_stopped_mid_incident_pages_source_down_and_holds_the_false_all_clear(
    own_postgres: tuple[StoppablePostgres, str],
) -> None:
    from tests.support.shop import QUIET, playing

    server, dsn = own_postgres
    with serving(TimedTwilio()) as fake, playing(dsn, baseline=QUIET, **_outage()) as played:
        assert isinstance(fake, TimedTwilio)
        with running_pipeline(dsn, speed=SPEED, twilio=fake) as pipeline:
            played.wait(Phase.INCIDENT, timeout=WARMUP + 30)
            wait_for(
                lambda: {"oncall"} <= _texted(pipeline, PAYMENTS),
                timeout=30,
                interval=0.25,
            )
            played.stop.set()  # the shop's app goes down with its database
            played.join()
            server.stop()
            stopped = time.time()

            # ExporterSourceDown reaches on-call; the payment alert is inhibited, and holds
            # (the rules keep it firing while its source is down) past its 10 s window.
            wait_for(lambda: _inhibited(pipeline, PAYMENTS), timeout=20, interval=0.2)
            inhibited = time.time()
            wait_for(
                lambda: {"oncall", "engineering-lead"} <= _texted(pipeline, "ExporterSourceDown"),
                timeout=20,
                interval=0.25,
            )
            source_down = pipeline.firing()
            time.sleep(max(0.0, stopped + 15 - time.time()))
            held = [a for a in pipeline.firing() if a["labels"]["alertname"] == PAYMENTS]
            still_inhibited = _inhibited(pipeline, PAYMENTS)
            blind = pipeline.notifications()

            server.start()
            restarted = time.time()
            wait_for(
                lambda: (
                    value(scrape(pipeline.exporter_url), "boxoffice_source_up", source="postgres")
                    == 1
                ),
                timeout=30,
                interval=0.5,
            )
            wait_for(
                lambda: _first(pipeline, "ExporterSourceDown", "resolved"),
                timeout=30,
                interval=0.25,
            )
            wait_for(lambda: _first(pipeline, PAYMENTS, "resolved"), timeout=30, interval=0.25)
            alive = [c.name for c in pipeline.stack.supervisor.children if c.process.poll() is None]
            after = pipeline.notifications()

    labels = [a["labels"] for a in source_down if a["labels"]["alertname"] == "ExporterSourceDown"]
    assert labels and all(lb["source"] == "postgres" for lb in labels)
    # While blind: the payment alert holds, muted; nobody hears a false all-clear.
    assert held and still_inhibited
    assert not [n for n in blind if n.alertname == PAYMENTS and n.status == "resolved"]
    assert not [n for n in blind if n.alertname == PAYMENTS and n.at > inhibited + 0.5]
    # Back: judged on fresh data (no payments since the shop stopped), the payment alert
    # resolves with ExporterSourceDown, and its all-clear does go out.
    assert restarted < _first_of(after, "ExporterSourceDown", "resolved")
    assert restarted < _first_of(after, PAYMENTS, "resolved")
    assert sorted(alive) == ["alertmanager", "prometheus"]


def _first_of(notifications: list[Any], name: str, status: str) -> float:
    return min(n.at for n in notifications if n.alertname == name and n.status == status)


def test_twilio_down_while_paging_texts_everyone_once_when_it_recovers(
    pg_schema: str,
) -> None:
    from tests.support.shop import QUIET, playing

    with psycopg.connect(pg_schema, autocommit=True) as conn:
        ample(conn)
    with serving(TimedTwilio()) as fake, playing(pg_schema, baseline=QUIET, **_outage()) as played:
        assert isinstance(fake, TimedTwilio)
        with running_pipeline(pg_schema, speed=SPEED, twilio=fake) as pipeline:
            assert pipeline.stack.notifier is not None
            numbers = [n for g in pipeline.stack.notifier.groups.values() for n in g]
            for number in numbers:
                fake.failing[number] = error_reply(503, 20500, "Service Unavailable")
            played.wait(Phase.INCIDENT, timeout=WARMUP + 30)
            # Slack hears it; the texts fail and are retried.
            wait_for(lambda: _first(pipeline, PAYMENTS, "firing"), timeout=30, interval=0.25)

            def refused() -> int:
                return sum(1 for r in list(fake.requests) if r.method == "POST")

            wait_for(lambda: refused() >= 6, timeout=30, interval=0.25)
            assert not fake.arrivals
            fake.failing.clear()
            recovered = time.time()
            wait_for(
                lambda: {"oncall"} <= _texted(pipeline, PAYMENTS),
                timeout=30,
                interval=0.25,
            )
            time.sleep(3)  # more group intervals and retries: nothing is sent twice
            texts = [(to, body) for _at, to, body in fake.arrivals]

    tier1 = [(to, body) for to, body in texts if body.startswith("CRITICAL tier 1: ")]
    assert tier1, texts
    assert len(tier1) == len(set(tier1)), f"a text was sent twice: {tier1}"
    assert min(at for at, _to, _body in fake.arrivals) >= recovered


def test_the_demo_simulator_rides_out_a_database_outage(
    own_postgres: tuple[StoppablePostgres, str],
) -> None:
    from exporter.demo.live import LiveOptions, LiveSimulator
    from tests.support.shop import contract_violations

    server, dsn = own_postgres
    lines: list[str] = []
    options = LiveOptions(speed=240, run_for=90, seed=1, peak_per_hour=300)
    live = LiveSimulator(dsn, options, lines.append)

    def orders() -> int:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert row is not None
        return int(row[0])

    live.start()
    try:
        wait_for(lambda: orders() > 20, timeout=30, interval=0.5)
        server.stop()
        wait_for(lambda: any(line.startswith("simulator paused") for line in lines), timeout=20)
        server.start()
        wait_for(lambda: any("database back" in line for line in lines), timeout=20)
        resumed = orders()
        wait_for(lambda: orders() > resumed + 20, timeout=30, interval=0.5)
    finally:
        live.stop()
    assert any("resumed: selling" in line for line in lines), lines
    assert not any(line.startswith("simulator stopped:") for line in lines), lines
    with psycopg.connect(dsn) as conn:
        assert contract_violations(conn) == {}
