"""The HTTP server and its exporter-toolkit web config, with real clients and a real Prometheus."""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ConfigError
from exporter.web.server import BasicAuth, ExporterHTTPServer, parse_listen_address
from exporter.web.webconfig import WebConfig, load_web_config
from tests.support.certs import Pki, make_pki
from tests.support.exporter import free_port, run_boxoffice, wait_for

PASSWORD = "correct horse battery staple"


def _hash(password: str = PASSWORD, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("boxoffice_test_value", "A value for tests.", ["city"], registry=registry).labels(
        "Austin"
    ).set(3)
    return registry


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def serve(registry: CollectorRegistry) -> Iterator[object]:
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


def _web(tmp_path: Path, text: str) -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return load_web_config(str(path))


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        (":9798", ("", 9798)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9798", ("::1", 9798)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_listen_address(address: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["9798", ":http", "::1:9798", "host:99999", ""])
def test_bad_listen_address(address: str) -> None:
    with pytest.raises(ValueError, match=r"listen address|IPv6"):
        parse_listen_address(address)


def test_metrics_health_landing_and_errors(serve: object) -> None:
    url = serve()  # type: ignore[operator]
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["boxoffice_test_value"].samples[0].value == 3
    assert requests.get(f"{url}/healthz", timeout=5).text == "OK\n"
    landing = requests.get(f"{url}/", timeout=5)
    assert landing.headers["Content-Type"] == "text/html; charset=utf-8"
    assert landing.text == "<h1>landing</h1>"
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404
    assert requests.post(f"{url}/metrics", timeout=5).status_code == 405
    head = requests.head(f"{url}/metrics", timeout=5)
    assert head.status_code == 200 and head.content == b""


def test_openmetrics_when_the_scraper_asks(serve: object) -> None:
    url = serve()  # type: ignore[operator]
    response = requests.get(
        f"{url}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        timeout=5,
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_gzip_when_accepted(serve: object) -> None:
    url = serve()  # type: ignore[operator]
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        assert response.getheader("Content-Encoding") == "gzip"
        assert b"boxoffice_test_value" in gzip.decompress(response.read())
    finally:
        conn.close()


def test_basic_auth(serve: object, tmp_path: Path) -> None:
    web = _web(
        tmp_path,
        f"basic_auth_users:\n  prometheus: '{_hash()}'\n  grafana: '{_hash('other', '$2y$')}'\n",
    )
    url = serve(web)  # type: ignore[operator]
    ok = requests.get(f"{url}/metrics", auth=("prometheus", PASSWORD), timeout=5)
    assert ok.status_code == 200 and "boxoffice_test_value" in ok.text
    assert (
        requests.get(f"{url}/metrics", auth=("grafana", "other"), timeout=5).status_code == 200
    )  # htpasswd's $2y$
    for auth in [("prometheus", "wrong"), ("nobody", PASSWORD), ("grafana", PASSWORD)]:
        denied = requests.get(f"{url}/metrics", auth=auth, timeout=5)
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"] == 'Basic realm="boxoffice"'
    assert requests.get(f"{url}/", timeout=5).status_code == 401
    assert (
        requests.get(
            f"{url}/metrics", headers={"Authorization": "Basic !!!"}, timeout=5
        ).status_code
        == 401
    )


def test_basic_auth_caches_only_successes() -> None:
    auth = BasicAuth({"u": _hash("pw")})
    good = "Basic " + __import__("base64").b64encode(b"u:pw").decode()
    bad = "Basic " + __import__("base64").b64encode(b"u:px").decode()
    assert auth.allows(good) and auth.allows(good)
    assert not auth.allows(bad) and not auth.allows(bad)
    assert not auth.allows(None)


def test_configured_headers(serve: object, tmp_path: Path) -> None:
    web = _web(
        tmp_path,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n",
    )
    response = requests.get(f"{serve(web)}/metrics", timeout=5)  # type: ignore[operator]
    assert response.headers["X-Frame-Options"] == "deny"
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_tls(serve: object, pki: Pki, tmp_path: Path) -> None:
    web = _web(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n",
    )
    url = serve(web)  # type: ignore[operator]
    assert url.startswith("https://127.0.0.1:")
    assert requests.get(f"{url}/metrics", verify=str(pki.ca_cert), timeout=5).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/metrics", timeout=5)  # not signed by a CA the client trusts
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https", "http") + "/metrics", timeout=5)


def test_tls_relative_paths_and_client_certificates(serve: object, pki: Pki) -> None:
    web_path = pki.ca_cert.parent / "web.yml"
    web_path.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n"
    )
    url = serve(load_web_config(str(web_path)))  # type: ignore[operator]
    with_cert = requests.get(
        f"{url}/metrics",
        verify=str(pki.ca_cert),
        cert=(str(pki.client_cert), str(pki.client_key)),
        timeout=5,
    )
    assert with_cert.status_code == 200
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"{url}/metrics", verify=str(pki.ca_cert), timeout=5)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(pki.ca_cert))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    host, port = url.removeprefix("https://").split(":")
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection((host, int(port)), timeout=5) as raw,
        old.wrap_socket(raw, server_hostname="localhost"),
    ):
        pass


