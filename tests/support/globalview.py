"""Many shops into one long-term store, for the global-view test (docs/global-view.md).

A shop here is what one seller runs: its own PostgreSQL database, two ``boxoffice serve``
processes on it (replicas: the same facts, scraped twice) and its own Prometheus scraping
both, labelling everything it sends with ``external_labels`` (the scope label, e.g.
``seller: a``) and sending it to the shared store by remote_write.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.support.exporter import free_port, wait_for
from tests.support.prometheus import Prometheus, running_prometheus

EXPORTER_JOB = "boxoffice"  # matches thresholds.yaml's exporter_job (boxoffice.*)


@contextmanager
def scratch_databases(server: str, count: int) -> Iterator[list[str]]:
    """``count`` new empty databases on ``server`` (an admin DSN), dropped afterwards: the
    module-scoped twin of tests/conftest.py's ``new_database``."""
    names = [f"boxoffice_test_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    try:
        with psycopg.connect(server, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield [make_conninfo(server, dbname=name) for name in names]
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            for name in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@contextmanager
def serving_exporters(dsn: str, workdirs: list[Path]) -> Iterator[tuple[str, ...]]:
    """One ``boxoffice serve`` process on ``dsn`` per directory (replicas), each on a free
    port; yields their URLs once every one has collected from PostgreSQL (bounded, all
    started at once), stops them afterwards."""
    started: list[tuple[subprocess.Popen[str], str, Path]] = []
    try:
        for workdir in workdirs:
            workdir.mkdir(parents=True, exist_ok=True)
            port = free_port()
            env = {
                **os.environ,
                "BOXOFFICE_DSN": dsn,
                "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
                "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "1s",
                "BOXOFFICE_SOURCES_POSTGRES_TIMEOUT": "1s",
                "BOXOFFICE_DATABASES_DEFAULT_CONNECT_TIMEOUT": "2s",
            }
            log_path = workdir / "serve.log"
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "exporter", "serve"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            started.append((process, f"http://127.0.0.1:{port}", log_path))
        wait_for(lambda: all(_collected(*one) for one in started), timeout=60, interval=0.25)
        yield tuple(url for _process, url, _log in started)
    finally:
        for process, _url, _log in started:
            process.terminate()
        for process, _url, _log in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _collected(process: subprocess.Popen[str], url: str, log_path: Path) -> bool:
    """Whether the exporter at ``url`` serves its first PostgreSQL collection."""
    if process.poll() is not None:
        raise AssertionError(f"boxoffice serve exited: {log_path.read_text()[-2000:]}")
    try:
        text = requests.get(f"{url}/metrics", timeout=2).text
    except requests.RequestException:
        return False
    return 'boxoffice_source_up{source="postgres"} 1.0' in text


@dataclass(frozen=True)
class Shop:
    """One running shop: its scope value, database, exporter replicas and Prometheus."""

    name: str
    dsn: str
    exporters: tuple[str, ...]
    prometheus: Prometheus


@contextmanager
def running_shop(
    name: str, dsn: str, workdir: Path, *, scope: dict[str, str], store: str, replicas: int = 2
) -> Iterator[Shop]:
    """``replicas`` exporters on ``dsn`` and a Prometheus scraping them every second, sending
    every sample to ``store``'s remote-write endpoint labelled with ``scope``."""
    with ExitStack() as stack:
        urls = stack.enter_context(
            serving_exporters(dsn, [workdir / f"exporter-{i}" for i in range(replicas)])
        )
        prometheus_dir = workdir / "prometheus"
        prometheus_dir.mkdir(parents=True, exist_ok=True)
        prometheus = stack.enter_context(
            running_prometheus(
                prometheus_dir,
                {EXPORTER_JOB: [u.removeprefix("http://") for u in urls]},
                [],
                external_labels=scope,
                remote_write=f"{store}/api/v1/write",
            )
        )
        yield Shop(name, dsn, urls, prometheus)
