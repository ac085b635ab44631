"""Hostile or careless configuration input: each case is one line naming where, and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config

DSN = "postgresql://nobody@127.0.0.1:9/none"


def _load_file(tmp_path: Path, text: str, **env: str) -> ConfigError:
    path = tmp_path / "boxoffice.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env={"BOXOFFICE_DSN": DSN, **env})
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("web: " + "[" * 1500 + "]" * 1500 + "\n", "line 1", "nested deeper than"),
        ("web:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 1200)), "line", "nested"),
        ("sources: {postgres: {max_rows_per_query: " + "9" * 5000 + "}}\n", "line 1", "digits"),
        ("sources: {postgres: {max_rows_per_query: 100000000000000000}}\n", "", "at most"),
        ("sources: {postgres: {interval: 10000000000000h}}\n", "", "at most 366d"),
        ("sources: {postgres: {interval: .inf}}\n", "", "at most 366d"),
        ("sources: {postgres: {max_series_per_metric: .nan}}\n", "", "integer"),
        ("web: {telemetry_path: /}\n", "web.telemetry_path", "landing page"),
        ("web: {telemetry_path: /healthz}\n", "web.telemetry_path", "health check"),
        ("web: {telemetry_path: '/me trics'}\n", "web.telemetry_path", "characters"),
        (
            "sources: {http: {targets: [{name: a, url: 'http://127.0.0.1/', "
            'headers: {X-A: "v\\r\\nX-Injected: 1"}}]}}\n',
            "sources.http.targets[0].headers",
            "control characters",
        ),
        (
            "sources: {http: {targets: [{name: a, url: 'http://127.0.0.1/', "
            'headers: {"X A": v}}]}}\n',
            "sources.http.targets[0].headers",
            "header name",
        ),
    ],
)
def test_hostile_file_input_is_one_line(tmp_path: Path, text: str, where: str, reason: str) -> None:
    error = _load_file(tmp_path, text)
    assert error.source == str(tmp_path / "boxoffice.yml")
    assert where in error.path
    assert reason in error.reason


def test_errors_in_an_environment_variable_are_blamed_on_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            env={
                "BOXOFFICE_DSN": DSN,
                "BOXOFFICE_SOURCES_HTTP_TARGETS": "[{name: a, url: 'ftp://x'}]",
            },
        )
    assert str(caught.value).startswith(
        "environment variable BOXOFFICE_SOURCES_HTTP_TARGETS: [0].url: must be an http(s) URL"
    )


def test_deep_nesting_in_an_environment_variable_is_blamed_on_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            env={"BOXOFFICE_DSN": DSN, "BOXOFFICE_SOURCES_HTTP_TARGETS": "[" * 2000 + "]" * 2000},
        )
    assert str(caught.value).startswith("environment variable BOXOFFICE_SOURCES_HTTP_TARGETS: ")
    assert "nested deeper than" in str(caught.value)


def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "boxoffice.yml"
    path.write_text("web: " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"BOXOFFICE_DSN": DSN, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1
    assert "nested deeper than" in done.stderr


LAUGHS = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 45))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("? []\n: 1\n", "mapping keys must be plain values"),
        ("web: {{ $value }}\n", "mapping keys must be plain values"),
        ("web: &w [*w]\n", "an alias refers to a node that contains it"),
        (LAUGHS, "more than 100000 values once aliases are expanded"),
        ('? "a\\nb"\n: 1\n', "unknown key"),
    ],
)
def test_yaml_shapes_found_by_fuzzing_are_one_line(tmp_path: Path, text: str, reason: str) -> None:
    """Found by tests/test_fuzz_config.py: each was a traceback or a hang, or two lines."""
    error = _load_file(tmp_path, text)
    assert reason in error.reason
    assert "\n" not in str(error)