WEB_CONFIG_ERRORS = [
    ("basic_auth_users: [a]\n", "basic_auth_users: must be a mapping, got a list"),
    ("basic_auth_user:\n  a: b\n", "basic_auth_user: unknown key (known keys: basic_auth_users, http_server_config, tls_server_config)"),
    ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice: is not a bcrypt hash (htpasswd -nB gives one)"),
    ("basic_auth_users:\n  alice: 42\n", "basic_auth_users.alice: must be a string, got int 42"),
    ("tls_server_config:\n  key_file: {key}\n", "tls_server_config.cert_file: is required"),
    ("tls_server_config:\n  cert_file: {cert}\n", "tls_server_config.key_file: is required"),
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: {key}\n", "tls_server_config.cert_file: no such file: {dir}/missing.crt"),
    ("tls_server_config:\n  cert_file: {ca}\n  key_file: {key}\n", "tls_server_config.cert_file: cannot load certificate and key: KEY_VALUES_MISMATCH"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file: is required with RequireAndVerifyClientCert"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_ca_file: {ca}\n", "tls_server_config.client_auth_type: client_ca_file is set but the client auth type verifies no client certificate"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequireAnyClientCert\n", "tls_server_config.client_auth_type: RequireAnyClientCert (a client certificate that is not verified) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: Sometimes\n", "tls_server_config.client_auth_type: must be one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, got 'Sometimes'"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version: is newer than max_version"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "tls_server_config.cipher_suites: Go cipher suite names cannot be applied to OpenSSL faithfully; remove the list (TLS 1.2+ defaults are strong)"),
    ("http_server_config:\n  headers:\n    Server: nginx\n", "http_server_config.headers.Server: cannot be set (allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin, got 'allow'"),
    ("tls_server_config: {{\n", "line 2: invalid YAML: expected the node content, but found '<stream end>'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), WEB_CONFIG_ERRORS)
def test_web_config_errors(pki: Pki, text: str, expected: str) -> None:
    directory = pki.ca_cert.parent
    values = {"cert": pki.server_cert, "key": pki.server_key, "ca": pki.ca_cert, "dir": directory}
    path = directory / "web.yml"
    path.write_text(text.format(**values))
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(path))
    assert str(caught.value) == f"{path}: {expected.format(**values)}"


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


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed; scripts/test.sh installs the Debian package")
        pytest.skip("prometheus is not installed (Debian package `prometheus`)")
    return binary


def test_real_prometheus_scrapes_over_tls_with_basic_auth(
    serve: object, pki: Pki, tmp_path: Path
) -> None:
    binary = _prometheus_binary()
    web = _web(
        pki.ca_cert.parent,
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\nbasic_auth_users:\n  prometheus: '{_hash()}'\n",
    )
    url = serve(web)  # type: ignore[operator]
    target = url.removeprefix("https://")
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: boxoffice\n    scheme: https\n"
        f"    basic_auth:\n      username: prometheus\n      password_file: {password_file}\n"
        f"    tls_config:\n      ca_file: {pki.ca_cert}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def scraped() -> bool:
            try:
                result = requests.get(
                    f"http://127.0.0.1:{port}/api/v1/query",
                    params={"query": 'boxoffice_test_value{job="boxoffice"}'},
                    timeout=2,
                ).json()
            except (requests.ConnectionError, ValueError):
                return False
            values = result.get("data", {}).get("result", [])
            return bool(values) and values[0]["value"][1] == "3"

        wait_for(scraped, timeout=30, interval=0.5)
        up = requests.get(
            f"http://127.0.0.1:{port}/api/v1/query",
            params={"query": 'up{job="boxoffice"}'},
            timeout=5,
        ).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        process.terminate()
        process.wait(15)


def test_client_hanging_up_mid_request_prints_nothing(
    serve: object, capfd: pytest.CaptureFixture[str]
) -> None:
    url = serve()  # type: ignore[operator]
    host, port = url.removeprefix("http://").split(":")
    for _ in range(3):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
            # Close with a reset, as a killed scraper does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert capfd.readouterr().err == ""


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
