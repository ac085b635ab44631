"""The bridge's heartbeat watch (issue 19): pure transitions, the watch on a store shared by
two bridges (SQLite and PostgreSQL) texting through the fake Twilio, POST /heartbeat, and
the Twilio balance gauge. The whole path with real Prometheus and Alertmanager is in
tests/test_alerting_path.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter import catalog
from exporter.config.errors import ConfigError
from exporter.smsbridge.balance import BalanceWatch, twilio_balance
from exporter.smsbridge.beats import (
    Beat,
    Beats,
    MemoryBeats,
    StoredBeats,
    Telling,
    after_beat,
    after_start,
    after_telling,
    decide,
)
from exporter.smsbridge.heartbeat import HeartbeatMetrics, HeartbeatWatch, pipeline_text
from exporter.smsbridge.metrics import BridgeMetrics
from exporter.smsbridge.sender import TwilioSender
from exporter.smsbridge.store import IdempotencyStore, PostgresStore, SqliteStore
from tests.support.alerts import alert, body, webhook
from tests.support.bridge import BEARER, FROM, config, running_bridge
from tests.support.exporter import scrape, value, wait_for
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, error_reply
from tests.support.fakehttp import serving

ONCALL = ("+14155550101", "+14155550102")
AUTH = {"Authorization": f"Bearer {BEARER}"}
UP = Beat(state="up", last_beat=100.0, changed_at=0.0, told=True)
DOWN = Beat(state="down", last_beat=100.0, changed_at=200.0, told=True)


@pytest.mark.parametrize(
    ("before", "now", "after", "tells"),
    [
        # Beats within the timeout: nothing to say.
        (UP, 150.0, UP, None),
        (UP, 160.0, UP, None),  # exactly timeout after the last beat: not yet
        # Silent longer than the timeout: down, claimed for telling.
        (
            UP,
            160.5,
            Beat(state="down", last_beat=100.0, changed_at=160.5, told=False, claimed_at=160.5),
            "down",
        ),
        # Down and told: stays down, says nothing more, however long.
        (DOWN, 10_000.0, DOWN, None),
        # A beat after going down: back, to be told.
        (
            Beat(state="down", last_beat=250.0, changed_at=200.0, told=True),
            251.0,
            Beat(state="up", last_beat=250.0, changed_at=251.0, told=False, claimed_at=251.0),
            "up",
        ),
        # Back before anyone heard it was down: nobody is told it is back either.
        (
            Beat(state="down", last_beat=250.0, changed_at=200.0, told=False),
            251.0,
            Beat(state="up", last_beat=250.0, changed_at=251.0, told=True),
            None,
        ),
        # Back while the down text is being sent: the back text follows it.
        (
            Beat(state="down", last_beat=250.0, changed_at=200.0, told=False, claimed_at=249.0),
            251.0,
            Beat(state="up", last_beat=250.0, changed_at=251.0, told=False, claimed_at=251.0),
            "up",
        ),
        # Another bridge is texting (claim within its lease): leave it.
        (
            Beat(state="down", last_beat=100.0, changed_at=200.0, told=False, claimed_at=205.0),
            210.0,
            Beat(state="down", last_beat=100.0, changed_at=200.0, told=False, claimed_at=205.0),
            None,
        ),
        # ... a claim past its lease is a dead bridge's: taken over.
        (
            Beat(state="down", last_beat=100.0, changed_at=200.0, told=False, claimed_at=205.0),
            216.0,
            Beat(state="down", last_beat=100.0, changed_at=200.0, told=False, claimed_at=216.0),
            "down",
        ),
    ],
)
def test_decide(before: Beat, now: float, after: Beat, tells: str | None) -> None:
    got, telling = decide(before, now=now, timeout=60.0, lease=10.0)
    assert got == after
    assert (telling.state if telling else None) == tells


def test_beats_start_and_telling_transitions() -> None:
    first = after_start(None, 5.0)
    assert first == Beat(state="up", last_beat=5.0, changed_at=5.0, told=True)
    assert after_beat(first, 3.0).last_beat == 5.0  # a late delivery never moves time back
    assert after_start(UP, 500.0).last_beat == 500.0  # a restart grants one timeout
    assert after_start(DOWN, 500.0) == DOWN  # known down: only a real beat brings it back
    telling = Telling(state="down", since=200.0, last_beat=100.0)
    claimed = Beat(state="down", last_beat=100.0, changed_at=200.0, told=False, claimed_at=201.0)
    assert after_telling(claimed, telling, told=True) == DOWN
    assert after_telling(claimed, telling, told=False).claimed_at is None
    moved_on = Beat(state="up", last_beat=300.0, changed_at=301.0, told=False, claimed_at=301.0)
    assert after_telling(moved_on, telling, told=True) == moved_on


def test_pipeline_texts_name_the_silence() -> None:
    down = pipeline_text(Telling(state="down", since=1000.0, last_beat=700.0), now=1000.0)
    assert down == (
        "boxoffice ALERTING DOWN: no heartbeat from Alertmanager since 00:11 UTC (5 min). "
        "Alerts may reach nobody: check Prometheus, Alertmanager and the SMS bridge."
    )
    back = pipeline_text(Telling(state="up", since=4000.0, last_beat=3990.0), now=4001.0)
    assert back == (
        "boxoffice alerting back: Alertmanager's heartbeat arrives again since 01:06 UTC. "
        "Alerts are delivered again."
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with serving(FakeTwilio()) as fake:
        assert isinstance(fake, FakeTwilio)
        yield fake


def _watch(
    beats: Beats, twilio: FakeTwilio, clock: Clock
) -> tuple[HeartbeatWatch, CollectorRegistry]:
    registry = CollectorRegistry()
    sender = TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM,
        messaging_service_sid=None,
        api_base=twilio.url,
    )
    watch = HeartbeatWatch(
        beats=beats,
        sender=sender,
        recipients=ONCALL,
        timeout=60.0,
        request_timeout=2.0,
        max_segments=3,
        metrics=BridgeMetrics(registry),
        registry=registry,
        wall=clock,
    )
    return watch, registry


def _texts(twilio: FakeTwilio) -> list[tuple[str, str]]:
    return [(m["to"], m["body"].split(":")[0]) for m in list(twilio.created)]


def _pair(store: IdempotencyStore, twilio: FakeTwilio) -> None:
    """Two bridges on one store: beats at either count for both, and each change of
    state is texted once, by one of them."""
    clock = Clock()
    a, registry_a = _watch(StoredBeats(store), twilio, clock)
    b, registry_b = _watch(StoredBeats(store), twilio, clock)
    a.start()
    b.start()
    try:
        clock.now += 50
        a.received()  # the beat reaches bridge a only
        clock.now += 50
        assert b.check() is None and a.check() is None  # b knows of a's beat
        clock.now += 61
        down = b.check()
        assert down is not None and down.state == "down"
        assert a.check() is None  # told already, by b
        assert _texts(twilio) == [(n, "boxoffice ALERTING DOWN") for n in ONCALL]
        assert registry_a.get_sample_value("boxoffice_sms_bridge_pipeline_down") == 1
        clock.now += 600
        assert a.check() is None and b.check() is None  # once
        b.received()
        clock.now += 1
        back = a.check()
        assert back is not None and back.state == "up"
        assert b.check() is None
        assert _texts(twilio)[2:] == [(n, "boxoffice alerting back") for n in ONCALL]
        assert registry_b.get_sample_value("boxoffice_sms_bridge_pipeline_down") == 0
        sent = registry_a.get_sample_value(
            "boxoffice_sms_bridge_pipeline_texts_sent_total", {"state": "up"}
        )
        assert sent == 2
    finally:
        a.stop()
        b.stop()


def test_two_bridges_sharing_sqlite_text_each_change_once(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    path = str(tmp_path / "bridge.sqlite")
    first, second = SqliteStore(path), SqliteStore(path)
    try:
        _pair(first, twilio)
    finally:
        first.close()
        second.close()


def test_two_bridges_sharing_postgresql_text_each_change_once(
    pg_dsn: str, twilio: FakeTwilio
) -> None:
    store = PostgresStore(pg_dsn)
    try:
        _pair(store, twilio)
    finally:
        store.close()


def test_a_failed_text_is_retried_to_the_recipients_still_missing_it(twilio: FakeTwilio) -> None:
    clock = Clock()
    watch, registry = _watch(MemoryBeats(), twilio, clock)
    watch.start()
    try:
        twilio.failing[ONCALL[1]] = error_reply(500, 20500, "Internal Server Error")
        clock.now += 61
        assert watch.check() is None  # one recipient still untold: not done
        assert _texts(twilio) == [(ONCALL[0], "boxoffice ALERTING DOWN")]
        failed = registry.get_sample_value(
            "boxoffice_sms_bridge_messages_failed_total", {"reason": "twilio_unavailable"}
        )
        assert failed == 1
        del twilio.failing[ONCALL[1]]
        clock.now += 1
        assert watch.check() is not None
        assert _texts(twilio) == [(n, "boxoffice ALERTING DOWN") for n in ONCALL]
    finally:
        watch.stop()


def _heartbeat(url: str, data: bytes, headers: dict[str, str] = AUTH) -> requests.Response:
    return requests.post(
        f"{url}/heartbeat",
        data=data,
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


def test_post_heartbeat_records_and_refuses_what_is_not_a_webhook(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    watchdog = webhook(alert("Watchdog", category="monitoring", severity="low", notify="heartbeat"))
    cfg = config(tmp_path, twilio.url, heartbeat_group="oncall")
    with running_bridge(cfg) as (_parts, url):
        assert _heartbeat(url, body(watchdog), headers={}).status_code == 401
        assert _heartbeat(url, b"{not json").status_code == 400
        answer = _heartbeat(url, body(watchdog))
        assert answer.status_code == 200, answer.text
        metrics = scrape(url, headers=AUTH)
        assert value(metrics, "boxoffice_sms_bridge_heartbeats_received_total") == 1
        assert value(metrics, "boxoffice_sms_bridge_pipeline_down") == 0
        last = value(metrics, "boxoffice_sms_bridge_last_heartbeat_timestamp_seconds")
        assert last is not None and last > 1.7e9
    assert twilio.created == []


def test_heartbeat_group_must_be_a_group(tmp_path: Path, twilio: FakeTwilio) -> None:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, twilio.url, heartbeat_group="pager")
    assert str(caught.value).endswith(
        "sms_bridge.heartbeat_group: names no group (groups: oncall, solo)"
    )


def test_balance_gauge_follows_twilio_and_drops_when_unreadable(twilio: FakeTwilio) -> None:
    registry = CollectorRegistry()
    fetch = twilio_balance(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base=twilio.url, timeout=2.0
    )
    watch = BalanceWatch(fetch, registry=registry, interval=60.0)
    name = "boxoffice_sms_bridge_twilio_balance"
    assert watch.poll()
    assert registry.get_sample_value(name, {"currency": "usd"}) == 47.25
    twilio.fail_next(error_reply(500, 20500, "Internal Server Error"))
    assert not watch.poll()
    assert registry.get_sample_value(name, {"currency": "usd"}) is None
    errors = registry.get_sample_value(
        "boxoffice_sms_bridge_balance_errors_total", {"reason": "http"}
    )
    assert errors == 1


def test_a_running_bridge_publishes_its_balance(tmp_path: Path, twilio: FakeTwilio) -> None:
    with running_bridge(config(tmp_path, twilio.url, balance_interval="0.2s")) as (_parts, url):
        found = wait_for(
            lambda: value(
                scrape(url, headers=AUTH), "boxoffice_sms_bridge_twilio_balance", currency="usd"
            ),
            timeout=10,
        )
        assert found == 47.25


def test_the_rules_read_series_the_bridge_publishes() -> None:
    """The catalog names the bridge series the generated rules read; the bridge's own
    registry must publish each (a rename would leave its alert silent for good)."""
    registry = CollectorRegistry()
    BridgeMetrics(registry)
    HeartbeatMetrics(registry)
    watch = BalanceWatch(lambda: (12.5, "usd"), registry=registry, interval=60.0)
    watch.poll()
    published = {s.name for family in registry.collect() for s in family.samples}
    bridge = {
        catalog.BRIDGE_MESSAGES_FAILED,
        catalog.BRIDGE_MESSAGES_DEFERRED,
        catalog.BRIDGE_TWILIO_BALANCE,
        catalog.BRIDGE_PIPELINE_DOWN,
    }
    assert bridge <= published, bridge - published
    assert bridge <= catalog.ALERTING_PATH_SERIES
