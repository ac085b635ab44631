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
