"""Log lines: one per record, logfmt or JSON, with every known secret scrubbed."""

from __future__ import annotations

import json
import logging

import pytest

from exporter.logs import REDACTED, RedactingFormatter

DSN = "postgresql://reader:pa55word@db.internal/tickets"


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("exporter.test", logging.WARNING, __file__, 1, message, args, exc_info)


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("connecting to %s", (DSN,)),
        ("password is %s", ("pa55word",)),
        ("nested: {'dsn': '%s'}", (DSN,)),
    ],
)
def test_secrets_are_scrubbed(message: str, args: tuple[object, ...]) -> None:
    line = RedactingFormatter("logfmt", [DSN, "pa55word"]).format(_record(message, *args))
    assert "pa55word" not in line
    assert REDACTED in line


def test_exception_text_is_scrubbed_too() -> None:
    line = RedactingFormatter("json", [DSN, "pa55word"]).format(
        _record("failed", exc=ValueError(f"bad {DSN}"))
    )
    assert "pa55word" not in line
    assert "ValueError" in json.loads(line)["msg"]


def test_logfmt_quotes_values_with_spaces() -> None:
    line = RedactingFormatter("logfmt").format(_record('source "postgres" down'))
    assert line.endswith('level=warning logger=exporter.test msg="source \\"postgres\\" down"')
    assert line.startswith("ts=")


def test_json_lines_are_one_object() -> None:
    parsed = json.loads(RedactingFormatter("json").format(_record("a\nb")))
    assert parsed["level"] == "warning"
    assert parsed["msg"] == "a\nb"


def test_runner_scrubs_failure_texts_before_anyone_sees_them() -> None:
    from exporter.collect.scheduler import SourceRunner
    from exporter.logs import Redactor
    from exporter.sources.base import Collection, Failure

    class Leaky:
        name, interval, timeout = "postgres", 1.0, 1.0

        def collect(self) -> Collection:
            return Collection(failures=(Failure("connection", f"cannot reach {DSN}", DSN),))

        def close(self) -> None:
            pass

    snapshot = SourceRunner(Leaky(), redact=Redactor([DSN, "pa55word"])).run_once()
    assert snapshot.last_error == f"cannot reach {REDACTED}"


def test_third_party_lines_lose_tokens_in_url_queries_and_echoed_authorization(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real urllib3 debug line and an upstream echoing the header, through setup_logging."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests

    from exporter.logs import setup_logging

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"you sent Authorization: {self.headers['Authorization']}".encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    basic = base64.b64encode(b"probe:hunter2hunter2").decode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Only the header value is a configured secret; neither the query token nor the
    # base64 body echo is known to the redactor by value.
    setup_logging("debug", "logfmt", secrets=[f"Basic {basic}"])
    try:
        url = f"http://127.0.0.1:{server.server_port}/health?api_token=QUERYSECRET42&x=1"
        response = requests.get(url, headers={"Authorization": f"Basic {basic}"}, timeout=5)
        logging.getLogger("exporter.sources.http").warning("upstream said %s", response.text)
        logging.getLogger("some.library").debug("user %s", basic)
    finally:
        server.shutdown()
        server.server_close()
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert "urllib3.connectionpool" in err and "/health?api_token=" in err
    assert "QUERYSECRET42" not in err
    assert basic not in err
    assert "hunter2" not in err
    assert "x=1" in err  # only secret-looking parameters are cut


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://u:p4ssw0rd@example.com/x", "p4ssw0rd"),
        ("GET /h?access_key=AKIA123&b=2", "AKIA123"),
        ("GET /h?sig=abcdef", "abcdef"),
        ('{"authorization": "Bearer eyJhbGciOi"}', "eyJhbGciOi"),
        ("Proxy-Authorization: Basic Zm9vOmJhcg==", "Zm9vOmJhcg=="),
    ],
)
def test_secret_shapes_are_redacted_without_being_known(text: str, secret: str) -> None:
    line = RedactingFormatter("logfmt").format(_record(text))
    assert secret not in line and REDACTED in line


def test_dsn_help_warns_it_is_visible_in_ps() -> None:
    from click.testing import CliRunner

    from exporter.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "visible to other users" in " ".join(result.output.split())
