"""VictoriaMetrics single-node and vmalert (Debian's `victoria-metrics`) for tests.

The long-term store of a global view: each shop's Prometheus sends to it by remote_write
(``/api/v1/write``), Grafana and vmalert read it through its Prometheus query API, and
vmalert evaluates the generated rules on it, writing recorded series and the ``ALERTS``
series back. Everything listens on 127.0.0.1 under a temporary directory; every wait is
bounded.

Debian's vmalert (1.79) does not know ``keep_firing_for`` (later releases do) and refuses a
rule file that carries it; docs/global-view.md says how a seller on that version turns it
off in thresholds.yaml, and tests/test_global_view.py does the same.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.exporter import free_port, stop_process, wait_for

# Fresh samples are visible to queries at once (the default hides the last 30 s, for
# stores whose writers lag); the response cache is off, so a test never reads an old answer.
VICTORIA_FLAGS = ("-search.latencyOffset=1s", "-search.disableCache", "-loggerLevel=WARN")


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not installed (scripts/test.sh installs victoria-metrics)")
    return path


def dry_run(rule_files: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
    """``vmalert -dryRun``: parse the rule files, their MetricsQL and templates; no server.
    Its log (the reason of a refusal) is the result's stdout."""
    return subprocess.run(
        [binary("vmalert"), "-dryRun", "-loggerLevel=ERROR", *(f"-rule={p}" for p in rule_files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Store:
    """A running VictoriaMetrics (or vmalert): its URL and its Prometheus-style query API."""

    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now; the result vector."""
        response = requests.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=30)
        body = response.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """vmalert's alerts (pending and firing), as its /api/v1/alerts lists them."""
        response = requests.get(f"{self.url}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["alerts"])

    def rule_errors(self) -> dict[str, str]:
        """vmalert's rules not evaluated yet or whose last evaluation failed:
        ``group/name`` -> why."""
        response = requests.get(f"{self.url}/api/v1/rules", timeout=5)
        response.raise_for_status()
        out = {}
        for group in response.json()["data"]["groups"]:
            for rule in group["rules"]:
                key = f"{group['name']}/{rule['name']}"
                if rule.get("lastError"):
                    out[key] = rule["lastError"]
                elif str(rule.get("lastEvaluation", "0001")).startswith("0001"):
                    out[key] = "not evaluated yet"
        return out


@contextmanager
def _serving(name: str, args: list[str], workdir: Path, port: int) -> Iterator[Store]:
    """Run ``name`` with ``args`` until it answers /health (bounded); stop it afterwards."""
    log_path = workdir / f"{name}.log"
    log = log_path.open("w")
    process = subprocess.Popen([binary(name), *args], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited: {log_path.read_text()[-3000:]}")
            try:
                return requests.get(f"{url}/health", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=30, interval=0.2)
        yield Store(url)
    finally:
        stop_process(process)
        log.close()


@contextmanager
def running_victoria(workdir: Path) -> Iterator[Store]:
    """A single-node VictoriaMetrics on 127.0.0.1 storing under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        f"-storageDataPath={workdir / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=1d",
        *VICTORIA_FLAGS,
    ]
    with _serving("victoria-metrics", args, workdir, port) as store:
        yield store


@contextmanager
def running_vmalert(
    workdir: Path,
    rule_files: Sequence[str | Path],
    *,
    store: str,
    alertmanager: str,
    interval: str = "1s",
) -> Iterator[Store]:
    """vmalert evaluating ``rule_files`` every ``interval`` on ``store`` (reads, writes back
    recorded series and alert state, restores state from it), alerting ``alertmanager``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        *(f"-rule={p}" for p in rule_files),
        f"-datasource.url={store}",
        f"-remoteWrite.url={store}",
        f"-remoteRead.url={store}",
        f"-notifier.url={alertmanager}",
        f"-evaluationInterval={interval}",
        f"-httpListenAddr=127.0.0.1:{port}",
        # Recorded series and ALERTS reach the store within a second, so rules that read
        # other rules' output (the escalation tiers, hold-while-blind) see it the next round.
        "-remoteWrite.flushInterval=500ms",
        "-rule.resendDelay=1s",
        # Alerts and ALERTS carry the rule's labels only, as Prometheus writes them: the
        # hold-while-blind branch of every alert reads ALERTS back and must find the same
        # labels as the alert itself (vmalert would add `alertgroup`).
        "-disableAlertgroupLabel",
        "-loggerLevel=WARN",
    ]
    with _serving("vmalert", args, workdir, port) as running:
        yield running
