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

from exporter.generate.promql import AGGREGATIONS, skip_bracket, skip_string

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


def scoped(
    expr: str, labels: tuple[str, ...], *, kept: frozenset[str] = AGGREGATIONS, panel: bool = False
) -> str:
    """``expr`` with every aggregation of ``kept`` kept by, and every join matched on,
    ``labels``. ``panel``: a dashboard's query, which de-duplicates replicas per shop
    (``kept`` is max and min) and then totals over the shops chosen: its sums, counts and
    ``on()`` joins of two totals stay as they are."""
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
                text, pos = _word(expr, match, labels, kept, panel)
                out.append(text)
                continue
        out.append(expr[pos:stop])
        pos = stop
    return "".join(out)


def _word(
    expr: str, match: re.Match[str], labels: tuple[str, ...], kept: frozenset[str], panel: bool
) -> tuple[str, int]:
    """The text an identifier stands for once scoped, and where the scan goes on."""
    word = match.group()
    if word in AGGREGATIONS:
        if word not in kept:
            return _unchanged_aggregation(expr, word, match.end())
        return _aggregation(expr, word, match.end(), labels)
    if word == "vector" and expr.startswith("(0)", match.end()) and not panel:
        return f"(0 * group by ({', '.join(labels)}) ({SHOP_PRESENT}))", match.end() + 3
    if word in ("on", "by"):
        listed = _LIST.match(expr, match.end())
        if listed is not None and panel and word == "on" and not listed.group(1).strip():
            return word, match.end()  # two totals over the chosen shops
        if listed is not None and (word == "by" or not _against_clock(expr, listed)):
            return f"{word}{_widened(listed.group(0), labels)}", listed.end()
    return word, match.end()


def _unchanged_aggregation(expr: str, word: str, pos: int) -> tuple[str, int]:
    """An aggregation left as written: its ``by (...)`` list too."""
    after = _skip_space(expr, pos)
    clause = _IDENT.match(expr, after)
    if clause is not None and clause.group() == "by":
        listed = _LIST.match(expr, clause.end())
        if listed is not None:
            return expr[pos - len(word) : listed.end()], listed.end()
    return word, pos


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


_NOT_METRICS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"} | AGGREGATIONS
)
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_DURATION = re.compile(r"\s*[+-]?[0-9][0-9a-z.]*")


def with_matchers(expr: str, matchers: str) -> str:
    """``expr`` with ``matchers`` added to every series it selects (a metric name, bare or
    with its own ``{...}``): a dashboard query limited to the chosen shops."""
    if not matchers:
        return expr
    out: list[str] = []
    pos, end = 0, len(expr)
    while pos < end:
        char = expr[pos]
        stop = pos + 1
        if char in "\"'`":
            stop = skip_string(expr, pos)
        elif char == "[":
            stop = skip_bracket(expr, pos, "[", "]")
        elif char.isdigit() or char == ".":
            number = re.match(r"[0-9.]+(?:[eE][+-]?[0-9]+)?[a-z]*", expr[pos:])
            stop = pos + (number.end() if number else 1)
        else:
            match = _IDENT.match(expr, pos)
            if match is not None:
                word, stop = match.group(), match.end()
                after = _skip_space(expr, stop)
                listed = _LIST.match(expr, stop) if word in _LABEL_LISTS else None
                if listed is not None:
                    stop = listed.end()
                elif word == "offset":
                    duration = _DURATION.match(expr, stop)
                    stop = duration.end() if duration else stop
                elif word in CLOCK_SERIES:
                    pass  # the seller's clock carries no scope label
                elif word not in _NOT_METRICS and (after >= end or expr[after] != "("):
                    if after < end and expr[after] == "{":
                        closing = skip_bracket(expr, after, "{", "}")
                        inner = expr[after + 1 : closing - 1].strip()
                        joined = f"{matchers}, {inner}" if inner else matchers
                        out.append(f"{word}{expr[stop:after]}{{{joined}}}")
                        pos = closing
                        continue
                    out.append(f"{word}{{{matchers}}}")
                    pos = stop
                    continue
        out.append(expr[pos:stop])
        pos = stop
    return "".join(out)
