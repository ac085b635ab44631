"""The HTTP server and its exporter-toolkit web config, with real clients and a real Prometheus."""

from __future__ import annotations

import base64
import gzip
import http.client
import logging
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ConfigError
from exporter.config.listen import parse_listen_address
from exporter.web.auth import BasicAuth
from exporter.web.encoding import accepts_gzip
from exporter.web.server import ExporterHTTPServer
from exporter.web.tls import client_san_allowed
from exporter.web.webconfig import WebConfig, load_web_config
from tests.support.certs import Pki, make_pki
from tests.support.exporter import (
    boxoffice_script,
    free_ipv6_port,
    free_port,
    run_boxoffice,
    wait_for,
)

PASSWORD = "correct horse battery staple"
Serve = Callable[..., str]


def _hash(password: str = PASSWORD, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class _TicketsCollector:
    """A fixed snapshot, as the exporter's own collectors hand out."""

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("boxoffice_test_available", "Tickets left.", labels=["city"])
        gauge.add_metric(["Austin"], 3)
        yield gauge
        yield CounterMetricFamily("boxoffice_test_sold", "Tickets sold.", value=42)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_TicketsCollector())  # type: ignore[arg-type]
    return registry


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def serve(registry: CollectorRegistry) -> Iterator[Serve]:
    servers: list[ExporterHTTPServer] = []

    def start(web: WebConfig | None = None) -> str:
        server = ExporterHTTPServer(
            registry=registry,
            listen_address="127.0.0.1:0",
            web_config=web,
            landing_page=lambda: "<h1>landing</h1>",
        )
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.shutdown()


def _web(directory: Path, text: str) -> WebConfig:
    path = directory / "web.yml"
    path.write_text(text)
    return load_web_config(str(path))


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _client_context(
    pki: Pki, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(pki.ca_cert))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _tls_get(url: str, context: ssl.SSLContext, path: str = "/healthz") -> tuple[int, str]:
    """Status and negotiated cipher of one HTTPS request; TLS refusals raise."""
    host, port = _host_port(url)
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert conn.sock is not None
        return response.status, conn.sock.cipher()[0]
    finally:
        conn.close()


