"""The README's main command: `boxoffice demo` on a machine with no database configured."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import requests

from tests.support.exporter import Series, free_port, scrape_until, value, wait_for

Demo = tuple["subprocess.Popen[bytes]", str]


@contextmanager
def running_demo(*args: str, env: dict[str, str], log: Path) -> Iterator[Demo]:
    """Start `boxoffice demo` on a free port with ``args``, its output in ``log``; yield the
    process and its URL once it serves; kill it if the test left it running."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "demo",
                "--web.listen-address",
                f"127.0.0.1:{port}",
                *args,
            ],
            env=env,
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return requests.get(f"{url}/healthz", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout=90, interval=0.5)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_demo_starts_a_throwaway_database_seeds_serves_and_cleans_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env["BOXOFFICE_SOURCES_POSTGRES_INTERVAL"] = "1s"
    log = tmp_path / "demo.log"
    with running_demo("--orders", "3000", env=env, log=log) as (process, url):
        series = scrape_until(
            url, lambda s: value(s, "boxoffice_source_up", source="postgres") == 1
        )
        assert value(series, "boxoffice_payments_total")
        sold = [
            v for (name, _labels), v in series.items() if name == "boxoffice_tickets_sold_total"
        ]
        assert len(sold) >= 20
        assert sum(sold) > 0
        page = requests.get(f"{url}/status", timeout=30)
        assert page.status_code == 200 and 'data-figure="open_checkouts"' in page.text
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    output = log.read_text()
    match = re.search(r"starting a throwaway PostgreSQL in (\S+)", output)
    assert match, output
    assert not Path(match.group(1)).exists(), "the throwaway data must be removed"
    assert "throwaway PostgreSQL removed" in output
    assert f"status page: {url}/status" in output
    assert "seeded 3000 orders" in output


def test_demo_plays_a_scenario_on_live_sales_and_stops_cleanly(
    pg_schema: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env.update(BOXOFFICE_DSN=pg_schema, BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1s")
    log = tmp_path / "demo.log"
    args = [
        "--orders",
        "2000",
        "--scenario",
        "payment-outage",
        "--speed",
        "600",
        "--start-after",
        "2",
        "--incident-for",
        "3",
    ]
    with running_demo(*args, env=env, log=log) as (process, url):

        def recovered() -> bool:
            assert process.poll() is None, log.read_text()
            return "RECOVERY payment-outage" in log.read_text()

        wait_for(recovered, timeout=90, interval=0.5)
        series = scrape_until(
            url,
            lambda s: (
                (value(s, "boxoffice_payments_failed_total", failure_code="processing_error") or 0)
                > 10
            ),
        )
        assert value(series, "boxoffice_source_up", source="postgres") == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    output = log.read_text()
    timeline = [line for line in output.splitlines() if line.startswith("[")]
    assert "payment-outage starts at +2s and lasts 3s" in timeline[0]
    assert any("INCIDENT payment-outage" in line for line in timeline)
    assert "stopped:" in timeline[-1]
    with psycopg.connect(pg_schema) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM orders WHERE payment_status = 'pending' "
            "        AND checkout_session_id LIKE 'cs_demo_%'), "
            "       (SELECT count(*) FROM checkout_sessions WHERE status = 'open' "
            "        AND id LIKE 'cs_demo_%')"
        ).fetchone()
    assert row == (0, 0), "the simulator settles its payments and sessions when it stops"


def test_demo_feeds_its_local_twilio_to_the_exporter_and_removes_it(
    pg_schema: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    temp = tmp_path / "tmp"  # where the demo's private token file goes
    temp.mkdir()
    env.update(BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1s", TMPDIR=str(temp))
    log = tmp_path / "demo.log"
    args = [
        "--no-prometheus",
        "--orders",
        "2000",
        "--scenario",
        "sms-failure",
        "--speed",
        "600",
        "--start-after",
        "2",
        "--incident-for",
        "5",
        "--dsn",
        pg_schema,
    ]
    codes = {"30003", "30005", "30006", "30007", "30008"}

    def failed_with_code(series: Series) -> float:
        return sum(
            v
            for (name, labels), v in series.items()
            if name == "boxoffice_sms_messages_failed_total"
            and dict(labels).get("error_code") in codes
        )

    with running_demo(*args, env=env, log=log) as (process, url):
        (token_file,) = temp.glob("boxoffice-demo-twilio-*/auth_token")
        token = token_file.read_text()
        series = scrape_until(url, lambda s: failed_with_code(s) > 0, timeout=60)
        assert value(series, "boxoffice_source_up", source="twilio") == 1
        assert (value(series, "boxoffice_sms_messages_total") or 0) >= failed_with_code(series)
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert token not in metrics
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    output = log.read_text()
    assert token not in output
    assert "note: sms-failure texts land in the demo's local Twilio API" in output
    assert not list(temp.glob("boxoffice-demo-twilio-*")), "the token file must be removed"
