"""Run an exporter in-process on 127.0.0.1 and read its /metrics like Prometheus would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from exporter.app import Exporter, build_exporter, build_sources
from exporter.config import Config, load_config

T = TypeVar("T")
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def config_for(dsn: str, **env: str) -> Config:
    """A config for tests: the default database, fast intervals, anything else via env."""
    base = {
        "BOXOFFICE_DSN": dsn,
        "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "1s",
        "BOXOFFICE_SOURCES_POSTGRES_TIMEOUT": "1s",
        "BOXOFFICE_DATABASES_DEFAULT_CONNECT_TIMEOUT": "1s",
    }
    return load_config(None, env={**base, **env})


@contextmanager
def running_exporter(config: Config) -> Iterator[tuple[Exporter, str]]:
    """Start an exporter on a free port; yield it with its base URL; stop it afterwards."""
    exporter = build_exporter(config, None, build_sources(config), listen_address="127.0.0.1:0")
    exporter.start()
    try:
        yield exporter, exporter.server.url
    finally:
        exporter.stop()


def scrape(url: str, **kwargs: object) -> Series:
    """GET /metrics and parse it with prometheus_client's text parser."""
    response = requests.get(f"{url}/metrics", timeout=5, **kwargs)  # type: ignore[arg-type]
    response.raise_for_status()
    series: Series = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def value(series: Series, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the series is absent."""
    return series.get((name, frozenset(labels.items())))


def names(series: Series) -> set[str]:
    """The metric names present."""
    return {name for name, _labels in series}


def wait_for(check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; bounded in time. Returns that value."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
        time.sleep(interval)
        last = check()
    return last


def stop_process(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s; reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def via_proxy(dsn: str, port: int) -> str:
    """The same DSN, pointed at a proxy on 127.0.0.1:port."""
    params = conninfo_to_dict(dsn)
    params.update(host="127.0.0.1", port=str(port))
    return make_conninfo(**params)


def upstream_of(dsn: str) -> tuple[str, int] | str:
    """Where a DSN points: (host, port), or the unix socket path."""
    params: Mapping[str, object] = conninfo_to_dict(dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    port = int(str(params.get("port") or 5432))
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    return (host, port)


def scrape_until(
    url: str, check: Callable[[Series], object], *, timeout: float = 15.0, **kwargs: object
) -> Series:
    """Scrape repeatedly until ``check(series)`` is truthy (bounded); return that scrape."""
    found: list[Series] = []

    def attempt() -> bool:
        series = scrape(url, **kwargs)
        if check(series):
            found.append(series)
            return True
        return False

    wait_for(attempt, timeout=timeout)
    return found[-1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def boxoffice_script() -> str:
    """The installed console script, so these tests run the command exactly as users do."""
    script = Path(sys.executable).with_name("boxoffice")
    return str(script) if script.exists() else shutil.which("boxoffice") or "boxoffice"


def free_ipv6_port() -> int:
    """A TCP port on ::1 that nothing listens on right now; skips without IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
            return int(sock.getsockname()[1])
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")


def run_boxoffice(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the `boxoffice` command as a user would, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