# --- pure functions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        (":9798", ("", 9798)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("0.0.0.0:9798", ("0.0.0.0", 9798)),
        ("[::1]:9798", ("::1", 9798)),
        ("[::]:9798", ("::", 9798)),
        ("localhost:80", ("localhost", 80)),
        ("exporter.internal:65535", ("exporter.internal", 65535)),
    ],
)
def test_listen_address(address: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("9798", "must be [host]:port like :9798 or 127.0.0.1:9798, got '9798'"),
        ("", "must be [host]:port like :9798 or 127.0.0.1:9798, got ''"),
        (":http", "must be [host]:port like :9798 or 127.0.0.1:9798, got ':http'"),
        ("host:", "must be [host]:port like :9798 or 127.0.0.1:9798, got 'host:'"),
        ("host:99999", "must be [host]:port like :9798 or 127.0.0.1:9798, got 'host:99999'"),
        ("host:-1", "must be [host]:port like :9798 or 127.0.0.1:9798, got 'host:-1'"),
        # Fullwidth digits pass str.isdigit() and int(); a port is ASCII.
        (":\uff19\uff17", "must be [host]:port like :9798 or 127.0.0.1:9798, got ':\uff19\uff17'"),
        ("[::1]", "must be [host]:port like :9798 or 127.0.0.1:9798, got '[::1]'"),
        ("::1:9798", "IPv6 hosts are written in brackets like [::1]:9798, got '::1:9798'"),
        ("[::1:9798", "IPv6 hosts are written in brackets like [::1]:9798, got '[::1:9798'"),
        ("[localhost]:80", "brackets are for IPv6 hosts like [::1]:9798, got '[localhost]:80'"),
        ("my host:80", "must not contain spaces, got 'my host:80'"),
    ],
)
def test_bad_listen_address(address: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_listen_address(address)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=junk", False),
        ("identity", False),
        ("", False),
        ("x-gzip", False),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@pytest.mark.parametrize(
    ("sans", "allowed", "expected"),
    [
        ((("DNS", "prometheus.example"),), ["prometheus.example"], True),
        ((("DNS", "other.example"),), ["prometheus.example"], False),
        ((("IP Address", "0:0:0:0:0:0:0:1\n"),), ["::1"], True),
        ((("IP Address", "127.0.0.1"),), ["127.0.0.1"], True),
        ((("email", "ops@example.com"),), ["ops@example.com"], True),
        ((("URI", "spiffe://x/prom"),), ["spiffe://x/prom"], True),
        ((), ["prometheus.example"], False),
    ],
)
def test_client_san_allowed(
    sans: tuple[tuple[str, str], ...], allowed: list[str], expected: bool
) -> None:
    assert client_san_allowed({"subjectAltName": sans}, allowed) is expected
    assert client_san_allowed(None, allowed) is False


# --- serving ----------------------------------------------------------------------------


def test_metrics_health_landing_and_errors(serve: Serve) -> None:
    url = serve()
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert [(s.labels, s.value) for s in families["boxoffice_test_available"].samples] == [
        ({"city": "Austin"}, 3.0)
    ]
    assert families["boxoffice_test_sold"].type == "counter"
    assert families["boxoffice_test_sold"].samples[0].value == 42

    health = requests.get(f"{url}/healthz", timeout=5)
    assert (health.status_code, health.text) == (200, "OK\n")
    landing = requests.get(f"{url}/?utm=x", timeout=5)
    assert landing.headers["Content-Type"] == "text/html; charset=utf-8"
    assert landing.text == "<h1>landing</h1>"
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"]:
        refused = requests.request(method, f"{url}/metrics", data=b"x" * 10, timeout=5)
        assert refused.status_code == 405, method
        assert refused.headers["Allow"] == "GET, HEAD"


def test_head_is_get_without_a_body(serve: Serve) -> None:
    url = serve()
    for path in ["/metrics", "/healthz", "/"]:
        plain = {"Accept-Encoding": "identity"}
        get = requests.get(f"{url}{path}", headers=plain, timeout=5)
        head = requests.head(f"{url}{path}", headers=plain, timeout=5)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Type"] == get.headers["Content-Type"]
        assert head.headers["Content-Length"] == str(len(get.content))


def test_openmetrics_when_the_scraper_asks(serve: Serve) -> None:
    url = serve()
    response = requests.get(
        f"{url}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        timeout=5,
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert "boxoffice_test_sold_total 42.0" in response.text
    assert response.text.endswith("# EOF\n")
    assert response.headers["Vary"] == "Accept, Accept-Encoding"


@pytest.mark.parametrize(("accept_encoding", "gzipped"), [("gzip", True), ("gzip;q=0", False)])
def test_gzip_when_accepted(serve: Serve, accept_encoding: str, gzipped: bool) -> None:
    host, port = _host_port(serve())
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": accept_encoding})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.getheader("Content-Encoding") == ("gzip" if gzipped else None)
    text = (gzip.decompress(body) if gzipped else body).decode()
    assert {f.name for f in text_string_to_metric_families(text)} == {
        "boxoffice_test_available",
        "boxoffice_test_sold",
    }


def test_exposition_is_encoded_once_per_version_and_format() -> None:
    class Counting:
        calls = 0

        def collect(self) -> Iterator[Metric]:
            Counting.calls += 1
            yield GaugeMetricFamily("boxoffice_test_cycle", "Which cycle.", value=float(version[0]))

    version = [1]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Counting())  # type: ignore[arg-type]
    server = ExporterHTTPServer(
        registry=registry, listen_address="127.0.0.1:0", version=lambda: version[0]
    )
    server.start()
    try:
        url = f"{server.url}/metrics"
        for _ in range(5):
            assert "boxoffice_test_cycle 1.0" in requests.get(url, timeout=5).text
        assert Counting.calls == 1
        openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
        assert requests.get(url, headers=openmetrics, timeout=5).text.endswith("# EOF\n")
        assert Counting.calls == 2  # each format is encoded (and cached) on its own
        version[0] = 2
        assert "boxoffice_test_cycle 2.0" in requests.get(url, timeout=5).text
        assert "boxoffice_test_cycle 2.0" in requests.get(url, timeout=5).text
        assert Counting.calls == 3
    finally:
        server.shutdown()


def test_a_failing_landing_page_is_a_500_not_a_dropped_connection(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> str:
        raise RuntimeError("template bug")

    server = ExporterHTTPServer(
        registry=registry, listen_address="127.0.0.1:0", landing_page=broken
    )
    server.start()
    try:
        assert requests.get(f"{server.url}/", timeout=5).status_code == 500
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.shutdown()
    assert "error answering GET /" in caplog.text


def test_access_log_goes_to_logging_at_debug_without_credentials(
    serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.web")
    url = serve(_web(tmp_path, f"basic_auth_users:\n  prometheus: '{_hash()}'\n"))
    requests.get(f"{url}/metrics", auth=("prometheus", PASSWORD), timeout=5)
    requests.get(f"{url}/metrics", auth=("prometheus", "wrong password"), timeout=5)
    records = [r for r in caplog.records if r.name == "exporter.web"]
    lines = [r.getMessage() for r in records]
    assert any('"GET /metrics HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /metrics HTTP/1.1" 401' in line for line in lines), lines
    assert {r.levelno for r in records} == {logging.DEBUG}
    secret = _basic("prometheus", PASSWORD).split()[1]
    assert not any(PASSWORD in line or "wrong password" in line or secret in line for line in lines)


def test_bind_failure_is_an_oserror(registry: CollectorRegistry) -> None:
    first = ExporterHTTPServer(registry=registry, listen_address="127.0.0.1:0")
    first.start()
    try:
        _host, port = _host_port(first.url)
        second = ExporterHTTPServer(registry=registry, listen_address=f"127.0.0.1:{port}")
        with pytest.raises(OSError):
            second.start()
    finally:
        first.shutdown()


def test_shutdown_finishes_in_flight_requests_then_closes() -> None:
    entered, release = threading.Event(), threading.Event()
    events: list[str] = []

    class Slow:
        def collect(self) -> Iterator[Metric]:
            entered.set()
            release.wait(10)
            events.append("collected")
            yield GaugeMetricFamily("boxoffice_test_slow", "Slow.", value=1)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Slow())  # type: ignore[arg-type]
    server = ExporterHTTPServer(registry=registry, listen_address="127.0.0.1:0")
    server.start()
    url = server.url
    responses: list[requests.Response] = []
    scrape = threading.Thread(
        target=lambda: responses.append(requests.get(f"{url}/metrics", timeout=10))
    )
    scrape.start()
    assert entered.wait(10)

    def stop() -> None:
        server.shutdown()
        events.append("shut down")

    stopper = threading.Thread(target=stop)
    stopper.start()

    def refused() -> bool:
        try:
            socket.create_connection(_host_port(url), timeout=5).close()
        except (ConnectionRefusedError, ConnectionResetError):
            # A reset: the kernel had queued the connection when the listener closed.
            return True
        return False

    wait_for(refused, timeout=10)  # no longer accepting...
    stopper.join(0.2)
    assert stopper.is_alive()  # ...but still waiting for the scrape in flight
    release.set()
    stopper.join(10)
    scrape.join(10)
    assert not stopper.is_alive() and not scrape.is_alive()
    assert events == ["collected", "shut down"]
    assert responses[0].status_code == 200 and "boxoffice_test_slow 1.0" in responses[0].text


def test_shutdown_does_not_wait_for_idle_keep_alive_connections(
    registry: CollectorRegistry,
) -> None:
    server = ExporterHTTPServer(registry=registry, listen_address="127.0.0.1:0")
    server.start()
    with requests.Session() as session:
        # The connection stays open in the session's pool; the server's idle timeout is 30 s.
        assert session.get(f"{server.url}/healthz", timeout=5).status_code == 200
        stopper = threading.Thread(target=server.shutdown)
        stopper.start()
        stopper.join(10)
        assert not stopper.is_alive()


def test_client_hanging_up_mid_request_prints_nothing(
    serve: Serve, capfd: pytest.CaptureFixture[str]
) -> None:
    url = serve()
    for _ in range(3):
        with socket.create_connection(_host_port(url), timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
            # Close with a reset, as a killed scraper does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert capfd.readouterr().err == ""


# --- basic auth -------------------------------------------------------------------------


def test_basic_auth(serve: Serve, tmp_path: Path) -> None:
    web = _web(
        tmp_path,
        f"basic_auth_users:\n  prometheus: '{_hash()}'\n  grafana: '{_hash('other', '$2y$')}'\n",
    )
    url = serve(web)
    ok = requests.get(f"{url}/metrics", auth=("prometheus", PASSWORD), timeout=5)
    assert ok.status_code == 200 and "boxoffice_test_sold" in ok.text
    # htpasswd -nB writes $2y$ hashes.
    assert requests.get(f"{url}/metrics", auth=("grafana", "other"), timeout=5).status_code == 200
    for auth in [("prometheus", "wrong"), ("nobody", PASSWORD), ("grafana", PASSWORD)]:
        denied = requests.get(f"{url}/metrics", auth=auth, timeout=5)
        assert denied.status_code == 401, auth
        assert denied.headers["WWW-Authenticate"].startswith("Basic ")
    for path in ["/metrics", "/", "/healthz", "/nope"]:
        assert requests.get(f"{url}{path}", timeout=5).status_code == 401, path
    assert requests.post(f"{url}/metrics", timeout=5).status_code == 401
    for header in ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer x"]:
        response = requests.get(f"{url}/metrics", headers={"Authorization": header}, timeout=5)
        assert response.status_code == 401, header


def test_basic_auth_checks_unknown_users_with_bcrypt_and_caches_only_successes() -> None:
    calls: list[bytes] = []

    def check(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return bcrypt.checkpw(password, hashed)

    stored = _hash("pw")
    auth = BasicAuth({"u": stored}, check_password=check)
    assert auth.allows(_basic("u", "pw")) and auth.allows(_basic("u", "pw"))
    assert calls == [stored.encode()]  # the second success came from the cache
    assert not auth.allows(_basic("u", "px")) and not auth.allows(_basic("u", "px"))
    assert len(calls) == 3  # failures are never cached
    assert not auth.allows(_basic("nobody", "pw"))
    assert len(calls) == 4 and calls[-1] != stored.encode()  # a decoy hash, still bcrypt
    for header in [None, "", "Basic", "Basic ****", "Digest u=1"]:
        assert not auth.allows(header)
    assert len(calls) == 4  # malformed headers are refused without hashing


def test_basic_auth_cache_is_bounded() -> None:
    calls: list[bytes] = []

    def accept_all(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return True

    auth = BasicAuth({"u": _hash("pw")}, check_password=accept_all)
    for i in range(1025):
        assert auth.allows(_basic("u", f"pw{i}"))
    assert auth.allows(_basic("u", "pw1024"))  # recent: cached
    assert len(calls) == 1025
    assert auth.allows(_basic("u", "pw0"))  # least recently used: evicted, checked again
    assert len(calls) == 1026


def test_basic_auth_long_passwords_compare_like_htpasswd() -> None:
    long_password = "p" * 100
    auth = BasicAuth({"u": _hash(long_password[:72])})
    # bcrypt reads 72 bytes; the bcrypt package refuses longer input instead of truncating.
    assert auth.allows(_basic("u", long_password))
    assert not auth.allows(_basic("u", "q" * 100))


def test_configured_headers(serve: Serve, tmp_path: Path) -> None:
    web = _web(
        tmp_path,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        "    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n"
        f"basic_auth_users:\n  prometheus: '{_hash()}'\n",
    )
    url = serve(web)
    for auth in [("prometheus", PASSWORD), None]:
        response = requests.get(f"{url}/metrics", auth=auth, timeout=5)
        assert response.headers["X-Frame-Options"] == "deny"
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert "X-XSS-Protection" not in response.headers  # blank means unset


# --- TLS --------------------------------------------------------------------------------


def _tls_web(pki: Pki, extra: str = "") -> WebConfig:
    return _web(
        pki.ca_cert.parent,
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}",
    )


def test_tls(serve: Serve, pki: Pki) -> None:
    url = serve(_tls_web(pki))
    assert url.startswith("https://127.0.0.1:")
    assert requests.get(f"{url}/metrics", verify=str(pki.ca_cert), timeout=5).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/metrics", timeout=5)  # not signed by a CA the client trusts
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https", "http") + "/metrics", timeout=5)
    assert _tls_get(url, _client_context(pki))[0] == 200  # still serving after those


def test_require_and_verify_client_cert(serve: Serve, pki: Pki, tmp_path: Path) -> None:
    url = serve(
        _tls_web(pki, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n")
    )
    good = _client_context(pki, cert=pki.client_cert, key=pki.client_key)
    assert _tls_get(url, good, "/metrics")[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_get(url, _client_context(pki))  # no client certificate
    stranger = make_pki(tmp_path / "other")  # a client certificate from another CA
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_get(url, _client_context(pki, cert=stranger.client_cert, key=stranger.client_key))
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"{url}/metrics", verify=str(pki.ca_cert), timeout=5)
    assert _tls_get(url, good)[0] == 200


def test_verify_client_cert_if_given(serve: Serve, pki: Pki, tmp_path: Path) -> None:
    url = serve(
        _tls_web(pki, "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n")
    )
    assert _tls_get(url, _client_context(pki))[0] == 200
    assert _tls_get(url, _client_context(pki, cert=pki.client_cert, key=pki.client_key))[0] == 200
    stranger = make_pki(tmp_path / "other")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_get(url, _client_context(pki, cert=stranger.client_cert, key=stranger.client_key))


@pytest.mark.parametrize(
    ("allowed", "accepted"), [("[prometheus.example]", True), ("['::1']", True), ("[x]", False)]
)
def test_client_allowed_sans(serve: Serve, pki: Pki, allowed: str, accepted: bool) -> None:
    url = serve(
        _tls_web(
            pki,
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            f"  client_allowed_sans: {allowed}\n",
        )
    )
    context = _client_context(pki, cert=pki.client_cert, key=pki.client_key)
    if accepted:
        assert _tls_get(url, context)[0] == 200
    else:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _tls_get(url, context)


def test_tls_versions_ciphers_and_curves(serve: Serve, pki: Pki) -> None:
    tls13_only = serve(_tls_web(pki, "  min_version: TLS13\n"))
    old = _client_context(pki)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        _tls_get(tls13_only, old)

    one_suite = serve(
        _tls_web(
            pki,
            "  max_version: TLS12\n"
            "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
        )
    )
    # The server's order wins (prefer_server_cipher_suites defaults to true).
    assert _tls_get(one_suite, _client_context(pki)) == (200, "ECDHE-ECDSA-AES256-GCM-SHA384")
    other = _client_context(pki)
    other.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    with pytest.raises(ssl.SSLError):
        _tls_get(one_suite, other)

    p384 = serve(_tls_web(pki, "  curve_preferences: [CurveP384]\n"))
    same = _client_context(pki)
    same.set_ecdh_curve("secp384r1")
    assert _tls_get(p384, same)[0] == 200
    different = _client_context(pki)
    different.set_ecdh_curve("prime256v1")
    with pytest.raises(ssl.SSLError):
        _tls_get(p384, different)


def test_relative_paths_resolve_against_the_web_config_directory(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path.parent)
    web = _tls_web(pki, "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n")
    assert web.tls_server_config is not None
    assert web.tls_server_config.cert_file == str(pki.server_cert)
    assert web.tls_server_config.client_ca_file == str(pki.ca_cert)


# --- web config errors ------------------------------------------------------------------

_TLS = "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
WEB_CONFIG_ERRORS = [
    ("basic_auth_users: [a]\n", "basic_auth_users: must be a mapping, got a list"),
    (
        "basic_auth_user:\n  a: b\n",
        "basic_auth_user: unknown key (known keys: basic_auth_users, http_server_config, tls_server_config)",
    ),
    (
        "basic_auth_users:\n  alice: plaintext\n",
        "basic_auth_users.alice: is not a bcrypt hash (htpasswd -nB gives one)",
    ),
    (
        "basic_auth_users:\n  alice: '$2b$03$9dvaZsZfbanF7nz1/.4TEepfP5n6zdKENy1vJh.FG.zCVi5Xl2Eq2'\n",
        "basic_auth_users.alice: is not a bcrypt hash (htpasswd -nB gives one)",
    ),
    ("basic_auth_users:\n  alice: 42\n", "basic_auth_users.alice: must be a string, got int 42"),
    (
        "basic_auth_users:\n  'a:b': '$2b$04$9dvaZsZfbanF7nz1/.4TEepfP5n6zdKENy1vJh.FG.zCVi5Xl2Eq2'\n",
        "basic_auth_users: user name 'a:b' must not contain ':'",
    ),
    ("tls_server_config:\n  key_file: {key}\n", "tls_server_config.cert_file: is required"),
    ("tls_server_config:\n  cert_file: {cert}\n", "tls_server_config.key_file: is required"),
    (
        "tls_server_config:\n  certfile: {cert}\n",
        "tls_server_config.certfile: unknown key (known keys: cert_file, cipher_suites, client_allowed_sans, client_auth_type, client_ca_file, curve_preferences, key_file, max_version, min_version, prefer_server_cipher_suites)",
    ),
    (
        "tls_server_config:\n  cert: '-----BEGIN CERTIFICATE-----'\n",
        "tls_server_config.cert: inline certificates are not supported; use cert_file",
    ),
    (
        "rate_limit:\n  interval: 1s\n",
        "rate_limit: not supported; rate-limit in a reverse proxy if you need it",
    ),
    (
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: {key}\n",
        "tls_server_config.cert_file: no such file: {dir}/missing.crt",
    ),
    (
        "tls_server_config:\n  cert_file: {key}\n  key_file: {key}\n",
        "tls_server_config.cert_file: no PEM certificate in {key}",
    ),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {cert}\n",
        "tls_server_config.key_file: no PEM private key in {cert}",
    ),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {client_key}\n",
        "tls_server_config.key_file: does not match the certificate in cert_file",
    ),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {encrypted_key}\n",
        "tls_server_config.key_file: is encrypted; give an unencrypted PEM key",
    ),
    (
        _TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
        "tls_server_config.client_ca_file: is required with client_auth_type RequireAndVerifyClientCert",
    ),
    (
        _TLS + "  client_ca_file: {ca}\n",
        "tls_server_config.client_auth_type: must verify client certificates when client_ca_file is set",
    ),
    (
        _TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {key}\n",
        "tls_server_config.client_ca_file: no PEM certificate in {key}",
    ),
    (
        _TLS + "  client_auth_type: RequireAnyClientCert\n",
        "tls_server_config.client_auth_type: RequireAnyClientCert (a client certificate that is not verified) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
    ),
    (
        _TLS + "  client_auth_type: Sometimes\n",
        "tls_server_config.client_auth_type: must be one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, got 'Sometimes'",
    ),
    (
        _TLS
        + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {ca}\n  client_allowed_sans: [a]\n",
        "tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert",
    ),
    (
        _TLS + "  min_version: TLS13\n  max_version: TLS12\n",
        "tls_server_config.min_version: is newer than max_version",
    ),
    (
        _TLS + "  min_version: TLS10\n",
        "tls_server_config.min_version: TLS10 is not supported (RFC 8996 deprecates TLS 1.0 and 1.1); use TLS12 or TLS13",
    ),
    (
        _TLS + "  max_version: TLS14\n",
        "tls_server_config.max_version: must be one of TLS10, TLS11, TLS12, TLS13, got 'TLS14'",
    ),
    (
        _TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        "tls_server_config.cipher_suites[0]: TLS_AES_128_GCM_SHA256 is a TLS 1.3 suite; TLS 1.3 suites are always enabled and cannot be configured, list only TLS 1.2 suites",
    ),
    (
        _TLS
        + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ECDHE-RSA-AES128-GCM-SHA256]\n",
        "tls_server_config.cipher_suites[1]: unknown cipher suite 'ECDHE-RSA-AES128-GCM-SHA256' (Go crypto/tls names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
    ),
    (
        _TLS
        + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_3DES_EDE_CBC_SHA]\n",
        "tls_server_config.cipher_suites[1]: TLS_RSA_WITH_3DES_EDE_CBC_SHA is not available in {openssl}",
    ),
    (
        _TLS + "  curve_preferences: [X25519MLKEM768]\n",
        "tls_server_config.curve_preferences[0]: unknown or unsupported curve 'X25519MLKEM768' (known: CurveP256, CurveP384, CurveP521, X25519)",
    ),
    (
        _TLS + "  curve_preferences: [X25519, CurveP256]\n",
        "tls_server_config.curve_preferences: Python's ssl module can restrict key exchange to one curve but cannot order several; list exactly one, or remove the list for OpenSSL's defaults",
    ),
    (
        _TLS + "  prefer_server_cipher_suites: 'yes'\n",
        "tls_server_config.prefer_server_cipher_suites: must be true or false, got 'yes'",
    ),
    ("http_server_config:\n  http2: 1\n", "http_server_config.http2: must be true or false, got 1"),
    (
        "http_server_config:\n  headers:\n    Server: nginx\n",
        "http_server_config.headers.Server: cannot be set (allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)",
    ),
    (
        "http_server_config:\n  headers:\n    x-frame-options: deny\n",
        "http_server_config.headers.x-frame-options: cannot be set (allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)",
    ),
    (
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin, got 'allow'",
    ),
    (
        'http_server_config:\n  headers:\n    Content-Security-Policy: "a\\nSet-Cookie: x"\n',
        "http_server_config.headers.Content-Security-Policy: must be one line",
    ),
    ("tls_server_config: {{}}\n", "tls_server_config.cert_file: is required"),
    (
        "tls_server_config: {{\n",
        "line 2: invalid YAML: expected the node content, but found '<stream end>'",
    ),
]


