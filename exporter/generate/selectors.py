"""Label sets that match (or avoid) a metric selector, for test series of user selectors."""

from __future__ import annotations

import re

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
_CANDIDATES = ("500", "503", "200", "201", "error", "failed", "ok", "boxoffice", "ticket-app", "x")


class SelectorError(ValueError):
    """No label set satisfies the selector from the values tried."""


def parse_selector(selector: str) -> tuple[str, list[tuple[str, str, str]]]:
    """``name{a="b", c=~"d"}`` -> ``("name", [("a", "=", "b"), ("c", "=~", "d")])``."""
    selector = selector.strip()
    brace = selector.find("{")
    if brace < 0:
        return selector, []
    if not selector.endswith("}"):
        raise SelectorError(f"cannot read label matchers in {selector!r}")
    name, body = selector[:brace].strip(), selector[brace + 1 : -1]
    matchers, pos = [], 0
    while pos < len(body.strip()):
        match = _MATCHER.match(body, pos)
        if match is None:
            raise SelectorError(f"cannot read label matchers in {selector!r}")
        matchers.append((match.group(1), match.group(2), match.group(3)))
        pos = match.end()
    return name, matchers


def matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for label, op, value in matchers:
        actual = labels.get(label, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": _fullmatch(value, actual),
            "!~": not _fullmatch(value, actual),
        }[op]
        if not ok:
            return False
    return True


def _fullmatch(regex: str, text: str) -> bool:
    try:
        return re.fullmatch(regex, text) is not None
    except re.error:  # RE2 syntax Python does not know: treat as no match
        return False


def satisfying(
    matchers: list[tuple[str, str, str]], avoid: list[tuple[str, str, str]] | None = None
) -> dict[str, str]:
    """Labels matching ``matchers`` and, when given, not matching all of ``avoid``."""
    labels: dict[str, str] = {}
    for label, op, value in matchers:
        if op == "=":
            labels[label] = value
    names = sorted({m[0] for m in matchers} | {m[0] for m in avoid or []})
    free = [n for n in names if n not in labels]
    hints = {m[0]: _literal(m[2]) for m in (*matchers, *(avoid or [])) if "~" in m[1]}
    for attempt in _assignments(free, hints):
        candidate = {**labels, **attempt}
        candidate = {k: v for k, v in candidate.items() if v}
        if matches(candidate, matchers) and (avoid is None or not matches(candidate, avoid)):
            return dict(sorted(candidate.items()))
    wanted = ", ".join(f'{label}{op}"{value}"' for label, op, value in matchers)
    raise SelectorError(f"no label values found for {{{wanted}}}")


def _literal(regex: str) -> str:
    """A string a simple regex matches: ``5..`` -> ``500``, ``/api/x.*`` -> ``/api/x``."""
    text = regex.replace(".*", "").replace(".+", "0")
    text = re.sub(r"\(([^|)]*)(\|[^)]*)?\)", r"\1", text)  # first alternative of a group
    return text.split("|")[0].replace(".", "0").replace("\\", "")


def _assignments(names: list[str], hints: dict[str, str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = [{}]
    for name in names:
        choices = (hints[name], *_CANDIDATES, "") if name in hints else (*_CANDIDATES, "")
        out = [{**a, name: c} for a in out for c in choices]
        out = out[:5000]
    return out


class UntestableSelector(SelectorError):
    """No test series can be made for one of an SLO's selectors; ``key`` says which."""

    def __init__(self, key: str, reason: SelectorError) -> None:
        super().__init__(str(reason))
        self.key = key


def failed_and_good(total: str, errors: str) -> tuple[dict[str, str], dict[str, str]]:
    """Labels of a failed event (matching ``errors``) and of a good one (``total`` only)."""
    total_name, total_matchers = parse_selector(total)
    error_name, error_matchers = parse_selector(errors)
    try:
        bad = satisfying(error_matchers)
    except SelectorError as exc:
        raise UntestableSelector("errors", exc) from None
    try:
        good = satisfying(total_matchers, error_matchers if total_name == error_name else None)
    except SelectorError as exc:
        raise UntestableSelector("total", exc) from None
    return bad, good
