"""Test data for generated promtool tests, and exact models of what PromQL computes on it.

Counters start at 0 at the first sample and grow linearly (piecewise), gauges are constant.
On such data Prometheus 2.42's ``increase``/``rate`` extrapolation is exact: the left edge
is clamped to the zero point, which is the first sample, so ``increase(c[w])`` at ``t`` is
``c(t) - c(max(0, t - w))`` from the second sample on, and ``rate`` is that over ``w``.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.generate.rules.model import Series


@dataclass(frozen=True)
class Counter:
    """A counter from 0 at t=0: ``slopes`` are (until_seconds, increase per second)."""

    slopes: tuple[tuple[float, float], ...]

    @classmethod
    def linear(cls, per_second: float) -> Counter:
        return cls(((float("inf"), per_second),))

    def at(self, t: float) -> float:
        value, start = 0.0, 0.0
        for until, slope in self.slopes:
            end = min(t, until)
            if end > start:
                value += (end - start) * slope
            if t <= until:
                break
            start = until
        return value

    def increase(self, window: float, t: float, step: float) -> float | None:
        """``increase(c[window])`` at ``t``; None before there are two samples."""
        if t < step:
            return None
        return self.at(t) - self.at(max(0.0, t - window))

    def rate(self, window: float, t: float, step: float) -> float | None:
        inc = self.increase(window, t, step)
        return None if inc is None else inc / window

    def series(self, selector: str, length: float, step: float) -> Series:
        """Input series sampled every ``step`` seconds up to ``length``."""
        points = int(length // step)
        values = [self.at(i * step) for i in range(points + 1)]
        return Series(selector, _compact(values))


def sampled(selector: str, values: list[float]) -> Series:
    """An input series with one given value per step."""
    return Series(selector, _compact(values))


def gauge(selector: str, value: float, length: float, step: float) -> Series:
    return Series(selector, f"{_num(value)}x{int(length // step)}")


def _compact(values: list[float]) -> str:
    """Expanding notation: runs with a constant step become ``start+stepxN``."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i + 1
        if j < len(values):
            delta = values[j] - values[i]
            while j + 1 < len(values) and _same(values[j + 1] - values[j], delta):
                j += 1
            parts.append(f"{_num(values[i])}{'+' if delta >= 0 else '-'}{_num(abs(delta))}x{j - i}")
            i = j + 1
        else:
            parts.append(_num(values[i]))
            i = j
    return " ".join(parts)


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _num(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def selector(metric: str, labels: dict[str, str]) -> str:
    """An input series' selector: ``metric{k="v", ...}``, or the bare name without labels."""
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}" if inner else metric
