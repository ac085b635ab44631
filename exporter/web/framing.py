"""Where a request's body ends, judged once per request as RFC 9112 section 6 asks.

A request whose framing is ambiguous is refused (400) and its connection closed, never
guessed at: two proxies guessing differently is how requests get smuggled. Refused:

* more than one ``Content-Length`` field, even with equal values (RFC 9110 section 8.6
  lets a recipient refuse them; we do);
* a ``Content-Length`` that is not plain ASCII digits (``+5``, ``5, 5``, ``-1``,
  full-width digits);
* ``Transfer-Encoding`` together with ``Content-Length`` (section 6.1 allows refusing);
* a ``Transfer-Encoding`` whose last coding is not ``chunked`` (section 6.3, rule 4), or
  given twice;
* ``Transfer-Encoding`` in an HTTP/1.0 request (section 6.1: framing is faulty).

What a handler then does with a well-framed body (the exporter reads none, the SMS bridge
wants a Content-Length) is the handler's business.
"""

from __future__ import annotations

from email.message import Message

# A Content-Length with more digits than this is past any body we would read (and int()
# of 5000 digits raises); handlers answer 413 for it, not 400.
MAX_LENGTH_DIGITS = 18
_PAST_ANY_LIMIT: int = 10**MAX_LENGTH_DIGITS


def content_length(headers: Message) -> int | None:
    """The declared body length of a request :func:`framing_problem` accepted, or None."""
    value: str | None = headers.get("Content-Length")
    if value is None:
        return None
    digits = value.strip()
    if len(digits) > MAX_LENGTH_DIGITS:
        return _PAST_ANY_LIMIT  # more than any limit; never converted digit by digit
    return int(digits)


def framing_problem(headers: Message, version: str) -> str | None:
    """Why the body of a request with these headers cannot be delimited safely, or None."""
    lengths = headers.get_all("Content-Length") or []
    encodings = headers.get_all("Transfer-Encoding") or []
    if len(lengths) > 1:
        return "more than one Content-Length header"
    if lengths and not (lengths[0].strip().isascii() and lengths[0].strip().isdigit()):
        return "Content-Length is not a number"
    if encodings and lengths:
        return "both Transfer-Encoding and Content-Length"
    return _encoding_problem(encodings, version) if encodings else None


def _encoding_problem(encodings: list[str], version: str) -> str | None:
    if version == "HTTP/1.0":
        return "Transfer-Encoding in an HTTP/1.0 request"
    codings = [c.strip().lower() for c in encodings[0].split(",")]
    if len(encodings) > 1 or codings[-1] != "chunked":
        return "Transfer-Encoding: chunked must be the last and only once"
    return None
