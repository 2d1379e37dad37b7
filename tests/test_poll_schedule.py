"""The adaptive poll schedule, table by table: history in, offsets out (core/schedule.py)."""

from __future__ import annotations

import itertools
import math

import pytest

from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.core.schedule import (
    HISTORY_RUNS,
    PollPlan,
    RunHistory,
    completed_durations,
    plan_polls,
    summarize,
)

PLAN = PollPlan(poll_interval=10.0, early=5.0, sparse_gap=30.0, window_start=95.0, window_gap=3.0, window_end=110.0)


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ([], None),
        ([100.0] * 4, None),  # too few runs to tell
        ([100.0] * 4 + [0.0, -3.0], None),  # durations that are not positive are no runs
        ([100.0] * 5, RunHistory(runs=5, median=100.0, spread=0.0)),
        # the newest HISTORY_RUNS only: an older, slower past is forgotten
        ([50.0] * HISTORY_RUNS + [500.0] * 10, RunHistory(runs=HISTORY_RUNS, median=50.0, spread=0.0)),
    ],
)
def test_summarize(durations: list[float], expected: RunHistory | None) -> None:
    found = summarize(durations)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.runs, found.median, found.spread) == (
            expected.runs,
            pytest.approx(expected.median),
            pytest.approx(expected.spread, abs=1e-12),
        )


def test_summary_is_a_log_normal_fit() -> None:
    found = summarize([50.0, 200.0, 100.0, 100.0, 100.0])
    assert found is not None
    assert found.median == pytest.approx(100.0)  # the geometric mean
    assert found.spread == pytest.approx(math.log(2) * math.sqrt(2 / 4))
    assert found.quantile(1.0) == pytest.approx(100.0 * math.exp(found.spread))


def run(run_id: int, status: str, created: str | None, completed: str | None) -> SyncRun:
    return SyncRun(id=run_id, sync_id=1, status=status, canceled=False, created_at=created, completed_at=completed)


def test_completed_durations_keep_successful_runs_with_both_times() -> None:
    runs = [
        run(5, "completed", "2026-01-01T10:00:00.000Z", "2026-01-01T10:02:00.500Z"),
        run(4, "failed", "2026-01-01T09:00:00.000Z", None),
        run(3, "completed", "2026-01-01T08:00:00.000Z", None),
        run(2, "completed", "not a time", "2026-01-01T07:01:00.000Z"),
        run(1, "completed", "2026-01-01T06:00:00+00:00", "2026-01-01T06:01:30+00:00"),
    ]
    assert completed_durations(runs) == [120.5, 90.0]


@pytest.mark.parametrize(
    ("history", "interval"),
    [
        (None, 10.0),  # no history: polled as today
        (RunHistory(20, 120.0, 0.31), 10.0),  # erratic
        (RunHistory(20, 12.0, 0.05), 10.0),  # runs about as long as one interval: nothing to place
        (RunHistory(20, 0.5, 0.0), 10.0),
        (RunHistory(20, 30.0, 0.25), 10.0),  # a window too wide for its polls to get dense
    ],
)
def test_no_plan(history: RunHistory | None, interval: float) -> None:
    assert plan_polls(history, interval) is None


def test_plan_of_a_consistent_sync() -> None:
    plan = plan_polls(RunHistory(20, 120.0, 0.1), 10.0)
    start, end = 120.0 * math.exp(-0.16449), 120.0 * math.exp(0.16449)
    assert plan is not None
    assert (plan.poll_interval, plan.early) == (10.0, 5.0)
    assert plan.window_start == pytest.approx(start)
    assert plan.window_end == pytest.approx(end)
    # 15 polls up to the window's end (as fixed polling, on average): early, 2 between, 12 in the window
    assert plan.sparse_gap == pytest.approx((start - 5.0) / 3)
    assert plan.window_gap == pytest.approx((end - start) / 11)
    assert len(plan.offsets(end)) == 15


def test_a_sync_that_always_takes_the_same_time_is_polled_densely_but_not_flooded() -> None:
    plan = plan_polls(RunHistory(20, 120.0, 0.0), 10.0)
    assert plan is not None
    assert plan.window_start == plan.window_end == pytest.approx(120.0)
    assert plan.window_gap == 1.0  # a tenth of the interval, at least a second
    assert plan.offsets(135.0)[-4:] == [pytest.approx(x) for x in (115 * 2 / 3 + 5, 120.0, 130.0, 140.0)]


@pytest.mark.parametrize(
    ("elapsed", "offset"),
    [
        (-1.0, 5.0),  # before the trigger: the early poll
        (0.0, 5.0),
        (5.0, 35.0),  # sparse while the run surely goes on
        (34.9, 35.0),
        (35.0, 65.0),
        (65.0, 95.0),  # the last sparse step lands on the window
        (94.0, 95.0),
        (95.0, 98.0),  # dense in the window
        (104.0, 107.0),
        (107.0, 110.0),  # the window's end is polled
        (109.5, 110.0),
        (110.0, 120.0),  # then every poll_interval
        (125.0, 130.0),
    ],
)
def test_next_offset(elapsed: float, offset: float) -> None:
    assert PLAN.next_offset(elapsed) == pytest.approx(offset)


def test_offsets_are_the_polls_a_run_ending_then_costs() -> None:
    assert PLAN.offsets(96.0) == [5.0, 35.0, 65.0, 95.0, 98.0]
    assert PLAN.offsets(5.0) == [5.0]


@pytest.mark.parametrize("interval", [1.0, 10.0, 60.0])
@pytest.mark.parametrize("spread", [0.0, 0.05, 0.1, 0.2, 0.3])
@pytest.mark.parametrize("median_intervals", [1.5, 3.0, 8.0, 12.5, 40.0, 150.0])
def test_never_more_polls_by_any_moment_than_fixed_polling(
    interval: float, spread: float, median_intervals: float
) -> None:
    """Fixed polling has made at most floor(t / interval) + 1 polls by t; a plan never more."""
    plan = plan_polls(RunHistory(20, median_intervals * interval, spread), interval)
    if plan is None:
        return
    offsets = plan.offsets(3 * median_intervals * interval)
    assert offsets == sorted(set(offsets))
    for made, offset in enumerate(offsets, start=1):
        assert made <= math.floor(offset / interval + 1e-9) + 1
    gaps = [(later - earlier, later) for earlier, later in itertools.pairwise(offsets)]
    assert max(gap for gap, _ in gaps) <= 4 * interval + 1e-9  # a run that fails midway is seen in bounded time
    assert all(gap <= interval + 1e-9 for gap, offset in gaps if offset > plan.window_end)
