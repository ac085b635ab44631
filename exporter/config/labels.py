"""Constant labels of a database (``databases.<name>.labels``): what a name and a value may be.

Pure checks, used by the settings schema; the collision checks that need the metrics a
database feeds are in the loader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from exporter.catalog import CATALOG

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_LABELS = 8
MAX_VALUE_LENGTH = 128
# Labels Prometheus or the exporter itself set: a constant label must not shadow them.
RESERVED = frozenset({"job", "instance", "le", "quantile", "database", "source"}) | frozenset(
    label for metric in CATALOG for label in metric.labels
)


def constant_labels_problem(labels: Mapping[str, str]) -> str | None:
    """Why ``labels`` cannot be a database's constant labels, or None when they can."""
    if len(labels) > MAX_LABELS:
        return f"at most {MAX_LABELS} labels, got {len(labels)}"
    for name, value in labels.items():
        problem = _name_problem(name) or _value_problem(value)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _name_problem(name: str) -> str | None:
    if not _LABEL_NAME.fullmatch(name):
        return "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
    if name.startswith("__"):
        return "names starting with '__' are reserved to Prometheus"
    if name in RESERVED:
        return "a label boxoffice or Prometheus already sets"
    return None


def _value_problem(value: str) -> str | None:
    if not value:
        return "the value must not be empty"
    if len(value) > MAX_VALUE_LENGTH:
        return f"the value is longer than {MAX_VALUE_LENGTH} characters"
    if not value.isprintable():
        return "the value must be printable (no control characters)"
    return None