@pytest.mark.parametrize(("text", "expected"), WEB_CONFIG_ERRORS)
def test_web_config_errors(pki: Pki, text: str, expected: str) -> None:
    directory = pki.ca_cert.parent
    values = {
        "cert": pki.server_cert,
        "key": pki.server_key,
        "ca": pki.ca_cert,
        "client_key": pki.client_key,
        "encrypted_key": pki.encrypted_key,
        "dir": directory,
        "openssl": ssl.OPENSSL_VERSION,
    }
    path = directory / "web.yml"
    path.write_text(text.format(**values))
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(path))
    message = str(caught.value)
    assert message == f"{path}: {expected.format(**values)}"
    assert "\n" not in message


def test_password_hashes_never_appear_in_errors_or_repr(tmp_path: Path) -> None:
    hashed = _hash()
    web = _web(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    assert hashed not in repr(web)
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  prometheus: hunter2\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(tmp_path / "web.yml"))
    assert "hunter2" not in str(caught.value)


def test_web_config_error_exits_2_from_the_cli(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: plaintext\n")
    env = {"BOXOFFICE_DSN": "postgresql://x@127.0.0.1:1/x", "BOXOFFICE_WEB_CONFIG_FILE": str(web)}
    result = run_boxoffice("serve", env=env)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"boxoffice: {web}: basic_auth_users.alice: is not a bcrypt hash (htpasswd -nB gives one)\n"
    )


