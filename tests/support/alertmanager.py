"""A real Alertmanager (Debian's prometheus-alertmanager) for tests: local, no cluster."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.demo.alerting import alertmanager_binary as installed_alertmanager
from exporter.generate.alertmanager.routing import Duration, Routing, Timings
from tests.support.exporter import free_port, stop_process, wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


def alertmanager_binary() -> str:
    path = installed_alertmanager()
    if path is None:
        pytest.fail("alertmanager not installed (scripts/test.sh installs prometheus-alertmanager)")
    return path


@contextmanager
def running_alertmanager(config: Path, workdir: Path, port: int | None = None) -> Iterator[str]:
    """Start Alertmanager on 127.0.0.1 (``port``, or an ephemeral one; clustering off);
    yield its URL. Started again on the same port and workdir, it keeps its storage."""
    port = port or free_port()
    storage = workdir / "data"
    storage.mkdir(exist_ok=True)
    log = (workdir / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            alertmanager_binary(),
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError((workdir / "alertmanager.log").read_text())
            try:
                return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout=20)
        yield url
    finally:
        stop_process(process)
        log.close()


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    response = requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=5)
    assert response.status_code == 200, response.text


def alert_states(url: str) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """Every alert Alertmanager holds, keyed by its sorted labels, with its status."""
    response = requests.get(f"{url}/api/v2/alerts", timeout=5)
    assert response.status_code == 200, response.text
    return {tuple(sorted(a["labels"].items())): a["status"] for a in response.json()}


def quiet_routing(routing: Routing) -> Routing:
    """``routing`` with the repository's templates and no notification within an hour."""
    timing = routing.file.timing
    held = {
        severity: dataclasses.replace(getattr(timing, severity), group_wait=Duration(3600))
        for severity in ("critical", "high", "medium", "low")
    }
    file = dataclasses.replace(
        routing.file,
        templates_dir=str(ROOT / "alertmanager" / "templates"),
        timing=Timings(**held),
    )
    return dataclasses.replace(routing, file=file)


def alert_payload(name: str, severity: str, category: str, **labels: str) -> dict[str, Any]:
    """One alert as Alertmanager's API v2 takes it, at escalation tier 1."""
    return {
        "labels": {
            "alertname": name,
            "severity": severity,
            "category": category,
            "escalation": "1",
            **labels,
        },
        "annotations": {"summary": f"{name} test", "description": "value 1"},
    }


def alert_key(alert: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(alert["labels"].items()))
