"""Fuzzing every configuration parser: any input is a valid result or one ConfigError line.

Three strategies per file: arbitrary text, arbitrary YAML data, and the shipped file with
one value anywhere in it replaced by a hostile one (quotes, newlines, template delimiters,
huge or non-finite numbers, deep nesting). Derandomized, so CI sees the same cases each run.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import ConfigError, load_config
from exporter.generate.alertmanager.routing_load import load_routing
from exporter.generate.thresholds import load_thresholds
from exporter.smsbridge.config import load_bridge_config
from exporter.web.webconfig import load_web_config

ROOT = Path(__file__).parent.parent
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

HOSTILE_STRINGS = st.sampled_from(
    [
        'pay"ments',
        "pay\nments",
        "a\r\nb",
        "{{ $value }}",
        "}}",
        "javascript:alert(1)",
        "https://x/{{ .x }}",
        "\\",
        "",
        " ",
        "10000000000000h",
        "-5m",
        "\udcff",
        "x" * 5000,
        "/",
        "/healthz",
        "SELECT 1; INSERT INTO t VALUES (1)",
    ]
)
HOSTILE_SCALARS = st.one_of(
    HOSTILE_STRINGS,
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**40, float("inf"), float("nan"), -0.0, 1e308, True, None]),
    st.floats(allow_nan=True, allow_infinity=True),
)
YAML_DATA = st.recursive(
    HOSTILE_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(HOSTILE_STRINGS, st.text(max_size=12)), inner, max_size=4),
    ),
    max_leaves=20,
)


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _leaves(value, (*path, index))
    return found


def _replace(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def _dump(data: Any) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=False)
    except (yaml.YAMLError, ValueError):
        return "x: 1\n"


def _deep(levels: int, flow: bool) -> str:
    if flow:
        return "k: " + "[" * levels + "]" * levels + "\n"
    return "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "v\n"


TEXTS = st.one_of(
    st.text(max_size=200),
    YAML_DATA.map(_dump),
    st.builds(_deep, st.integers(min_value=50, max_value=1500), st.booleans()),
    st.sampled_from(
        [
            "x: " + "9" * 5000 + "\n",
            "a: &a [*a]\n",
            "? [a]\n: b\n",
            "--- !!python/object:os.system\n",
        ]
    ),
)


def _mutants(shipped: Path | dict[str, Any]) -> st.SearchStrategy[str]:
    base = yaml.safe_load(shipped.read_text()) if isinstance(shipped, Path) else shipped
    paths = _leaves(base)
    return st.builds(
        lambda path, value: _dump(_replace(base, path, value)),
        st.sampled_from(paths),
        st.one_of(HOSTILE_SCALARS, YAML_DATA),
    )


def _holds(load: Callable[[str], object], text: str) -> None:
    """``load`` returns, or raises one ConfigError line; anything else fails the test."""
    with tempfile.TemporaryDirectory(prefix="boxoffice-fuzz-") as tmp:
        path = Path(tmp) / "input.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load(str(path))
        except ConfigError as exc:
            line = str(exc)
            assert line and "\n" not in line and "\r" not in line, line
            assert len(line) < 20000


def _config(path: str) -> object:
    return load_config(path, env={"BOXOFFICE_DSN": "postgresql://nobody@127.0.0.1:9/x"})


@FUZZ
@given(st.one_of(TEXTS, _mutants(ROOT / "boxoffice.example.yml")))
def test_config_loader_never_tracebacks(text: str) -> None:
    _holds(_config, text)


@FUZZ
@given(st.one_of(TEXTS, _mutants(ROOT / "rules" / "thresholds.yaml")))
def test_thresholds_loader_never_tracebacks(text: str) -> None:
    _holds(load_thresholds, text)


@FUZZ
@given(st.one_of(TEXTS, _mutants(ROOT / "alertmanager" / "routing.yaml")))
def test_routing_loader_never_tracebacks(text: str) -> None:
    _holds(load_routing, text)


@FUZZ
@given(
    st.sampled_from(
        [
            "BOXOFFICE_SOURCES_HTTP_TARGETS",
            "BOXOFFICE_SOURCES_POSTGRES_INTERVAL",
            "BOXOFFICE_SOURCES_POSTGRES_MAX_ROWS_PER_QUERY",
            "BOXOFFICE_WEB_TELEMETRY_PATH",
            "BOXOFFICE_METRICS_BOXOFFICE_REVENUE_TOTAL_SQL",
            "BOXOFFICE_SMS_BRIDGE_GROUPS",
        ]
    ),
    st.one_of(HOSTILE_STRINGS, st.text(max_size=80), YAML_DATA.map(_dump), TEXTS),
)
def test_environment_values_never_traceback(name: str, value: str) -> None:
    env = {"BOXOFFICE_DSN": "postgresql://nobody@127.0.0.1:9/x", name: value}
    try:
        load_config(None, env=env)
    except ConfigError as exc:
        assert "\n" not in str(exc)


# An exporter-toolkit web config using every section (the files it names do not exist, so the
# unmutated file is itself a one-line error: a missing certificate).
WEB_CONFIG: dict[str, Any] = {
    "tls_server_config": {
        "cert_file": "server.crt",
        "key_file": "server.key",
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": "ca.crt",
        "min_version": "TLS12",
    },
    "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
    "basic_auth_users": {"prometheus": "$2b$04$" + "a" * 53},
}


@FUZZ
@given(
    st.one_of(
        TEXTS, _mutants(WEB_CONFIG), _mutants({"basic_auth_users": WEB_CONFIG["basic_auth_users"]})
    )
)
def test_web_config_loader_never_tracebacks(text: str) -> None:
    _holds(load_web_config, text)


@FUZZ
@given(st.one_of(TEXTS, _mutants(ROOT / "docker" / "sms-bridge.yml")))
def test_sms_bridge_config_loader_never_tracebacks(text: str) -> None:
    _holds(lambda path: load_bridge_config(path, env={}), text)
