"""When to poll a run, from how long the sync's recent runs took: a pure plan, no I/O, no clock.

Polling every ``poll_interval`` finds a run's end, on average, half an interval late, and spends
as many polls while the run is surely still going as around its end. A sync that runs for about
the same time every day tells us where its end will likely fall, so the same number of polls
can be placed better:

- one **early** poll, to catch a run that fails at once (at half an interval: when fixed polling
  makes its first, on average);
- **sparse** polls while the run is surely still going, never more than
  :data:`SPARSE_GAP_INTERVALS` intervals apart (so a run that fails midway is still seen in
  bounded time);
- **dense** polls over the window where its runs ended (:data:`WINDOW_Z`: the 5th to 95th
  percentile of a log-normal fitted to the history);
- then back to one poll every ``poll_interval``, which stays the longest gap once the likely
  end has passed.

The plan spends no more polls than fixed polling would: up to the end of the window it makes at
most as many polls as fixed polling makes, on average, for a run that ends there, and afterwards
it polls at the same rate (:func:`plan_polls` says how). A sync with too few completed runs
(:data:`MIN_HISTORY_RUNS`), with erratic durations (:data:`MAX_LOG_SPREAD`), or whose window is
too wide for its polls to get dense (:data:`WORTHWHILE_GAP_SHARE`) gets no plan: its runs are
polled every ``poll_interval`` exactly as before.

Offsets are seconds since the run was triggered; the driver adds them to the moment the trigger
answered, and, as for fixed polls, counts a gap from when a poll began.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from airflow_provider_census.api.models import SyncRun, census_time
from airflow_provider_census.api.states import RunOutcome

HISTORY_RUNS = 20
"""The newest completed runs a history is made of: recent enough to follow a sync that grows."""
MIN_HISTORY_RUNS = 5
"""Fewer completed runs than this tell too little: the sync is polled at a fixed interval."""
MAX_LOG_SPREAD = 0.3
"""A history whose log durations spread wider (standard deviation; about a 31% coefficient of
variation) is erratic: its runs are polled at a fixed interval."""
WINDOW_Z = 1.6449
"""The dense window runs from the 5th to the 95th percentile of the fitted durations."""
SPARSE_GAP_INTERVALS = 4.0
"""While the run is surely going, polls are at most this many intervals apart."""
MIN_WINDOW_GAP_SECONDS = 1.0
MIN_WINDOW_GAP_SHARE = 0.1
"""Dense polls are never closer than a tenth of the interval, nor than a second."""
WORTHWHILE_GAP_SHARE = 0.5
"""A plan whose dense polls would be more than half an interval apart halves no lag: not used."""
_ROUNDING = 1e-9
_ROUNDING_SECONDS = 1e-6


@dataclass(frozen=True)
class RunHistory:
    """How long a sync's recent completed runs took: a log-normal fit, in seconds.

    ``median`` is the geometric mean of the durations and ``spread`` the standard deviation of
    their logarithms. Three numbers that cross a deferral as they are (``dataclasses.asdict``).
    """

    runs: int
    median: float
    spread: float

    def quantile(self, z: float) -> float:
        """The duration ``z`` standard deviations from the median, on the log scale."""
        return self.median * math.exp(z * self.spread)


def summarize(durations: Sequence[float]) -> RunHistory | None:
    """The history of the newest :data:`HISTORY_RUNS` durations (newest first), or None when
    fewer than :data:`MIN_HISTORY_RUNS` of them are positive."""
    recent = [duration for duration in durations if duration > 0][:HISTORY_RUNS]
    if len(recent) < MIN_HISTORY_RUNS:
        return None
    logs = [math.log(duration) for duration in recent]
    return RunHistory(runs=len(recent), median=math.exp(statistics.fmean(logs)), spread=statistics.stdev(logs))


def completed_durations(runs: Iterable[SyncRun]) -> list[float]:
    """Seconds from creation to completion of each run that succeeded, in the order given.

    Failed, canceled and skipped runs say nothing about how long a good run takes; a run
    whose times are missing or unreadable is left out.
    """
    durations = []
    for run in runs:
        if run.outcome is not RunOutcome.SUCCEEDED:
            continue
        created, completed = census_time(run.created_at), census_time(run.completed_at)
        if created is not None and completed is not None:
            durations.append(completed - created)
    return durations


@dataclass(frozen=True)
class PollPlan:
    """Where the polls of one run fall, as offsets in seconds since its trigger.

    One poll at ``early``; then every ``sparse_gap`` up to ``window_start``; every
    ``window_gap`` up to ``window_end`` (both polled); then every ``poll_interval``.
    """

    poll_interval: float
    early: float
    sparse_gap: float
    window_start: float
    window_gap: float
    window_end: float

    def next_offset(self, elapsed: float) -> float:
        """The first poll strictly after ``elapsed`` seconds since the trigger."""
        if elapsed < self.early:
            return self.early
        if elapsed < self.window_start:
            return _up_to(_next_step(self.early, self.sparse_gap, elapsed), self.window_start)
        if elapsed < self.window_end:
            return _up_to(_next_step(self.window_start, self.window_gap, elapsed), self.window_end)
        return _next_step(self.window_end, self.poll_interval, elapsed)

    def to_json(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in PLAN_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> PollPlan:
        """The plan back from a trigger's kwargs; a TypeError or KeyError says what is wrong with it."""
        values = {name: data[name] for name in PLAN_FIELDS}
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in values.values()):
            raise TypeError(f"a poll plan holds numbers only, got {dict(data)!r:.200}")
        return cls(**{name: float(value) for name, value in values.items()})  # type: ignore[arg-type]

    def offsets(self, until: float) -> list[float]:
        """Every poll up to and including the first at or after ``until``: the polls a run ending then costs."""
        polls = [self.early]
        while polls[-1] < until:
            polls.append(self.next_offset(polls[-1]))
        return polls


