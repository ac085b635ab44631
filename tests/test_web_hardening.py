"""The web server under hostile or careless input (issue 16): request framing, bcrypt costs,
slow clients and connection caps, web config files. Real sockets on 127.0.0.1."""

from __future__ import annotations

import email.message
import socket
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.web.framing import framing_problem
from exporter.web.server import ExporterHTTPServer
from exporter.web.webconfig import WebConfig

Serve = Callable[..., str]


def _headers(*fields: tuple[str, str]) -> email.message.Message:
    message = email.message.Message()
    for name, value in fields:
        message[name] = value
    return message


FRAMING = [
    # header fields, HTTP version, the problem (None: fine)
    ((), "HTTP/1.1", None),
    ((("Content-Length", "12"),), "HTTP/1.1", None),
    ((("Content-Length", "0"),), "HTTP/1.0", None),
    ((("Transfer-Encoding", "chunked"),), "HTTP/1.1", None),
    ((("Transfer-Encoding", "gzip, Chunked"),), "HTTP/1.1", None),
    ((("Content-Length", "12"), ("Content-Length", "12")), "HTTP/1.1", "more than one"),
    ((("Content-Length", "12"), ("Content-Length", "13")), "HTTP/1.1", "more than one"),
    ((("Content-Length", "12, 12"),), "HTTP/1.1", "not a number"),
    ((("Content-Length", "+12"),), "HTTP/1.1", "not a number"),
    ((("Content-Length", "-1"),), "HTTP/1.1", "not a number"),
    ((("Content-Length", "\uff11\uff12"),), "HTTP/1.1", "not a number"),  # full-width digits
    ((("Content-Length", ""),), "HTTP/1.1", "not a number"),
    (
        (("Content-Length", "5"), ("Transfer-Encoding", "chunked")),
        "HTTP/1.1",
        "both Transfer-Encoding and Content-Length",
    ),
    ((("Transfer-Encoding", "chunked, gzip"),), "HTTP/1.1", "chunked must be the last"),
    ((("Transfer-Encoding", "identity"),), "HTTP/1.1", "chunked must be the last"),
    ((("Transfer-Encoding", "chunked"),), "HTTP/1.0", "HTTP/1.0"),
    (
        (("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")),
        "HTTP/1.1",
        "chunked must be the last",
    ),
]


@pytest.mark.parametrize(("fields", "version", "problem"), FRAMING)
def test_framing_problem(
    fields: tuple[tuple[str, str], ...], version: str, problem: str | None
) -> None:
    found = framing_problem(_headers(*fields), version)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


class _Gauge:
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("boxoffice_test_up", "Always 1.", value=1)


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[ExporterHTTPServer] = []
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Gauge())  # type: ignore[arg-type]

    def start(web: WebConfig | None = None, **kwargs: object) -> str:
        server = ExporterHTTPServer(
            registry=registry,
            listen_address="127.0.0.1:0",
            web_config=web,
            **kwargs,  # type: ignore[arg-type]
        )
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.shutdown()


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def exchange(url: str, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or ``timeout``)."""
    answer = b""
    with socket.create_connection(host_port(url), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 0\r\nContent-Length: 0\r\n",
        b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 0, 0\r\n",
    ],
)
def test_the_exporter_answers_400_and_closes_on_ambiguous_framing(
    serve: Serve, framing: bytes
) -> None:
    url = serve()
    # A second request pipelined behind the first must never be served: the server closes.
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n"
    answer = exchange(url, request + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Connection: close" in answer
    assert answer.count(b"HTTP/1.1 ") == 1