# Only the exporter's own metrics: nothing to connect to, so the server is all that is tested.
_NO_SOURCES = {"BOXOFFICE_SOURCES_POSTGRES_ENABLED": "false"}


def test_serve_binds_a_bracketed_ipv6_listen_address() -> None:
    port = free_ipv6_port()
    process = subprocess.Popen(
        [boxoffice_script(), "serve", "--web.listen-address", f"[::1]:{port}"],
        env={**os.environ, **_NO_SOURCES},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        response = wait_for(lambda: _get_or_none(f"http://[::1]:{port}/metrics"), timeout=30.0)
        assert response.status_code == 200
        assert "boxoffice_source_up" in response.text
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def _get_or_none(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=2)
    except requests.ConnectionError:
        return None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::1:19798", "IPv6 hosts are written in brackets like [::1]:9798, got '::1:19798'"),
        (":65536", "must be [host]:port like :9798 or 127.0.0.1:9798, got ':65536'"),
        (
            "not an address",
            "must be [host]:port like :9798 or 127.0.0.1:9798, got 'not an address'",
        ),
    ],
)
def test_serve_refuses_a_bad_listen_address_in_one_line(address: str, reason: str) -> None:
    result = subprocess.run(
        [boxoffice_script(), "serve", "--web.listen-address", address],
        env={**os.environ, **_NO_SOURCES},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"boxoffice: flag --web.listen-address: {reason}\n"


# --- a real Prometheus ------------------------------------------------------------------


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed; scripts/test.sh installs the Debian package")
        pytest.skip("prometheus is not installed (Debian package `prometheus`)")
    return binary


def test_real_prometheus_scrapes_over_tls_with_basic_auth(
    serve: Serve, pki: Pki, tmp_path: Path
) -> None:
    binary = _prometheus_binary()
    url = serve(
        _tls_web(
            pki,
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            f"basic_auth_users:\n  prometheus: '{_hash()}'\n",
        )
    )
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: boxoffice\n    scheme: https\n"
        f"    basic_auth:\n      username: prometheus\n      password_file: {password_file}\n"
        f"    tls_config:\n      ca_file: {pki.ca_cert}\n"
        f"      cert_file: {pki.client_cert}\n      key_file: {pki.client_key}\n"
        f"    static_configs:\n      - targets: ['{url.removeprefix('https://')}']\n"
    )
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:

        def query(expr: str) -> list[str]:
            """The values of an instant query; [] while Prometheus is not answering yet."""
            try:
                with requests.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=2
                ) as response:
                    return [r["value"][1] for r in response.json()["data"]["result"]]
            except (requests.ConnectionError, ValueError, KeyError):
                return []

        def up() -> bool:
            return query('up{job="boxoffice"}') == ["1"]

        started = time.monotonic()
        try:
            wait_for(up, timeout=30, interval=0.5)
        except AssertionError:
            raise AssertionError(
                f"up != 1 after {time.monotonic() - started:.0f}s; "
                f"prometheus log:\n{log_path.read_text()[-3000:]}"
            ) from None
        assert query('boxoffice_test_available{job="boxoffice",city="Austin"}') == ["3"]
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
