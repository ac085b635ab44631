"""One benchmark run: each profile simulated, injected, evaluated and scored.

Profiles are independent (each gets its own Prometheus and TSDB), so they run in parallel
worker processes; seeds are derived from the run's seed and the profile's position in
``PROFILES`` so that a run is reproducible whatever the number of workers or the profiles
chosen.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from exporter.quality.corpus import Window
from exporter.quality.evaluate import evaluate
from exporter.quality.incidents import EFFECT_UNITS, Kind, schedule
from exporter.quality.profiles import PROFILES, ShopProfile
from exporter.quality.rules import load
from exporter.quality.scoring import WEEK_S, ShopRun
from exporter.quality.simulate import simulate

# A Monday well clear of daylight-saving changes in the northern hemisphere.
DEFAULT_START = (2026, 8, 3)


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What one run simulates and where it reads the rules."""

    rules: tuple[Path, ...]
    timezone: str
    weeks: int = 4
    # Unscored history before the scored weeks: the seasonal baselines (rules/thresholds.yaml
    # `baseline.min_weeks`, 2) need two past weeks before the alerts reading them may fire.
    warmup_weeks: int = 2
    interval: int = 60
    seed: int = 15
    kinds: tuple[Kind, ...] = tuple(Kind)
    work: Path | None = None


def window_of(config: BenchConfig) -> tuple[Window, float]:
    """The simulated window and the time from which alerts are scored."""
    year, month, day = DEFAULT_START
    start = datetime(year, month, day, tzinfo=ZoneInfo(config.timezone)).timestamp()
    steps = int((config.weeks + config.warmup_weeks) * WEEK_S // config.interval)
    return Window(start=start, steps=steps, interval=config.interval), start + (
        config.warmup_weeks * WEEK_S
    )


def _print(line: str) -> None:
    print(line, flush=True)  # workers share the terminal; lines must not wait in a buffer


def run_profile(
    profile: ShopProfile, index: int, config: BenchConfig, log: Callable[[str], None] = _print
) -> ShopRun:
    """Simulate, inject, evaluate and collect the notifications of one profile."""
    window, scored_from = window_of(config)
    rng = random.Random(config.seed * 1000 + index)  # noqa: S311 - a reproducible schedule
    incidents = (
        schedule(rng, start=scored_from, end=window.end, kinds=config.kinds) if config.kinds else ()
    )
    corpus = simulate(
        profile, window, incidents, timezone=config.timezone, seed=config.seed * 1000 + index
    )
    rules = load(config.rules)

    began = time.monotonic()

    def say(line: str) -> None:
        log(f"[{profile.name} {time.monotonic() - began:5.0f}s] {line.strip()}")

    with tempfile.TemporaryDirectory(dir=config.work, prefix="bench-") as work:
        episodes = evaluate(
            corpus,
            rules,
            Path(work),
            scored_from=scored_from,
            timezone=config.timezone,
            log=say,
        )
    return ShopRun(
        profile=profile.name,
        start=scored_from,
        end=window.end,
        incidents=incidents,
        episodes=tuple(episodes),
        effects=tuple(
            corpus.effects.get(i, 0.0) if incident.kind in EFFECT_UNITS else None
            for i, incident in enumerate(incidents)
        ),
    )


def _run_indexed(job: tuple[ShopProfile, int, BenchConfig]) -> ShopRun:
    profile, index, config = job
    return run_profile(profile, index, config)


def run(config: BenchConfig, profiles: tuple[ShopProfile, ...], *, jobs: int = 2) -> list[ShopRun]:
    """Every profile's run, ``jobs`` at a time, in profile order. A profile's seed follows
    its place in ``PROFILES``, so a run of some profiles (``--profiles``) replays exactly the
    traffic and incidents those profiles had in the full run."""
    work = [
        (profile, PROFILES.index(profile) if profile in PROFILES else i, config)
        for i, profile in enumerate(profiles)
    ]
    if jobs <= 1:
        return [_run_indexed(job) for job in work]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_run_indexed, work))
