"""Configuration: typed schema, environment overrides, secrets files and exact error lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import main
from exporter.config import ConfigError, load_config
from exporter.config.typed import parse_duration
from exporter.smsbridge.config import load_bridge_config

GOOD_DSN = "postgresql://boxoffice@127.0.0.1:5432/tickets"

# (config file text, extra environment, expected error after "boxoffice: <file>: ")
MALFORMED: list[tuple[str, dict[str, str], str]] = [
    (
        "databases: [\n",
        {},
        "line 2: invalid YAML: expected the node content, but found '<stream end>'",
    ),
    ("- a\n- b\n", {}, "must be a mapping at the top level"),
    (
        "databse:\n  default: {dsn: x}\n",
        {},
        "databse: unknown key (known keys: databases, ha, log, metrics, sms_bridge, sources, status_page, web)",
    ),
    ("web:\n  listen_address: 9798\n", {}, "web.listen_address: must be a string, got int 9798"),
    (
        "web:\n  listen_address: 'localhost'\n",
        {},
        "web.listen_address: must be [host]:port like :9798 or 127.0.0.1:9798, got 'localhost'",
    ),
    (
        "web:\n  listen_address: '::1:19798'\n",
        {},
        "web.listen_address: IPv6 hosts are written in brackets like [::1]:9798, got '::1:19798'",
    ),
    (
        "web:\n  listen_address: ':70000'\n",
        {},
        "web.listen_address: must be [host]:port like :9798 or 127.0.0.1:9798, got ':70000'",
    ),
    (
        "web:\n  listen_address: '[localhost]:80'\n",
        {},
        "web.listen_address: brackets are for IPv6 hosts like [::1]:9798, got '[localhost]:80'",
    ),
    (
        "sms_bridge:\n  listen_address: '::1:9799'\n",
        {},
        "sms_bridge.listen_address: IPv6 hosts are written in brackets like [::1]:9798, got '::1:9799'",
    ),
    (
        "web:\n  telemetry_path: metrics\n",
        {},
        "web.telemetry_path: must start with '/', got 'metrics'",
    ),
    (
        "sources:\n  postgres:\n    interval: soon\n",
        {},
        "sources.postgres.interval: not a duration like 30s, 5m or 1h30m: 'soon'",
    ),
    (
        "sources:\n  postgres:\n    interval: 0s\n",
        {},
        "sources.postgres.interval: must be > 0, got 0",
    ),
    (
        "sources:\n  postgres:\n    timeout: 2m\n",
        {},
        "sources.postgres.timeout: must not exceed sources.postgres.interval (30s)",
    ),
    (
        "sources:\n  postgres:\n    max_series_per_metric: 0\n",
        {},
        "sources.postgres.max_series_per_metric: must be >= 1, got 0",
    ),
    (
        "sources:\n  kafka: {}\n",
        {},
        "sources.kafka: unknown key (known keys: http, postgres, stripe, twilio)",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  stripe:\n    enabled: true\n",
        {},
        "sources.stripe.api_key: is required when the Stripe source is enabled",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  stripe:\n    enabled: true\n    api_key: rk_test_x\n    api_key_file: /run/secrets/k\n",
        {},
        "sources.stripe.api_key_file: give api_key or api_key_file, not both",
    ),
    (
        "sources:\n  stripe:\n    api_base: api.stripe.com\n",
        {},
        "sources.stripe.api_base: must be an http(s) URL, got 'api.stripe.com'",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  twilio:\n    enabled: true\n    auth_token: t\n",
        {},
        "sources.twilio.account_sid: is required when the Twilio source is enabled",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  twilio:\n    enabled: true\n    account_sid: AC1\n    auth_token_file: /nonexistent/token\n",
        {},
        "sources.twilio.auth_token_file: cannot read: No such file or directory",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  http:\n    targets:\n      - {url: http://127.0.0.1/}\n",
        {},
        "sources.http.targets[0].name: is required",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  http:\n    targets:\n      - {name: a, url: http://127.0.0.1/}\n      - {name: a, url: http://127.0.0.1/}\n",
        {},
        "sources.http.targets[1].name: duplicate target name 'a'",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  http:\n    targets:\n      - {name: a, url: http://127.0.0.1/, method: PUT}\n",
        {},
        "sources.http.targets[0].method: must be one of GET, HEAD, POST, got 'PUT'",
    ),
    (
        "sources:\n  postgres: {enabled: false}\n  http:\n    targets:\n      - {name: a, url: http://127.0.0.1/, expected_status: 2000}\n",
        {},
        "sources.http.targets[0].expected_status: must be between 100 and 599, got 2000",
    ),
    (
        "sources:\n  twilio:\n    page_size: 5000\n",
        {},
        "sources.twilio.page_size: must be between 1 and 1000, got 5000",
    ),
    (
        "sources:\n  twilio:\n    interval: 5m\n    window: 2m\n",
        {},
        "sources.twilio.window: must be longer than sources.twilio.interval (300s)",
    ),
    (
        "databases:\n  default:\n    pool_max_size: 2\n",
        {},
        "databases.default.dsn: is required (or dsn_file)",
    ),
    (
        f"databases:\n  default:\n    dsn: {GOOD_DSN}\n    dsn_file: /run/secrets/dsn\n",
        {},
        "databases.default.dsn_file: give dsn or dsn_file, not both",
    ),
    (
        "databases:\n  default:\n    dsn_file: /nonexistent/dsn\n",
        {},
        "databases.default.dsn_file: cannot read: No such file or directory",
    ),
    ("databases:\n  default:\n    dsn: ''\n", {}, "databases.default.dsn: must not be empty"),
    ("web: {}\n", {"BOXOFFICE_DSN": " "}, "environment variable BOXOFFICE_DSN: must not be empty"),
    (
        "databases:\n  default:\n    dsn: 'host=db password=hunter2 bogus'\n",
        {},
        "databases.default.dsn: is not a valid libpq connection string (URI or key=value)",
    ),
    (
        "databases:\n  default:\n    dsn: x\n    pool_max_size: many\n",
        {},
        "databases.default.pool_max_size: must be an integer, got 'many'",
    ),
    (
        f"databases:\n  default: {{dsn: '{GOOD_DSN}'}}\nmetrics:\n  boxoffice_tickets_solds_total: {{}}\n",
        {},
        "metrics.boxoffice_tickets_solds_total: not a boxoffice PostgreSQL metric",
    ),
    (
        f"databases:\n  default: {{dsn: '{GOOD_DSN}'}}\nmetrics:\n  boxoffice_revenue_total:\n    database: payments\n",
        {},
        "metrics.boxoffice_revenue_total.database: no database named 'payments' (defined: default)",
    ),
    (
        f"databases:\n  default: {{dsn: '{GOOD_DSN}'}}\nmetrics:\n  boxoffice_revenue_total:\n    sql: ' ; '\n",
        {},
        "metrics.boxoffice_revenue_total.sql: must not be empty",
    ),
    (
        f"databases:\n  default: {{dsn: '{GOOD_DSN}'}}\nmetrics:\n  boxoffice_revenue_total:\n    enabled: 'no'\n",
        {},
        "metrics.boxoffice_revenue_total.enabled: must be true or false, got 'no'",
    ),
    (
        "log:\n  level: verbose\n",
        {},
        "log.level: must be one of debug, info, warning, error, got 'verbose'",
    ),
    (
        "web:\n  listen_address: ':1'\n  listen_address: ':2'\n",
        {},
        "line 3: invalid YAML: duplicate key 'listen_address'",
    ),
    (
        "sources:\n  postgres: {}\n",
        {},
        "databases: no database configured: give --dsn, BOXOFFICE_DSN or `databases`",
    ),
    (
        f"databases:\n  default: {{dsn: '{GOOD_DSN}'}}\nha:\n  lease_database: replica\n",
        {},
        "ha.lease_database: no database named 'replica' (defined: default)",
    ),
    (
        "web: {}\n",
        {"BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "fast"},
        "environment variable BOXOFFICE_SOURCES_POSTGRES_INTERVAL: not a duration like 30s, 5m or 1h30m: 'fast'",
    ),
]


@pytest.mark.parametrize(("text", "env", "expected"), MALFORMED)
def test_malformed_config_exits_2_with_one_line(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "boxoffice.yml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["check", "--config", str(path)], env=env)
    assert result.exit_code == 2, result.output
    prefix = "boxoffice: " if expected.startswith("environment") else f"boxoffice: {path}: "
    assert result.output == f"{prefix}{expected}\n"


def test_secret_never_echoed_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "boxoffice.yml"
    path.write_text("databases:\n  default:\n    dsn: 'host=db password=hunter2 bogus'\n")
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 2
    assert "hunter2" not in result.output


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    result = CliRunner().invoke(main, ["serve", "--config", str(missing)])
    assert result.exit_code == 2
    assert result.output == f"boxoffice: {missing}: cannot read: No such file or directory\n"


@pytest.mark.parametrize("address", [":9798", "127.0.0.1:9798", "localhost:80", "[::1]:19798"])
def test_listen_addresses_the_server_binds_are_accepted(address: str) -> None:
    env = {"BOXOFFICE_DSN": GOOD_DSN}
    flags = {
        "web.listen_address": (address, "--web.listen-address"),
        "sms_bridge.listen_address": (address, "--web.listen-address"),
    }
    settings = load_config(None, env=env, flags=flags).settings
    assert settings.web.listen_address == settings.sms_bridge.listen_address == address


# Every "value or *_file" secret: the YAML around it ({entry} is `key: value`) and its path.
_BRIDGE = "sms_bridge:\n  groups: {{oncall: ['+14155552671']}}\n  "
SECRET_SETTINGS: list[tuple[str, str]] = [
    ("databases:\n  default:\n    {entry}\n", "databases.default.dsn"),
    (
        "sources:\n  postgres: {{enabled: false}}\n  stripe:\n    enabled: true\n    {entry}\n",
        "sources.stripe.api_key",
    ),
    (
        "sources:\n  postgres: {{enabled: false}}\n  twilio:\n    enabled: true\n"
        "    account_sid: AC1\n    {entry}\n",
        "sources.twilio.auth_token",
    ),
    (_BRIDGE + "dry_run: true\n  {entry}\n", "sms_bridge.bearer_token"),
    (
        _BRIDGE + "unauthenticated: true\n  account_sid: AC1\n  from_number: '+14155550100'\n"
        "  {entry}\n",
        "sms_bridge.auth_token",
    ),
    (_BRIDGE + "unauthenticated: true\n  dry_run: true\n  {entry}\n", "sms_bridge.store_dsn"),
]


def _secrets_of(path: Path, setting: str) -> frozenset[str]:
    """Load the file as the command reading ``setting`` does; the secrets it resolved."""
    if setting.startswith("sms_bridge."):
        return load_bridge_config(str(path), env={}).secrets
    return load_config(str(path), env={}).secrets


@pytest.mark.parametrize(("template", "setting"), SECRET_SETTINGS)
@pytest.mark.parametrize("blank", ["''", "'  '"])
def test_an_empty_secret_value_is_refused(
    tmp_path: Path, template: str, setting: str, blank: str
) -> None:
    path = tmp_path / "boxoffice.yml"
    key = setting.rpartition(".")[2]
    path.write_text(template.format(entry=f"{key}: {blank}"))
    with pytest.raises(ConfigError) as caught:
        _secrets_of(path, setting)
    assert str(caught.value) == f"{path}: {setting}: must not be empty"


@pytest.mark.parametrize(("template", "setting"), SECRET_SETTINGS)
@pytest.mark.parametrize("content", ["", " \n\t\n"])
def test_an_empty_secret_file_is_refused(
    tmp_path: Path, template: str, setting: str, content: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(content)
    path = tmp_path / "boxoffice.yml"
    key = setting.rpartition(".")[2]
    path.write_text(template.format(entry=f"{key}_file: {secret}"))
    with pytest.raises(ConfigError) as caught:
        _secrets_of(path, setting)
    assert str(caught.value) == f"{path}: {setting}_file: the file is empty"


@pytest.mark.parametrize(("template", "setting"), SECRET_SETTINGS)
def test_a_secret_file_is_read_and_trimmed(tmp_path: Path, template: str, setting: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("postgresql://reader:s3cret@db.internal/tickets\n")
    path = tmp_path / "boxoffice.yml"
    key = setting.rpartition(".")[2]
    path.write_text(template.format(entry=f"{key}_file: {secret}"))
    assert "postgresql://reader:s3cret@db.internal/tickets" in _secrets_of(path, setting)


def test_an_empty_dsn_file_exits_2_instead_of_connecting_to_local_defaults(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "dsn"
    secret.write_text("\n")
    path = tmp_path / "boxoffice.yml"
    path.write_text(f"databases:\n  default:\n    dsn_file: {secret}\n")
    result = CliRunner().invoke(main, ["check", "--config", str(path)], env={})
    assert result.exit_code == 2, result.output
    assert result.output == f"boxoffice: {path}: databases.default.dsn_file: the file is empty\n"


def test_flag_errors_name_the_flag() -> None:
    result = CliRunner().invoke(
        main, ["serve", "--dsn", GOOD_DSN, "--web.listen-address", "nowhere"], env={}
    )
    assert result.exit_code == 2
    assert result.output == (
        "boxoffice: flag --web.listen-address: must be [host]:port like :9798 or "
        "127.0.0.1:9798, got 'nowhere'\n"
    )


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    path = tmp_path / "boxoffice.yml"
    path.write_text(
        f"databases:\n  default:\n    dsn: '{GOOD_DSN}'\n"
        "sources:\n  postgres:\n    interval: 1m\n    timeout: 5s\n"
        "web:\n  listen_address: ':1000'\n"
    )
    env = {
        "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "15s",
        "BOXOFFICE_SOURCES_POSTGRES_MAX_SERIES_PER_METRIC": "50",
        "BOXOFFICE_WEB_LISTEN_ADDRESS": ":2000",
        "BOXOFFICE_LOG_FORMAT": "json",
    }
    config = load_config(
        str(path), env=env, flags={"web.listen_address": ("127.0.0.1:3000", "--web.listen-address")}
    )
    postgres = config.settings.sources.postgres
    assert (postgres.interval, postgres.effective_timeout, postgres.max_series_per_metric) == (
        15,
        5,
        50,
    )
    assert config.settings.web.listen_address == "127.0.0.1:3000"
    assert config.settings.log.format == "json"


def test_named_databases_from_environment_and_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "payments_dsn"
    secret.write_text("postgresql://reader:s3cret@payments.internal/payments\n")
    env = {
        "BOXOFFICE_DSN": GOOD_DSN,
        "BOXOFFICE_DATABASES_PAYMENTS_DB_DSN_FILE": str(secret),
        "BOXOFFICE_DATABASES_PAYMENTS_DB_POOL_MAX_SIZE": "3",
        "BOXOFFICE_METRICS_BOXOFFICE_REVENUE_TOTAL_DATABASE": "payments_db",
        "BOXOFFICE_TEST_DSN": "ignored: not a setting",
    }
    config = load_config(None, env=env)
    payments = config.databases["payments_db"]
    assert payments.dsn == "postgresql://reader:s3cret@payments.internal/payments"
    assert payments.pool_max_size == 3
    by_name = {m.spec.name: m.database for m in config.metrics}
    assert by_name["boxoffice_revenue_total"] == "payments_db"
    assert by_name["boxoffice_tickets_sold_total"] == "default"
    assert "s3cret" in config.secrets
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("interval", "timeout", "effective"), [("30s", None, 10), ("5s", None, 5), ("1m", "20s", 20)]
)
def test_default_timeout_fits_the_interval(
    interval: str, timeout: str | None, effective: float
) -> None:
    env = {"BOXOFFICE_DSN": GOOD_DSN, "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": interval}
    if timeout:
        env["BOXOFFICE_SOURCES_POSTGRES_TIMEOUT"] = timeout
    assert load_config(None, env=env).settings.sources.postgres.effective_timeout == effective


def test_disabled_metric_and_sql_override() -> None:
    env = {"BOXOFFICE_DSN": GOOD_DSN}
    config = load_config(None, env=env)
    assert len(config.metrics) == 20  # the pack, with the three paid-orders breakdowns
    env["BOXOFFICE_METRICS_BOXOFFICE_CHECKOUT_SESSIONS_OPEN_ENABLED"] = "false"
    env["BOXOFFICE_METRICS_BOXOFFICE_PAYMENTS_TOTAL_SQL"] = "SELECT 1 AS value;"
    config = load_config(None, env=env)
    names = {m.spec.name: m for m in config.metrics}
    assert "boxoffice_checkout_sessions_open" not in names
    assert names["boxoffice_payments_total"].sql == "SELECT 1 AS value"
    assert names["boxoffice_payments_total"].overridden


def test_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "boxoffice.example.yml"
    config = load_config(str(example), env={})
    assert "default" in config.databases


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2d", 172800), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "s", "1x", "1m 30s", "-1s", "30s5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_config_error_is_one_line() -> None:
    assert str(ConfigError("f.yml", "a.b", "bad")) == "f.yml: a.b: bad"
    assert str(ConfigError("environment variable X", "", "bad")) == "environment variable X: bad"
