"""Child processes of the demo (Prometheus and Alertmanager): each one
started on 127.0.0.1 with its log in the demo's directory, waited for with a bound, and
terminated (then killed) in reverse order on exit."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests
import yaml


class SupervisorError(RuntimeError):
    """A child could not be started (one line, with the end of its log)."""


@dataclass(kw_only=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    url: str


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Supervisor:
    def __init__(self, directory: Path, echo: Callable[[str], None]) -> None:
        self.directory = directory
        self.echo = echo
        self.children: list[Child] = []

    def start(
        self, name: str, argv: Sequence[str], url: str, ready_path: str, timeout: float = 30.0
    ) -> Child:
        """Run ``argv``; return once ``url + ready_path`` answers 200 (SupervisorError if not)."""
        log_path = self.directory / f"{name}.log"
        log = log_path.open("wb")
        # argv is a binary found on PATH and arguments the demo wrote itself.
        process = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        child = Child(name=name, process=process, log_path=log_path, log=log, url=url)
        self.children.append(child)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if requests.get(url + ready_path, timeout=1).status_code == 200:
                    self.echo(f"{name} ready: {url}")
                    return child
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self._stop(child)
        self.children.remove(child)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        why = "exited" if process.returncode not in (None, -15) else f"not ready in {timeout:g}s"
        raise SupervisorError(f"{name} {why}: {tail[0]} (log: {log_path})")

    def stop_all(self, timeout: float = 10.0) -> None:
        """Terminate every child, newest first; kill what does not stop within ``timeout``."""
        while self.children:
            child = self.children.pop()
            self._stop(child, timeout)
            self.echo(f"{child.name} stopped")

    def stop(self, child: Child, timeout: float = 10.0) -> None:
        """Terminate one child (killed past ``timeout``)."""
        if child in self.children:
            self.children.remove(child)
        self._stop(child, timeout)
        self.echo(f"{child.name} stopped")

    @staticmethod
    def _stop(child: Child, timeout: float = 10.0) -> None:
        if child.process.poll() is None:
            child.process.terminate()
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout)
        child.log.close()


def prometheus_config(
    target: str, rule_files: Sequence[Path], interval: str, alertmanager: str | None = None
) -> dict[str, Any]:
    """Scrape the exporter as job ``boxoffice``, evaluate ``rule_files`` every ``interval``
    and send alerts to the Alertmanager at ``alertmanager`` (host:port) when given."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": "boxoffice", "static_configs": [{"targets": [target]}]}],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def write_prometheus_config(
    directory: Path,
    target: str,
    rule_files: Sequence[Path],
    interval: str = "1s",
    alertmanager: str | None = None,
) -> Path:
    """Write prometheus.yml into ``directory``; return its path."""
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(target, rule_files, interval, alertmanager)))
    return config


def start_prometheus(
    supervisor: Supervisor,
    target: str,
    rule_files: Sequence[Path],
    *,
    listen: str | None = None,
    interval: str = "1s",
    alertmanager: str | None = None,
) -> Child:
    """Start the ``prometheus`` on PATH with its data in the supervisor's directory; it
    reloads its configuration on ``POST /-/reload`` (it listens on 127.0.0.1 only)."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise SupervisorError("prometheus is not on PATH")
    listen = listen or f"127.0.0.1:{free_port()}"
    config = write_prometheus_config(
        supervisor.directory, target, rule_files, interval, alertmanager
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={supervisor.directory / 'prometheus-data'}",
        f"--web.listen-address={listen}",
        "--storage.tsdb.retention.time=1d",
        "--web.enable-lifecycle",
        # Firing alerts are re-sent every second, as the demo's compressed clock needs: the
        # default minute would leave Alertmanager without the Watchdog (the bridge's
        # heartbeat) after a send dropped while Prometheus was still finding Alertmanager.
        "--rules.alert.resend-delay=1s",
    ]
    return supervisor.start("prometheus", argv, f"http://{listen}", "/-/ready")
