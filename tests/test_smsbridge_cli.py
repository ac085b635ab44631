"""`boxoffice sms-bridge` refuses bad configuration with one line and exit code 2."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import main
from exporter.smsbridge.config import load_bridge_config
from tests.support.bridge import write_config

API = "http://127.0.0.1:9"


@pytest.fixture
def taken(tmp_path: Path) -> Iterator[str]:
    """An address already in use: a configuration that unexpectedly passes exits 1 at once
    (cannot serve) instead of serving for ever inside the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["sms-bridge", *args], env=env or {})
    return result.exit_code, result.output


CASES = [
    (
        {"bearer_token": None},
        "sms_bridge.bearer_token: the bridge needs credentials: give bearer_token(_file) or "
        "basic_auth_users in web_config_file, or run with --unauthenticated",
    ),
    ({"groups": {}}, "sms_bridge.groups: name at least one group of recipients"),
    (
        {"groups": {"oncall": ["4155550101"]}},
        "sms_bridge.groups.oncall[0]: must be an E.164 number like +14155552671",
    ),
    (
        {"groups": {"oncall": ["+14155550101", "+14155550101"]}},
        "sms_bridge.groups.oncall[1]: listed twice in this group",
    ),
    (
        {"groups": {"on call": ["+14155550101"]}},
        "sms_bridge.groups.on call: group names are letters, digits, '_', '.' and '-' (URL-safe)",
    ),
    ({"groups": {"oncall": []}}, "sms_bridge.groups.oncall: must list at least one number"),
    ({"account_sid": None}, "sms_bridge.account_sid: is required (or run with --dry-run)"),
    (
        {"auth_token_file": None},
        "sms_bridge.auth_token: is required (or auth_token_file, or --dry-run)",
    ),
    (
        {"auth_token": "inline"},
        "sms_bridge.auth_token_file: give auth_token or auth_token_file, not both",
    ),
    ({"from_number": None}, "sms_bridge.from_number: give from_number or messaging_service_sid"),
    (
        {"from_number": "boxoffice"},
        "sms_bridge.from_number: must be an E.164 number like +14155552671",
    ),
    ({"max_segments": 11}, "sms_bridge.max_segments: must be between 1 and 10, got 11"),
    (
        {"store_dsn": "host=x port=notaport password=s3cret extra"},
        "sms_bridge.store_dsn: is not a valid libpq connection string",
    ),
    ({"sms": 1}, "sms_bridge.sms: unknown key"),
]


@pytest.mark.parametrize(("bridge", "message"), CASES)
def test_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, taken: str, bridge: dict[str, object], message: str
) -> None:
    path = write_config(tmp_path, API, listen_address=taken, **bridge)
    code, output = _run("--config", path)
    assert code == 2
    assert output.count("\n") == 1
    assert output.startswith(f"boxoffice: {path}: {message}")
    assert "s3cret" not in output


def test_flags_and_environment_name_themselves_in_errors(tmp_path: Path, taken: str) -> None:
    path = write_config(tmp_path, API, listen_address=taken)
    code, output = _run("--config", path, "--web.listen-address", "nowhere")
    assert (code, output) == (
        2,
        "boxoffice: flag --web.listen-address: must be [host]:port like :9798 or 127.0.0.1:9798, got 'nowhere'\n",
    )
    code, output = _run("--config", path, env={"BOXOFFICE_SMS_BRIDGE_MAX_SEGMENTS": "0"})
    assert (code, output) == (
        2,
        "boxoffice: environment variable BOXOFFICE_SMS_BRIDGE_MAX_SEGMENTS: must be between 1 and 10, got 0\n",
    )


def test_an_unreachable_postgresql_store_exits_1_without_its_password(
    tmp_path: Path, taken: str
) -> None:
    dsn = "postgresql://bridge:s3cret-pw@127.0.0.1:1/sms?connect_timeout=1"
    code, output = _run(
        "--config", write_config(tmp_path, API, store_dsn=dsn, listen_address=taken)
    )
    assert code == 1
    assert output.startswith("boxoffice: cannot use the PostgreSQL store: ")
    assert "s3cret-pw" not in output


def test_a_taken_address_exits_1(tmp_path: Path, taken: str) -> None:
    code, output = _run("--config", write_config(tmp_path, API, listen_address=taken))
    assert code == 1
    assert output.startswith(f"boxoffice: cannot serve on {taken}: ")


def test_help_names_the_command() -> None:
    code, output = _run("--help")
    assert code == 0
    assert "/alerts/<group>" in output
    assert "--unauthenticated" in output
    assert "--dry-run" in output


def test_groups_come_from_the_environment_when_the_file_has_none(tmp_path: Path) -> None:
    """Issue 16 item 8: BOXOFFICE_SMS_BRIDGE_GROUPS is a YAML/JSON mapping, like the key."""
    path = write_config(tmp_path, API, groups=None)
    env = {"BOXOFFICE_SMS_BRIDGE_GROUPS": '{"oncall": ["+14155550101", "+14155550102"]}'}
    config = load_bridge_config(path, env=env)
    assert config.groups == {"oncall": ("+14155550101", "+14155550102")}
    # The environment wins over the file, as for every other key.
    path = write_config(tmp_path, API, groups={"file": ["+14155550109"]})
    env = {"BOXOFFICE_SMS_BRIDGE_GROUPS": "{pager: ['+14155550103']}"}
    assert load_bridge_config(path, env=env).groups == {"pager": ("+14155550103",)}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{oncall: [+14155550101]}", "must be a string"),  # unquoted: YAML reads a number
        ('{"oncall": ["4155550101"]}', "must be an E.164 number like +14155552671"),
        ("oncall", "must be a mapping"),
        ("{oncall: [", "must be a mapping"),
        ("{}", "name at least one group of recipients"),
    ],
)
def test_bad_groups_in_the_environment_exit_2_naming_the_variable(
    tmp_path: Path, taken: str, value: str, reason: str
) -> None:
    path = write_config(tmp_path, API, listen_address=taken, groups=None)
    code, output = _run("--config", path, env={"BOXOFFICE_SMS_BRIDGE_GROUPS": value})
    assert code == 2, output
    assert output.count("\n") == 1
    assert output.startswith("boxoffice: environment variable BOXOFFICE_SMS_BRIDGE_GROUPS"), output
    assert reason in output
