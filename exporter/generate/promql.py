"""Find the metric names a PromQL expression reads, without a full parser.

A small tokenizer is enough: skip strings, label matchers, range and subquery brackets,
durations after ``offset`` and ``@``, label lists after ``by``/``without``/``on``/
``ignoring``/``group_left``/``group_right``, numbers, keywords and anything called like a
function. What is left is a metric name.
"""

from __future__ import annotations

import re

# PromQL's aggregation operators: each may be followed by ``by (...)`` instead of a parenthesis.
AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    }
)
_KEYWORDS = (
    frozenset(
        {
            "and",
            "or",
            "unless",
            "bool",
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
            "offset",
            "inf",
            "nan",
            "atan2",
        }
    )
    | AGGREGATIONS
)
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION_OR_NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:ms|[smhdwy]))+|\d+\.?\d*(?:[eE][+-]?\d+)?)")


class PromQLSyntaxError(ValueError):
    """The expression is not shaped like PromQL (an unterminated string or bracket)."""


def metric_names(expr: str) -> list[str]:
    """The metric names ``expr`` selects, in order of first appearance, each once."""
    names: list[str] = []
    pos, end = 0, len(expr)
    while pos < end:
        char = expr[pos]
        if char.isspace():
            pos += 1
        elif char == "#":
            newline = expr.find("\n", pos)
            pos = end if newline < 0 else newline + 1
        elif char in "\"'`":
            pos = skip_string(expr, pos)
        elif char == "{":
            pos = skip_bracket(expr, pos, "{", "}")
        elif char == "[":
            pos = skip_bracket(expr, pos, "[", "]")
        elif char.isdigit() or (char == "." and pos + 1 < end and expr[pos + 1].isdigit()):
            match = _NUMBER.match(expr, pos)
            pos = match.end() if match else pos + 1
        elif char == "@":
            pos = _skip_modifier_argument(expr, pos + 1)
        else:
            match = _IDENT.match(expr, pos)
            if match is None:
                pos += 1  # an operator or punctuation
                continue
            pos = _word(expr, match.group(), match.end(), names)
    return names


def _word(expr: str, word: str, pos: int, names: list[str]) -> int:
    """Handle an identifier ending at ``pos``: a keyword, a function, or a metric name."""
    lowered = word.lower()
    if lowered == "offset":
        return _skip_modifier_argument(expr, pos)
    if lowered in _LABEL_LIST_KEYWORDS:
        after = _skip_space(expr, pos)
        if after < len(expr) and expr[after] == "(":
            return skip_bracket(expr, after, "(", ")")
        return pos
    if lowered not in _KEYWORDS and not _called(expr, pos) and word not in names:
        names.append(word)
    return pos


def _called(expr: str, pos: int) -> bool:
    after = _skip_space(expr, pos)
    return after < len(expr) and expr[after] == "("


def _skip_space(expr: str, pos: int) -> int:
    while pos < len(expr) and expr[pos].isspace():
        pos += 1
    return pos


def _skip_modifier_argument(expr: str, pos: int) -> int:
    """Skip the duration after ``offset`` or the timestamp, ``start()`` or ``end()`` after ``@``."""
    pos = _skip_space(expr, pos)
    match = _DURATION_OR_NUMBER.match(expr, pos)
    if match:
        return match.end()
    word = _IDENT.match(expr, pos)
    if word and word.group() in ("start", "end"):
        after = _skip_space(expr, word.end())
        if after < len(expr) and expr[after] == "(":
            return skip_bracket(expr, after, "(", ")")
    return pos


def skip_string(expr: str, pos: int) -> int:
    quote = expr[pos]
    pos += 1
    while pos < len(expr):
        if expr[pos] == "\\" and quote != "`":
            pos += 2
            continue
        if expr[pos] == quote:
            return pos + 1
        pos += 1
    raise PromQLSyntaxError(f"unterminated string starting {expr[pos - 1 :][:20]!r}")


def skip_bracket(expr: str, pos: int, opening: str, closing: str) -> int:
    depth = 0
    while pos < len(expr):
        char = expr[pos]
        if char in "\"'`":
            pos = skip_string(expr, pos)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise PromQLSyntaxError(f"unclosed {opening!r}")


_UNITS = (
    ("w", 604_800_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)


def num(value: float) -> str:
    """A number in PromQL: exact, without a trailing ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def duration_text(seconds: float) -> str:
    """Prometheus duration text: 90 -> 1m30s, 86400 -> 1d, 0 -> 0s."""
    if seconds == 0:
        return "0s"
    out, rest = "", round(seconds * 1000)
    for unit, size in _UNITS:
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out
