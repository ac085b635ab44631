"""The web server under hostile or careless input (issue 16): request framing, bcrypt costs,
slow clients and connection caps, web config files. Real sockets on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import email.message
import logging
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.cli import main
from exporter.config import ConfigError
from exporter.web.auth import MAX_BCRYPT_COST, BasicAuth
from exporter.web.framing import framing_problem
from exporter.web.limits import ServerLimits
from exporter.web.server import ExporterHTTPServer
from exporter.web.webconfig import WebConfig, load_web_config
from tests.support.certs import make_pki

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


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


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


@pytest.mark.parametrize("text", ["", "\n  \n", "# all commented out\n# basic_auth_users:\n"])
def test_an_empty_web_config_file_is_served_as_exporter_toolkit_does_but_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    """Issue 16 item 12: a truncated or unmounted file would silently turn auth off."""
    path = tmp_path / "web.yml"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="exporter.web"):
        assert load_web_config(str(path)) == WebConfig()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0] and "without basic auth or TLS" in warnings[0]


def test_a_web_config_that_configures_something_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    with caplog.at_level(logging.WARNING, logger="exporter.web"):
        load_web_config(str(path))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.mkdir(), "cannot read: Is a directory"),
        (lambda p: None, "cannot read: No such file or directory"),
        (lambda p: p.write_text("basic_auth_users: [\n"), "invalid YAML"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00"), "is not UTF-8 text"),
        (lambda p: p.write_text("just a string\n"), "must be a mapping at the top level"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "sms-bridge"])
def test_an_unreadable_or_non_yaml_web_config_exits_2_with_one_line(
    tmp_path: Path, make: Callable[[Path], object], reason: str, command: str
) -> None:
    web = tmp_path / "web.yml"
    make(web)
    config = tmp_path / "boxoffice.yml"
    # Named in the file, not by the flag: click itself refuses a directory given as a flag.
    config.write_text(
        f"sms_bridge:\n  dry_run: true\n  unauthenticated: true\n  web_config_file: {web}\n"
        "  groups: {oncall: ['+14155550101']}\n  listen_address: '127.0.0.1:1'\n"
        f"web:\n  listen_address: '127.0.0.1:1'\n  config_file: {web}\n"
    )
    args = [command, "--config", str(config)]
    if command == "serve":
        args += ["--dsn", "postgresql://127.0.0.1:1/none"]
    result = CliRunner().invoke(main, args, env={})
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"boxoffice: {web}") and reason in result.output


def _shaped_hash(cost: int, fill: str = "a") -> str:
    """A string of a bcrypt hash's shape: enough where the checker is a recording fake."""
    return f"$2b${cost:02d}$" + fill * 53


@pytest.mark.parametrize("cost", [15, 20, 31])
def test_bcrypt_costs_above_the_maximum_are_refused_at_load(tmp_path: Path, cost: int) -> None:
    """Issue 16 item 9: cost 31 hung start-up; 15 made every unknown user cost 2 s."""
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{_shaped_hash(cost)}'\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(str(path))
    assert str(caught.value) == (
        f"{path}: basic_auth_users.alice: bcrypt cost {cost} is above the maximum "
        f"{MAX_BCRYPT_COST}; hash it again with htpasswd -nBC 10"
    )


def test_the_maximum_bcrypt_cost_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{_shaped_hash(MAX_BCRYPT_COST)}'\n")
    assert list(load_web_config(str(path)).basic_auth_users) == ["alice"]


def test_basic_auth_refuses_a_cost_above_the_maximum_in_code_too() -> None:
    with pytest.raises(ValueError, match="above the maximum"):
        BasicAuth({"alice": _shaped_hash(MAX_BCRYPT_COST + 1)})


class _Recorder:
    def __init__(self) -> None:
        self.costs: list[int] = []
        self.hashes: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.costs.append(int(hashed[4:6]))
        self.hashes.append(hashed)
        return False


def test_an_unknown_user_costs_what_a_known_one_does() -> None:
    """Issue 16 item 10: with one user, every unknown name pays that user's cost."""
    checker = _Recorder()
    auth = BasicAuth({"alice": _shaped_hash(12)}, check_password=checker)
    for i in range(20):
        assert not auth.allows(_basic(f"nobody{i}", "pw"))
    assert checker.costs == [12] * 20
    assert _shaped_hash(12).encode() not in checker.hashes  # a decoy, not alice's hash