@dataclass(frozen=True)
class ScheduledPolls:
    """A run's plan, anchored at ``started_at``, the moment its trigger answered (epoch seconds)."""

    plan: PollPlan
    started_at: float

    def next_poll(self, began: float) -> float:
        """When to poll after a poll that began at ``began`` (epoch seconds)."""
        return self.started_at + self.plan.next_offset(began - self.started_at)

    def to_json(self) -> dict[str, object]:
        return {"started_at": self.started_at, "plan": self.plan.to_json()}

    @classmethod
    def from_json(cls, data: object) -> ScheduledPolls | None:
        """The schedule a trigger was given, None for fixed polling; a ValueError for one that cannot be read."""
        if data is None:
            return None
        try:
            if not isinstance(data, Mapping) or not isinstance(data["plan"], Mapping):
                raise TypeError("not a mapping with a plan")
            started_at = data["started_at"]
            if isinstance(started_at, bool) or not isinstance(started_at, int | float):
                raise TypeError(f"started_at {started_at!r}")
            return cls(PollPlan.from_json(data["plan"]), float(started_at))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a poll schedule cannot be read ({exc!r})") from None


def schedule_for(runs: Iterable[SyncRun] | None, poll_interval: float, started_at: float) -> ScheduledPolls | None:
    """The schedule of a run triggered at ``started_at``, from the sync's recent runs (newest first), or None."""
    plan = plan_polls(summarize(completed_durations(runs or ())), poll_interval)
    return None if plan is None else ScheduledPolls(plan, started_at)


PLAN_FIELDS = ("poll_interval", "early", "sparse_gap", "window_start", "window_gap", "window_end")


def _up_to(offset: float, end: float) -> float:
    """``offset``, or ``end`` when it is past it or a rounding error short of it (no poll a hair before another)."""
    return end if offset > end - _ROUNDING_SECONDS else offset


def _next_step(start: float, step: float, elapsed: float) -> float:
    """The first of ``start + k * step`` (k >= 1) strictly after ``elapsed``; an ``elapsed`` a rounding
    error short of a step counts as on it, so that a plan walked from poll to poll always moves on."""
    return start + (math.floor((elapsed - start) / step + _ROUNDING) + 1) * step


def plan_polls(history: RunHistory | None, poll_interval: float) -> PollPlan | None:
    """The plan for a run of a sync with this history, or None: poll every ``poll_interval``.

    The poll budget is what fixed polling spends, on average, on a run that ends at the window's
    end: ``window_end / poll_interval + 1`` polls (the first one lands anywhere in the first
    interval). The early and sparse polls take their share; the rest cover the window evenly.
    """
    if history is None or history.spread > MAX_LOG_SPREAD:
        return None
    window_start, window_end = history.quantile(-WINDOW_Z), history.quantile(WINDOW_Z)
    early = poll_interval / 2
    sparse_gaps = math.ceil((window_start - early) / (SPARSE_GAP_INTERVALS * poll_interval))
    budget = math.floor(window_end / poll_interval) + 1
    # early + (sparse_gaps - 1) polls between it and the window + window_gaps + 1 in the window
    window_gaps = budget - sparse_gaps - 1
    if window_gaps < 1:
        return None
    floor = max(MIN_WINDOW_GAP_SECONDS, MIN_WINDOW_GAP_SHARE * poll_interval)
    window_gap = max((window_end - window_start) / window_gaps, floor)
    if window_gap > WORTHWHILE_GAP_SHARE * poll_interval:
        return None
    return PollPlan(
        poll_interval=poll_interval,
        early=early,
        sparse_gap=(window_start - early) / sparse_gaps,
        window_start=window_start,
        window_gap=window_gap,
        window_end=window_end,
    )
