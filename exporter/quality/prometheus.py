"""A throwaway Prometheus over backfilled blocks: start it, query it, feed it more blocks.

This is the benchmark's only contact with the outside world (the ``prometheus`` and
``promtool`` binaries, a loopback port); everything it returns is plain data.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import requests

Labels = tuple[tuple[str, str], ...]
Matrix = dict[Labels, list[tuple[float, float]]]


class PrometheusError(RuntimeError):
    """Prometheus or promtool refused something; the message carries their words."""


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PrometheusError(f"{name} not found on PATH (Debian's prometheus package has it)")
    return path


def backfill(lines: Iterable[str], work: Path, data_dir: Path) -> None:
    """Write OpenMetrics ``lines`` to a file and turn them into blocks inside ``data_dir``."""
    source = work / "backfill.om"
    with source.open("w") as handle:
        handle.writelines(lines)
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(  # noqa: S603 - our own arguments, no shell
        [
            binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(source),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    source.unlink()
    if done.returncode != 0:
        raise PrometheusError(done.stderr[-2000:] or done.stdout[-2000:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``prometheus`` serving ``data_dir`` on 127.0.0.1, with no scrapes and no rules."""

    def __init__(self, data_dir: Path, *, lookback_s: int, timeout_s: float = 60) -> None:
        self.data_dir = data_dir
        self.lookback_s = lookback_s
        self.timeout_s = timeout_s
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        config = self.data_dir.parent / "prometheus.yml"
        config.write_text("global: {}\n")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (self.data_dir.parent / "prometheus.log").open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                "--storage.tsdb.retention.time=3650d",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--query.lookback-delta={self.lookback_s}s",
                "--query.max-samples=200000000",
                "--query.timeout=10m",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(self._log_tail())
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise PrometheusError(f"not ready after {self.timeout_s}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return (self.data_dir.parent / "prometheus.log").read_text(errors="replace")[-2000:]

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)
        self._process = None

    def query_range(self, expr: str, start: float, end: float, step: int) -> Matrix:
        """Each series of ``expr`` evaluated at ``start, start+step, … ≤ end``."""
        response = requests.post(
            f"{self.url}/api/v1/query_range",
            data={"query": expr, "start": start, "end": end, "step": step},
            timeout=900,
        )
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('error')}: {expr[:200]}")
        matrix: Matrix = {}
        for series in body["data"]["result"]:
            labels = tuple(sorted(series["metric"].items()))
            matrix[labels] = [(float(t), float(v)) for t, v in series["values"]]
        return matrix
