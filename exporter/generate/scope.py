"""Scope labels: the labels that tell one independent shop from another (issue 20).

The rule and panel builders write PromQL for one shop: ``max by (<metric labels>)`` folds
the exporter's replicas together, a bare ``sum (...)`` adds up the whole shop, ``on()``
joins two whole-shop numbers. When thresholds.yaml names scope labels (``scope.labels``,
e.g. ``[seller]``), :func:`scoped` rewrites such an expression so that every aggregation
keeps them (``max by (<metric labels>, seller)``, ``sum by (seller)``) and every join
matches on them (``on(seller)``): replicas of one shop still count once, two shops are
never added together, and every alert carries the labels Alertmanager routes a shop by.

``vector(0)``, the zero of a failure count that has no series yet, becomes a zero per shop
(``0 * group by (seller) (boxoffice_source_up)``). Left alone: ``without (...)`` (it keeps
every label it does not name), ``ignoring(...)``, and joins against the seller's clock
(``boxoffice:local_day``, ``boxoffice:business_hours``, ``vector(...)`` ...): the time
zone is one setting for every shop, so those series carry no scope label and every shop's
series matches them through ``on()``.

With no scope labels the expression comes back unchanged, byte for byte.
"""

from __future__ import annotations

import re

from exporter.generate.promql import skip_bracket, skip_string

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
# Series without scope labels: the seller's clock (one time zone for every shop) and
# literals. A join whose right side starts with one of them keeps its ``on()``.
CLOCK_SERIES = frozenset(
    {
        "boxoffice:timezone_offset_seconds",
        "boxoffice:local_time_seconds",
        "boxoffice:local_minute_of_day",
        "boxoffice:local_day_of_week",
        "boxoffice:local_day",
        "boxoffice:business_hours",
        "vector",
        "hour",
        "minute",
        "day_of_week",
    }
)
# A series every scraped shop has, scope labels included: ``vector(0)`` (a count that is 0
# when no failure happened) becomes a 0 per shop, else it would carry no scope label and
# match no shop's series.
SHOP_PRESENT = "boxoffice_source_up"
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LIST = re.compile(r"\s*\(([^()]*)\)")


def scoped(expr: str, labels: tuple[str, ...]) -> str:
    """``expr`` with every aggregation kept by, and every join matched on, ``labels``."""
    if not labels:
        return expr
    out: list[str] = []
    pos, end = 0, len(expr)
    while pos < end:
        char = expr[pos]
        if char in "\"'`":
            stop = skip_string(expr, pos)
        elif char == "{":
            stop = skip_bracket(expr, pos, "{", "}")
        elif char == "[":
            stop = skip_bracket(expr, pos, "[", "]")
        elif char == "#":
            newline = expr.find("\n", pos)
            stop = end if newline < 0 else newline + 1
        else:
            match = _IDENT.match(expr, pos)
            if match is None or (pos and (expr[pos - 1].isalnum() or expr[pos - 1] in "_:.")):
                stop = pos + 1 if match is None else match.end()
            else:
                text, pos = _word(expr, match, labels)
                out.append(text)
                continue
        out.append(expr[pos:stop])
        pos = stop
    return "".join(out)


def _word(expr: str, match: re.Match[str], labels: tuple[str, ...]) -> tuple[str, int]:
    """The text an identifier stands for once scoped, and where the scan goes on."""
    word = match.group()
    if word in AGGREGATIONS:
        return _aggregation(expr, word, match.end(), labels)
    if word == "vector" and expr.startswith("(0)", match.end()):
        return f"(0 * group by ({', '.join(labels)}) ({SHOP_PRESENT}))", match.end() + 3
    if word in ("on", "by"):
        listed = _LIST.match(expr, match.end())
        if listed is not None and (word == "by" or not _against_clock(expr, listed)):
            return f"{word}{_widened(listed.group(0), labels)}", listed.end()
    return word, match.end()


def _aggregation(expr: str, word: str, pos: int, labels: tuple[str, ...]) -> tuple[str, int]:
    """An aggregation operator at ``pos`` (just after its name): its text up to where the
    caller goes on, with ``by (...)`` widened or added."""
    after = _skip_space(expr, pos)
    clause = _IDENT.match(expr, after)
    if clause is not None and clause.group() in ("by", "without"):
        return word, pos  # the caller widens ``by (...)``; ``without`` keeps scope labels
    if after >= len(expr) or expr[after] != "(":
        return word, pos  # a metric or label called like an operator
    closing = skip_bracket(expr, after, "(", ")")
    trailing = _IDENT.match(expr, _skip_space(expr, closing))
    if trailing is not None and trailing.group() in ("by", "without"):
        return word, pos  # ``sum (...) by (...)``: the caller widens it on reaching it
    return f"{word} by ({', '.join(labels)}){' ' if after == pos else ''}", pos


def _widened(listed: str, labels: tuple[str, ...]) -> str:
    """`` (a, b)`` -> `` (a, b, seller)``: the label list with the missing scope labels."""
    inner = listed[listed.index("(") + 1 : listed.rindex(")")]
    names = [n.strip() for n in inner.split(",") if n.strip()]
    names += [label for label in labels if label not in names]
    return f"{listed[: listed.index('(')]}({', '.join(names)})"


def _against_clock(expr: str, listed: re.Match[str]) -> bool:
    """Whether the right side of the ``on(...)`` join ending at ``listed`` is a clock series."""
    pos = _skip_space(expr, listed.end())
    group = _IDENT.match(expr, pos)
    if group is not None and group.group() in ("group_left", "group_right"):
        pos = _skip_space(expr, group.end())
        copied = _LIST.match(expr, pos)
        pos = _skip_space(expr, copied.end() if copied else pos)
    while pos < len(expr) and expr[pos] in "( \n":
        pos += 1
    name = _IDENT.match(expr, pos)
    return name is not None and name.group() in CLOCK_SERIES


def _skip_space(expr: str, pos: int) -> int:
    while pos < len(expr) and expr[pos].isspace():
        pos += 1
    return pos


def scope_matchers(labels: tuple[str, ...]) -> str:
    """Grafana's matchers of the scope variables: ``seller=~"$seller"``."""
    return ", ".join(f'{label}=~"${label}"' for label in labels)
