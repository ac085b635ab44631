"""Pure conversions from query results to Prometheus metric families.

Nothing here touches a database: rows come in as plain tuples with their column names
and type names, so every rule (column checks, money units, folding) is tested as a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from hashlib import sha256

from prometheus_client.core import Metric

from exporter.sources.families import SharedLabels, with_series
from exporter.sources.querypack import MetricSpec

NUMERIC_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric"})
VALUE_COLUMN = "value"

# Stripe's currency exponents: amounts are integers in the smallest unit, which is the
# major unit itself for zero-decimal currencies and a thousandth for three-decimal ones.
_ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of a metric: label values in the metric's label order, and its value."""

    labels: tuple[str, ...]
    value: float


class ColumnMismatchError(ValueError):
    """A query's columns do not fit the metric it is meant to compute."""


def check_columns(spec: MetricSpec, columns: Sequence[tuple[str, str]]) -> str | None:
    """Why ``(name, type name)`` columns cannot compute ``spec``, or None when they can."""
    names = [name for name, _type in columns]
    expected = [*spec.labels, VALUE_COLUMN]
    if sorted(names) != sorted(expected) or len(set(names)) != len(names):
        return f"query returns columns ({', '.join(names)}); expected ({', '.join(expected)})"
    value_type = dict(columns)[VALUE_COLUMN]
    if value_type not in NUMERIC_TYPES:
        return f"column 'value' is of type {value_type}; expected a number"
    return None


def to_samples(
    spec: MetricSpec, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[object]]
) -> list[Sample]:
    """Turn result rows into samples, converting money to major units; NULL values are skipped."""
    problem = check_columns(spec, columns)
    if problem:
        raise ColumnMismatchError(problem)
    names = [name for name, _type in columns]
    label_at = [names.index(label) for label in spec.labels]
    value_at = names.index(VALUE_COLUMN)
    samples = []
    for row in rows:
        raw = row[value_at]
        if raw is None:
            continue
        labels = tuple("" if row[i] is None else str(row[i]) for i in label_at)
        value = float(raw) if isinstance(raw, int | float | Decimal) else float(str(raw))
        if spec.unit == "minor_currency":
            currency = labels[spec.labels.index("currency")]
            value = major_units(value, currency)
        samples.append(Sample(labels, value))
    return samples


CLIP_MARKER = "…"


def clip_label(value: str, limit: int) -> tuple[str, bool]:
    """``value`` cut to ``limit`` characters, and whether it was cut.

    A cut value ends with the marker and a short hash of the whole, so two long values
    sharing a prefix stay two series instead of colliding into one.
    """
    if len(value) <= limit:
        return value, False
    digest = sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{value[: limit - len(digest) - 1]}{CLIP_MARKER}{digest}", True


def major_units(minor: float, currency: str) -> float:
    """Convert an amount in the smallest currency unit to major units (cents -> dollars)."""
    code = currency.lower()
    if code in _ZERO_DECIMAL:
        return minor
    if code in _THREE_DECIMAL:
        return minor / 1000
    return minor / 100


def to_family(
    spec: MetricSpec,
    samples: Iterable[Sample],
    labels: Mapping[str, str] | None = None,
    shared: SharedLabels | None = None,
) -> Metric:
    """Build the metric family exposed for ``spec``, as the catalog declares it, each series
    with the constant ``labels`` (a database's) after its own; ``shared``: label dicts the
    database's other families already built (see :func:`with_series`)."""
    return with_series(spec.name, ((s.labels, s.value) for s in samples), labels or {}, shared)
