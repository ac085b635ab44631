"""A real Prometheus (the Debian binary) for tests: temp dir, 127.0.0.1, bounded waits.

History a fresh server cannot have (yesterday's hours, last week's revenue) is written as
OpenMetrics and turned into TSDB blocks with ``promtool tsdb create-blocks-from openmetrics``
before the server starts, the way a user backfills.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.exporter import free_port, stop_process, wait_for


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One historical sample: metric name, labels, value, Unix time in seconds."""

    name: str
    labels: dict[str, str]
    value: float
    at: float


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not installed (scripts/test.sh installs Debian's prometheus)")
    return path


def openmetrics(samples: Iterable[Sample]) -> str:
    """Samples as OpenMetrics text: one family at a time, each series in time order."""
    by_series: dict[tuple[str, tuple[tuple[str, str], ...]], list[Sample]] = {}
    for sample in samples:
        by_series.setdefault((sample.name, tuple(sorted(sample.labels.items()))), []).append(sample)
    lines: list[str] = []
    family = None
    for (name, labels), series in sorted(by_series.items()):
        if name != family:
            lines.append(f"# TYPE {name} unknown")
            family = name
        text = ",".join(f'{k}="{v}"' for k, v in labels)
        selector = f"{name}{{{text}}}" if text else name
        lines += [f"{selector} {s.value!r} {s.at:.3f}" for s in sorted(series, key=lambda s: s.at)]
    return "\n".join([*lines, "# EOF"]) + "\n"


def backfill(samples: Iterable[Sample], data_dir: Path) -> None:
    """Write ``samples`` as TSDB blocks into ``data_dir`` (Prometheus' storage path)."""
    source = data_dir.parent / "history.om"
    source.write_text(openmetrics(samples))
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            _binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(source),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[str]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now; the result vector (or matrix/scalar as a list)."""
        response = requests.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=30)
        body = response.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"value": result}]
        return list(result)


@contextmanager
def running_prometheus(
    tmp: Path,
    scrape: dict[str, str | list[str]],
    rule_files: list[str],
    *,
    interval: str = "1s",
    alertmanagers: tuple[str, ...] = (),
    external_labels: dict[str, str] | None = None,
    alert_relabel_configs: list[dict[str, Any]] | None = None,
    port: int | None = None,
    remote_write: str | None = None,
    resend_delay: str = "1s",
) -> Iterator[Prometheus]:
    """Start Prometheus scraping ``{job: "host:port"}`` (or a list of targets) and evaluating
    ``rule_files``; alerts go to ``alertmanagers`` ("host:port"), resent every second while
    firing. ``external_labels`` and ``alert_relabel_configs`` as in prometheus.yml (an HA
    pair: each server its replica label, dropped from the alerts it sends). With
    ``remote_write`` (a URL) every sample is also sent there, batched for at most a second,
    carrying ``external_labels`` (a shop of a global view: its scope label). A firing alert
    is valid for four times the larger of ``resend_delay`` and the interval: an Alertmanager
    that hears nothing for that long resolves it."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [target] if isinstance(target, str) else target}],
            }
            for job, target in scrape.items()
        ],
    }
    if external_labels:
        config["global"]["external_labels"] = external_labels
    if remote_write:
        config["remote_write"] = [
            {"url": remote_write, "queue_config": {"batch_send_deadline": "1s"}}
        ]
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
        if alert_relabel_configs:
            config["alerting"]["alert_relabel_configs"] = alert_relabel_configs
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port or free_port()
    log = (tmp / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            _binary("prometheus"),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
            f"--rules.alert.resend-delay={resend_delay}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError((tmp / "prometheus.log").read_text()[-3000:])
            try:
                return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=30, interval=0.2)
        yield Prometheus(url, process)
    finally:
        stop_process(process)
        log.close()
