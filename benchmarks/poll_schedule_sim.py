"""Adaptive against fixed polling, simulated: detection lag and GETs per run (issue 21), in seconds.

``python benchmarks/poll_schedule_sim.py`` (any venv with the provider importable). No server, no
clock: each sync gets a median duration, a history of completed runs drawn log-normal around it,
and new runs drawn from the same distribution. Fixed polling starts at a random point of the first
interval (as the triggers spread their first polls) and polls every interval; adaptive follows
``core.schedule.plan_polls`` for the sync's history, or polls as fixed when it gives no plan. The
lag is the first poll at or after the run's end minus the end; the GETs are every poll up to that
one. Seeded: the same figures every run. Targets (issue 21): with consistent history, lag p50 at
most half of fixed's at no more GETs per run; without history or erratic, both within 10% of fixed.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_census.core.schedule import PollPlan, plan_polls, summarize


@dataclass(frozen=True)
class Cohort:
    """Syncs whose run durations are log-normal with this spread, and how many past runs each shows."""

    name: str
    spread: float
    history_runs: int


COHORTS = (
    Cohort("consistent (spread 0.10)", 0.10, 20),
    Cohort("consistent (spread 0.20)", 0.20, 20),
    Cohort("no history", 0.10, 0),
    Cohort("short history (3 runs)", 0.10, 3),
    Cohort("erratic (spread 0.30)", 0.30, 20),
    Cohort("erratic (spread 0.60)", 0.60, 20),
)


def fixed_polls(end: float, interval: float, first: float) -> tuple[float, int]:
    """Lag and GETs of fixed polling that starts at ``first`` (within the first interval)."""
    gets = max(0, math.ceil((end - first) / interval)) + 1
    return first + (gets - 1) * interval - end, gets


def planned_polls(end: float, plan: PollPlan) -> tuple[float, int]:
    polls = plan.offsets(end)
    return polls[-1] - end, len(polls)


def simulate(
    cohort: Cohort, interval: float, syncs: int, runs: int, median_range: tuple[float, float], seed: int
) -> dict[str, float]:
    """Each sync's runs, polled both ways; lag p50/p95 and GETs per run of each, and the share planned."""
    rng = random.Random(f"{seed}:{cohort.name}")
    lags: dict[str, list[float]] = {"fixed": [], "adaptive": []}
    gets: dict[str, list[int]] = {"fixed": [], "adaptive": []}
    planned = 0
    for _ in range(syncs):
        median = rng.uniform(*median_range)

        def draw(median: float = median) -> float:
            return median * math.exp(rng.gauss(0.0, cohort.spread))

        history = [draw() for _ in range(cohort.history_runs)]
        plan = plan_polls(summarize(history), interval)
        planned += plan is not None
        for _ in range(runs):
            end = draw()
            first = rng.uniform(0.0, interval)
            fixed = fixed_polls(end, interval, first)
            adaptive = fixed if plan is None else planned_polls(end, plan)
            for name, (lag, count) in (("fixed", fixed), ("adaptive", adaptive)):
                lags[name].append(lag)
                gets[name].append(count)
    result = {"planned_share": planned / syncs}
    for name in ("fixed", "adaptive"):
        result[f"{name}_p50"] = percentile(lags[name], 0.50)
        result[f"{name}_p95"] = percentile(lags[name], 0.95)
        result[f"{name}_gets"] = statistics.fmean(gets[name])
    return result


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=10.0, help="poll_interval (default 10 s)")
    parser.add_argument("--median", type=float, nargs=2, default=(90.0, 150.0), help="range of sync medians (s)")
    parser.add_argument("--syncs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=50, help="runs per sync")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args(argv)
    low, high = args.median
    print(f"poll_interval {args.interval:g} s, sync medians {low:g}-{high:g} s, {args.syncs} syncs x {args.runs} runs")
    header = ("cohort", "planned", "lag p50 fixed/adaptive", "lag p95 fixed/adaptive", "GETs/run fixed/adaptive")
    print(" | ".join(header))
    for cohort in COHORTS:
        found = simulate(cohort, args.interval, args.syncs, args.runs, (low, high), args.seed)
        print(
            f"{cohort.name} | {found['planned_share']:.0%} | "
            f"{found['fixed_p50']:.2f} / {found['adaptive_p50']:.2f} "
            f"({found['adaptive_p50'] / found['fixed_p50']:.2f}x) | "
            f"{found['fixed_p95']:.2f} / {found['adaptive_p95']:.2f} "
            f"({found['adaptive_p95'] / found['fixed_p95']:.2f}x) | "
            f"{found['fixed_gets']:.2f} / {found['adaptive_gets']:.2f} "
            f"({found['adaptive_gets'] / found['fixed_gets']:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
