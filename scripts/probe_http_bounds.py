"""Re-run issue 16's HTTP attacks against the exporter's server on 127.0.0.1 and print figures.

    .venv/bin/python scripts/probe_http_bounds.py

1. 300 half-open requests: connection threads the server holds (the cap is 64).
2. Headers trickled a line every 0.5 s: seconds until the server hangs up (deadline 10 s).
3. /metrics scraped 20 times while those 300 clients keep trying: the slowest answer.
4. 500 sequential connects: how many took longer than 0.5 s (a SYN retry takes 1 s).
docs/security.md records the bounds; the numbers depend on the machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from exporter.web.server import ExporterHTTPServer


class _Up:
    def collect(self):  # type: ignore[no-untyped-def]
        yield GaugeMetricFamily("probe_up", "Always 1.", value=1)


def _threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "http-conn")


def _scrape(address: tuple[str, int]) -> float:
    started = time.monotonic()
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
    return time.monotonic() - started


def main() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Up())  # type: ignore[arg-type]
    server = ExporterHTTPServer(registry=registry, listen_address="127.0.0.1:0")
    server.start()
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    address = (host, int(port))
    try:
        half_open = []
        for _ in range(300):
            sock = socket.create_connection(address, timeout=10)
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            half_open.append(sock)
        time.sleep(1.0)
        print(f"300 half-open requests: {_threads()} connection threads (cap 64)")
        slowest = max(_scrape(address) for _ in range(20))
        print(f"/metrics with 300 slow clients connected: slowest of 20 scrapes {slowest:.3f}s")
        for sock in half_open:
            sock.close()

        with socket.create_connection(address, timeout=30) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            started, cut = time.monotonic(), False
            for _ in range(60):  # 30 s at most
                try:
                    sock.sendall(b"X-Slow: y\r\n")
                    sock.settimeout(0.5)
                    sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    pass
                cut = True
                break
            took = time.monotonic() - started
            shown = f"cut after {took:.1f}s" if cut else f"still open after {took:.1f}s"
            print(f"headers trickled a line per 0.5s: {shown}")

        times = []
        for _ in range(500):
            started = time.monotonic()
            with contextlib.closing(socket.create_connection(address, timeout=5)):
                pass
            times.append(time.monotonic() - started)
        slow = sum(t > 0.5 for t in times)
        print(f"500 sequential connects: {slow} took over 0.5s, slowest {max(times):.3f}s")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
