"""`boxoffice sms-bridge` as real processes: a webhook, SIGTERM, a new process on the same
SQLite file, Alertmanager's retry deduplicated; secrets stay out of the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.alerts import alert, payment_alert, webhook
from tests.support.bridge import BEARER, ONCALL, post, write_config
from tests.support.exporter import free_port, wait_for
from tests.support.fake_twilio import AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import serving


@contextmanager
def _bridge_process(config_path: str, log: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "BOXOFFICE_SMS_BRIDGE_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "BOXOFFICE_LOG_LEVEL": "debug",
    }
    with log.open("a") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "sms-bridge", "--config", config_path],
            env=env,
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            assert process.poll() is None, log.read_text()
            return False

    try:
        wait_for(healthy, timeout=20)
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_restarted_process_sends_nothing_twice(tmp_path: Path) -> None:
    notification = webhook(payment_alert(), alert("InventoryLow", category="inventory"))
    log = tmp_path / "bridge.log"
    with serving(FakeTwilio()) as fake:
        assert isinstance(fake, FakeTwilio)
        path = write_config(tmp_path, fake.url)
        with _bridge_process(path, log) as url:
            assert post(url, notification).status_code == 200
            assert [m["to"] for m in fake.created] == ONCALL
        with _bridge_process(path, log) as url:  # Alertmanager retries after the restart
            answer = post(url, notification)
            assert answer.status_code == 200
            assert answer.text.count("deduplicated") == 3
        assert len(fake.created) == 3
    text = log.read_text()
    assert "sms-bridge ready: http://127.0.0.1:" in text
    assert "SMS to +14*******01 sent as SM" in text
    assert AUTH_TOKEN not in text
    assert BEARER not in text
    for number in ONCALL:
        assert number not in text
