"""`boxoffice sms-bridge` as real processes: a webhook, SIGTERM, a new process on the same
SQLite file, Alertmanager's retry deduplicated; secrets stay out of the log."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.alerts import alert, payment_alert, webhook
from tests.support.bridge import BEARER, ONCALL, post, write_config
from tests.support.exporter import boxoffice_script, free_ipv6_port, free_port, wait_for
from tests.support.fake_twilio import AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import serving


@contextmanager
def _bridge_process(config_path: str, log: Path, *, host: str = "127.0.0.1") -> Iterator[str]:
    """The bridge on ``host`` (an IPv6 one in brackets) and a free port; yields its URL."""
    port = free_ipv6_port() if host.startswith("[") else free_port()
    env = {
        **os.environ,
        "BOXOFFICE_SMS_BRIDGE_LISTEN_ADDRESS": f"{host}:{port}",
        "BOXOFFICE_LOG_LEVEL": "debug",
    }
    with log.open("a") as out:
        process = subprocess.Popen(
            [boxoffice_script(), "sms-bridge", "--config", config_path],
            env=env,
            stdout=out,
            stderr=out,
        )
    url = f"http://{host}:{port}"

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


def test_bridge_serves_on_a_bracketed_ipv6_address(tmp_path: Path) -> None:
    with serving(FakeTwilio()) as fake:
        path = write_config(tmp_path, fake.url)
        with _bridge_process(path, tmp_path / "bridge.log", host="[::1]") as url:
            assert post(url, webhook(payment_alert())).status_code == 200


def test_bridge_refuses_an_unbracketed_ipv6_address_in_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    result = subprocess.run(
        [boxoffice_script(), "sms-bridge", "--config", path, "--web.listen-address", "::1:9799"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "boxoffice: flag --web.listen-address: IPv6 hosts are written in brackets like "
        "[::1]:9798, got '::1:9799'\n"
    )
