"""Syncs with a past: completed runs their run list shows, and new runs as long as those were (issue 21).

A client that places its polls by how long a sync's runs took reads the sync's run list
(``GET /syncs/{id}/sync_runs``) before it triggers. :class:`DurationModel` gives a sync durations
drawn log-normal around a median, seeded: :meth:`DurationModel.sample` for the past runs the
list shows, and a separate stream for the runs triggered later, which then take that long in
wall-clock time. To compress time, shrink the median (and the client's poll interval) by the
same factor: a sync whose runs take two minutes can be played in twelve seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from airflow_provider_census.testing.catalog import JSON
from airflow_provider_census.testing.runs import RunScript, iso


@dataclass(frozen=True)
class DurationModel:
    """Run durations in seconds, log-normal: ``median``, and ``spread`` the standard deviation of their logs.

    ``spread=0.1`` gives runs mostly within 20% of the median (a consistent sync), ``0.6`` erratic
    ones. ``seed`` makes every draw repeatable; the past and the future are separate streams, so
    the runs to come are not copies of the history. A new run is queued for ``queued_seconds``
    (at most half its duration) and working for the rest.
    """

    median: float
    spread: float = 0.1
    seed: int = 0
    queued_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.median <= 0 or self.spread < 0 or self.queued_seconds < 0:
            raise ValueError("median must be positive; spread and queued_seconds must not be negative")

    def sample(self, count: int) -> list[float]:
        """The durations of ``count`` past runs, oldest first: the same list for the same model."""
        draws = self._draws("history")
        return [next(draws) for _ in range(count)]

    def future(self) -> Iterator[float]:
        """The durations of the runs triggered from now on, one per run."""
        return self._draws("runs")

    def _draws(self, stream: str) -> Iterator[float]:
        rng = random.Random(f"{self.seed}:{stream}")  # noqa: S311 - test data, not cryptography
        while True:
            yield self.median * math.exp(rng.gauss(0.0, self.spread))

    def script(self, duration: float, base: RunScript) -> RunScript:
        """``base`` (its outcome and counts) timed to end ``duration`` seconds after its trigger."""
        queued = min(self.queued_seconds, duration / 2)
        return replace(base, advance="time", queued_seconds=queued, working_seconds=duration - queued)


def past_run(run_id: int, sync_id: int, created: datetime, duration: float, script: RunScript) -> JSON:
    """A run that completed ``duration`` seconds after ``created``, as ``GET /sync_runs/{id}`` shows one."""
    completed = iso(created + timedelta(seconds=duration))
    return {
        "id": run_id,
        "sync_id": sync_id,
        "source_record_count": script.source_record_count,
        "records_processed": script.records_processed,
        "records_updated": script.records_updated,
        "records_failed": script.records_failed,
        "records_invalid": script.records_invalid,
        "created_at": iso(created),
        "updated_at": completed,
        "completed_at": completed,
        "scheduled_execution_time": None,
        "error_code": None,
        "error_message": None,
        "error_detail": None,
        "status": "completed",
        "current_step": None,
        "canceled": False,
        "full_sync": False,
        "sync_trigger_reason": {"ui_tag": "Schedule", "ui_detail": "Triggered by its schedule"},
    }
