"""What many runs mean for one task: where each selected sync stands, and the task's verdict on all.

Pure, like :mod:`.runs`: the many-syncs operator keeps a :class:`SyncBatch` across its
deferrals (its JSON form travels in the deferral's kwargs) and asks it, at the end, which
syncs failed and why. Each sync has exactly one of: a run going (its own, or an earlier run
that made Census skip its own, which it only watches), a run that ended and decides it, or a
problem that left it without such a run (its trigger failed, a deadline passed, polls failed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_census.api.errors import CensusRunError
from airflow_provider_census.runs import RunExpectations, RunSummary


@dataclass
class SyncProgress:
    """A sync whose run is still going: ``run_id`` is the task's own, or only watched when ``watching``."""

    sync_id: int
    run_id: int
    watching: bool = False
    skips: int = 0
    schedule: dict[str, Any] | None = None
    """Where the run's polls go by its sync's history (the JSON of ``core.schedule.ScheduledPolls``)."""

    def to_json(self) -> list[Any]:
        return [self.sync_id, self.run_id, self.watching, self.skips, self.schedule]

    @classmethod
    def from_json(cls, data: object) -> SyncProgress:
        if not isinstance(data, list) or len(data) != 5 or not isinstance(data[4], dict | None):
            raise ValueError(
                f"a sync's progress must be [sync_id, run_id, watching, skips, schedule], got {data!r:.100}"
            )
        sync_id, run_id, watching, skips, schedule = data
        return cls(int(sync_id), int(run_id), bool(watching), int(skips), schedule)


@dataclass
class SyncBatch:
    """Every selected sync of one task, by sync id, across the task's deferrals.

    ``own_runs`` remembers the last run the task triggered (or reattached to) per sync, the
    run a retry looks at; it outlives the run's wait.
    """

    going: dict[int, SyncProgress] = field(default_factory=dict)
    ended: dict[int, RunSummary] = field(default_factory=dict)
    problems: dict[int, str] = field(default_factory=dict)
    own_runs: dict[int, int] = field(default_factory=dict)

    def start(self, sync_id: int, run_id: int, skips: int = 0, schedule: dict[str, Any] | None = None) -> None:
        """The task's own run of the sync is going (its polls placed by ``schedule``, if any)."""
        self.going[sync_id] = SyncProgress(sync_id, run_id, skips=skips, schedule=schedule)
        self.own_runs[sync_id] = run_id

    def watch(self, sync_id: int, blocking_run_id: int, skips: int) -> None:
        """Wait for the earlier run that made Census skip the sync's own, before triggering afresh."""
        self.going[sync_id] = SyncProgress(sync_id, blocking_run_id, watching=True, skips=skips)

    def end(self, sync_id: int, summary: RunSummary) -> None:
        self.going.pop(sync_id, None)
        self.ended[sync_id] = summary
        self.own_runs[sync_id] = summary.sync_run_id

    def give_up(self, sync_id: int, problem: str) -> None:
        self.going.pop(sync_id, None)
        self.problems[sync_id] = problem

    def progress_of_run(self, run_id: int) -> SyncProgress | None:
        return next((progress for progress in self.going.values() if progress.run_id == run_id), None)

    @property
    def own_going_run_ids(self) -> list[int]:
        return [progress.run_id for progress in self.going.values() if not progress.watching]

    @property
    def watched_run_ids(self) -> list[int]:
        return [progress.run_id for progress in self.going.values() if progress.watching]

    def kept_runs(self) -> dict[str, int]:
        """The task's own run per sync, keyed by the sync id as text (JSON keys), for later tries."""
        return {str(sync_id): run_id for sync_id, run_id in sorted(self.own_runs.items())}

    def failures(self, expectations: RunExpectations) -> dict[int, str]:
        """Why each sync that did not succeed failed, by sync id: its run's verdict (error, link) or its problem."""
        found = {sync_id: f"sync {sync_id}: {problem}" for sync_id, problem in self.problems.items()}
        for sync_id, summary in self.ended.items():
            try:
                expectations.check(summary)
            except CensusRunError as exc:
                found[sync_id] = f"sync {sync_id}: {exc}"
        return dict(sorted(found.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "going": [progress.to_json() for progress in self.going.values()],
            "ended": {str(sync_id): summary.to_json() for sync_id, summary in self.ended.items()},
            "problems": {str(sync_id): problem for sync_id, problem in self.problems.items()},
            "own_runs": self.kept_runs(),
        }

    @classmethod
    def from_json(cls, data: object) -> SyncBatch:
        """The batch back from the deferral's kwargs; a ValueError says what is wrong with them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"the syncs' progress must be a mapping, got {type(data).__name__}")
        try:
            going = [SyncProgress.from_json(item) for item in data["going"]]
            return cls(
                going={progress.sync_id: progress for progress in going},
                ended={int(key): RunSummary.from_json(value) for key, value in data["ended"].items()},
                problems={int(key): str(value) for key, value in data["problems"].items()},
                own_runs={int(key): int(value) for key, value in data["own_runs"].items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"the syncs' progress cannot be read ({exc})") from None