def test_unknown_names_pay_the_configured_costs_in_proportion_and_consistently() -> None:
    """Costs differ per user: an unknown name gets one user's cost, picked by a keyed hash of
    the name, so it looks like some real user; the same name always costs the same, and one
    slow user among ten makes about a tenth of unknown names slow, not all of them."""
    users = {f"user{i}": _shaped_hash(4, fill="abcdefghij"[i]) for i in range(9)}
    users["slow"] = _shaped_hash(14)
    checker = _Recorder()
    auth = BasicAuth(users, check_password=checker)
    for i in range(400):
        auth.allows(_basic(f"guess{i}", "pw"))
    slow = checker.costs.count(14)
    assert set(checker.costs) == {4, 14}
    assert 10 <= slow <= 100  # about 40 of 400 (binomial, p = 0.1; bounds far in the tails)
    first = list(checker.costs)
    for i in range(400):
        auth.allows(_basic(f"guess{i}", "other password"))
    assert checker.costs[400:] == first  # a name's cost never changes
    # The choice is keyed by the configured hashes: stable across restarts of one config.
    again = _Recorder()
    restarted = BasicAuth(users, check_password=again)
    for i in range(400):
        restarted.allows(_basic(f"guess{i}", "pw"))
    assert again.costs == first


def _connection_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "http-conn" and t.is_alive())


def _wait(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``condition`` every 50 ms for at most ``seconds`` (and 200 tries); whether it
    came true. Shorter than the server's idle timeout, so only eviction can close sockets."""
    end = time.monotonic() + seconds
    for _ in range(200):
        if condition():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return False


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server hung up (EOF or reset) or answered, without waiting long."""
    sock.settimeout(0.01)
    try:
        return sock.recv(65536) is not None
    except TimeoutError:
        return False
    except OSError:
        return True


def test_a_trickled_request_is_cut_at_the_request_deadline(serve: Serve) -> None:
    """Issue 16 item 11: a byte every 0.2 s used to keep a request alive for ever; the
    deadline (1 s here) counts from the request's first byte, however steady the trickle."""
    url = serve(limits=ServerLimits(request_timeout=1.0))
    with socket.create_connection(host_port(url), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        cut = False
        for _ in range(40):  # 8 s of trickling at most
            try:
                sock.sendall(b"X-Slow: y\r\n")
            except OSError:
                cut = True
                break
            if _closed_by_server(sock):
                cut = True
                break
            time.sleep(0.2)
        assert cut


def test_idle_connections_past_the_cap_take_no_threads_and_metrics_still_answers(
    serve: Serve,
) -> None:
    """Issue 16 item 11: 300 idle half-open requests made about 200 threads."""
    before = _connection_threads()
    url = serve(limits=ServerLimits(max_connections=4))
    idle = [socket.create_connection(host_port(url), timeout=5) for _ in range(12)]
    try:
        for sock in idle[:6]:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # half a request
        # The oldest ones are hung up to make room: never more threads than the cap.
        assert _wait(lambda: sum(_closed_by_server(s) for s in idle) >= 8)
        assert _wait(lambda: _connection_threads() - before <= 4)
        for _ in range(3):
            answer = exchange(url, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:100]
            assert b"boxoffice_test_up 1.0" in answer
    finally:
        for sock in idle:
            sock.close()


def test_when_every_slot_is_busy_a_new_connection_gets_503_at_once(serve: Serve) -> None:
    release = threading.Event()

    def slow_page() -> str:
        release.wait(10)
        return "<h1>slow</h1>"

    url = serve(limits=ServerLimits(max_connections=2), landing_page=slow_page)
    busy = [socket.create_connection(host_port(url), timeout=5) for _ in range(2)]
    try:
        for sock in busy:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _wait(lambda: _connection_threads() >= 2)
        time.sleep(0.2)  # both requests parsed and waiting on the page
        answer = exchange(url, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable"), answer[:100]
        assert b"Retry-After: 1" in answer
    finally:
        release.set()
        for sock in busy:
            sock.close()


def test_slow_clients_do_not_delay_metrics_for_others(serve: Serve) -> None:
    url = serve(limits=ServerLimits(max_connections=4, request_timeout=2.0))
    slow = [socket.create_connection(host_port(url), timeout=5) for _ in range(8)]
    try:
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n")
        for _ in range(5):
            answer = exchange(url, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:100]
    finally:
        for sock in slow:
            sock.close()


def test_the_listen_backlog_is_sized(serve: Serve) -> None:
    """The backlog was 5: a burst of scrapes and probes met SYN retries (1 s each)."""
    url = serve()
    port = host_port(url)[1]
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()
    # ss shows a listening socket's backlog as its Send-Q (third column).
    assert int(listing[2]) == ServerLimits().backlog == 128


def test_a_stalled_tls_handshake_is_cut_and_tls_scrapes_go_on_past_the_cap(
    serve: Serve, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    )
    url = serve(
        load_web_config(str(path)), limits=ServerLimits(request_timeout=1.0, max_connections=3)
    )
    stalled = [socket.create_connection(host_port(url), timeout=5) for _ in range(6)]
    try:
        stalled[0].sendall(b"\x16\x03\x01\x00")  # the first bytes of a ClientHello, no more
        # The stalled ones are hung up: the handshake has a deadline, and the cap evicts.
        assert _wait(lambda: all(_closed_by_server(s) for s in stalled))
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        for _ in range(3):
            with (
                socket.create_connection(host_port(url), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert tls.recv(4096).startswith(b"HTTP/1.1 200 OK")
    finally:
        for sock in stalled:
            sock.close()
