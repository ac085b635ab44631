"""`boxoffice check` plans every per-cycle statement and names the index a scan needs."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from exporter.db.seed import seed_database
from exporter.generate.output import OWNED
from tests.support.exporter import run_boxoffice

ROWS = "--seqscan-rows=1000"


@pytest.fixture
def seeded(pg_schema: str) -> str:
    seed_database(pg_schema, orders=5_000, seed=3)
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return pg_schema


def test_check_passes_with_the_schema_indexes(seeded: str) -> None:
    result = run_boxoffice("check", ROWS, env={"BOXOFFICE_DSN": seeded})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("index", "statements"),
    [
        ("orders_paid_at_idx", ["paid orders", "boxoffice_last_paid_order_timestamp_seconds"]),
        ("checkout_sessions_completed_idx", ["checkout sessions completed"]),
        ("checkout_sessions_expired_idx", ["checkout sessions expired"]),
        ("webhook_logs_created_at_idx", ["webhook logs"]),
    ],
)
def test_a_dropped_index_is_reported_with_the_statement_that_recreates_it(
    seeded: str, index: str, statements: list[str]
) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {index}")
    result = run_boxoffice("check", ROWS, env={"BOXOFFICE_DSN": seeded})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[2].split(" reads ")[0] for line in lines] == statements
    fix = lines[0].split("; fix: ")[1]
    assert fix.startswith(f"CREATE INDEX {index} ON ")
    # The fix it prints really fixes it.
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute(fix.encode())
    assert run_boxoffice("check", ROWS, env={"BOXOFFICE_DSN": seeded}).returncode == 0


def test_full_aggregates_are_reported_when_incremental_collection_is_off(seeded: str) -> None:
    env = {"BOXOFFICE_DSN": seeded, "BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_ENABLED": "false"}
    result = run_boxoffice("check", ROWS, env=env)
    assert result.returncode == 1
    assert "boxoffice_webhook_events_total reads table webhook_logs" in result.stderr
    assert "enable sources.postgres.incremental" in result.stderr


def _bundle(tmp_path: Path) -> Path:
    """A copy of the repository's alerting inputs and generated output."""
    root = Path(__file__).resolve().parent.parent
    for rel in ("rules", *(owned for owned, _suffix in OWNED)):
        shutil.copytree(root / rel, tmp_path / rel, dirs_exist_ok=True)
    return tmp_path


def test_check_validates_the_alerting_bundle_under_root(pg_schema: str, tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    env = {"BOXOFFICE_DSN": pg_schema}
    result = run_boxoffice("check", "--root", str(root), env=env)
    assert result.returncode == 0, result.stderr
    assert "rules/thresholds.yaml: ok" in result.stdout

    stale = root / "rules" / "generated" / "payments.yml"
    stale.write_text(stale.read_text().replace("severity: critical", "severity: low", 1))
    result = run_boxoffice("check", "--root", str(root), env=env)
    assert result.returncode == 1
    assert "boxoffice: rules/generated/payments.yml: stale, run `boxoffice generate`" in (
        result.stderr
    )

    thresholds = root / "rules" / "thresholds.yaml"
    thresholds.write_text(thresholds.read_text() + "\nunknown_key: 1\n")
    result = run_boxoffice("check", "--root", str(root), env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("boxoffice: rules/thresholds.yaml: unknown_key:")
