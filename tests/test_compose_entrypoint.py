"""docker/entrypoint.sh, the glue between Docker secrets and boxoffice, run for real against
the test PostgreSQL: schema and demo seed once, then the exporter behind basic auth and the
healthcheck Docker runs."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.exporter import free_port, wait_for

ENTRYPOINT = Path(__file__).parent.parent / "docker" / "entrypoint.sh"
PASSWORD = "s3cret:pa\\ss"  # a colon and a backslash, which pgpass needs escaped
SCRAPE_PASSWORD = "scrape-Pa55word"


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name, value in {
        "postgres_password": PASSWORD,
        "grafana_admin_password": "g",
        "sms_bridge_token": "t",
        "exporter_password": SCRAPE_PASSWORD,
        "twilio_auth_token": "",
    }.items():
        (directory / name).write_text(value + "\n" if value else "")
    return directory


def _env(secrets: Path, state: Path, **extra: str) -> dict[str, str]:
    state.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BOXOFFICE_SECRETS_DIR": str(secrets),
        "BOXOFFICE_STATE_DIR": str(state),
        **extra,
    }


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_init_db_seeds_once_then_leaves_the_data_alone(
    pg_dsn: str, secrets: Path, tmp_path: Path
) -> None:
    env = _env(secrets, tmp_path / "state", BOXOFFICE_DSN=pg_dsn, BOXOFFICE_DEMO_ORDERS="300")
    first = _run("init-db", env=env)
    assert first.returncode == 0, first.stderr
    assert "reference schema ready" in first.stdout and "seeded 300 orders" in first.stdout
    pgpass = tmp_path / "state" / "pgpass"
    assert pgpass.read_text() == "*:*:*:postgres:s3cret\\:pa\\\\ss\n"
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    again = _run("init-db", env=env)
    assert again.returncode == 0, again.stderr
    assert "already holds data: not seeding" in again.stdout


@pytest.fixture
def serving_exporter(
    pg_schema: str, secrets: Path, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = _env(
        secrets,
        tmp_path / "state",
        BOXOFFICE_DSN=pg_schema,
        BOXOFFICE_WEB_LISTEN_ADDRESS=f"127.0.0.1:{port}",
    )
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield f"http://127.0.0.1:{port}", env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def test_serve_requires_the_scrape_password_and_the_healthcheck_sends_it(
    serving_exporter: tuple[str, dict[str, str]], secrets: Path, tmp_path: Path
) -> None:
    url, env = serving_exporter

    def answered() -> int:
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code
        except requests.RequestException:
            return 0

    assert wait_for(answered, timeout=30) == 401
    metrics = requests.get(f"{url}/metrics", auth=("prometheus", SCRAPE_PASSWORD), timeout=5)
    assert metrics.status_code == 200 and "boxoffice_source_up" in metrics.text
    wrong = requests.get(f"{url}/metrics", auth=("prometheus", "guess"), timeout=5)
    assert wrong.status_code == 401
    web = (tmp_path / "state" / "web.yml").read_text()
    assert 'prometheus: "$2' in web and SCRAPE_PASSWORD not in web
    assert stat.S_IMODE((tmp_path / "state" / "web.yml").stat().st_mode) == 0o600
    healthy = _run("healthcheck", "exporter", env=env)
    assert healthy.returncode == 0, healthy.stderr
    (secrets / "exporter_password").write_text("not-it\n")
    unhealthy = _run("healthcheck", "exporter", env=env)
    assert unhealthy.returncode != 0 and "401" in unhealthy.stderr
    assert "not-it" not in unhealthy.stderr


def test_sms_bridge_runs_dry_without_twilio_credentials(secrets: Path, tmp_path: Path) -> None:
    # The bridge command comes from another branch; here only the decision is checked, by
    # stopping at `boxoffice sms-bridge --help` when the command exists, or at the message.
    env = _env(secrets, tmp_path / "state")
    result = _run("sms-bridge", "--help", env=env)
    assert "dry run, SMS are logged, not sent" in result.stderr
    token = secrets / "twilio_auth_token"
    token.write_text("twilio-token\n")
    env["BOXOFFICE_SMS_BRIDGE_ACCOUNT_SID"] = "AC" + "0" * 32
    live = _run("sms-bridge", "--help", env=env)
    assert "dry run" not in live.stderr


def test_sms_bridge_with_a_shared_store_gets_the_password_from_pgpass(
    secrets: Path, tmp_path: Path
) -> None:
    """docker-compose.ha.yml: the bridges' store DSN file has no password; the entrypoint
    writes the postgres_password secret to a pgpass file for libpq, readable by its owner
    only, and leaves it out of the environment and the DSN."""
    state = tmp_path / "state"
    dsn_file = tmp_path / "store.dsn"
    dsn_file.write_text("postgresql://postgres@postgres:5432/tickets\n")
    env = _env(secrets, state, BOXOFFICE_SMS_BRIDGE_STORE_DSN_FILE=str(dsn_file))
    done = _run("sms-bridge", "--help", env=env)
    assert done.returncode == 0, done.stderr
    pgpass = state / "pgpass"
    assert pgpass.read_text() == "*:*:*:postgres:s3cret\\:pa\\\\ss\n"
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    assert PASSWORD not in done.stdout + done.stderr
    # Without a store DSN (docker-compose.yml: SQLite) no pgpass is written.
    other = tmp_path / "other"
    assert _run("sms-bridge", "--help", env=_env(secrets, other)).returncode == 0
    assert not (other / "pgpass").exists()
