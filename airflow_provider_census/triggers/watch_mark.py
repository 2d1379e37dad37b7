"""What an ``AssetWatcher`` of a Census sync remembers, and what each poll decides from it.

Pure: no Airflow, no HTTP. A :class:`WatchMark` says which runs of the sync are decided
(fired, or passed over by the outcome filter); the functions here say, from a poll's listing
of runs, where a new watch begins, which runs ended since the mark and the mark that may be
stored once each fired run's event is. The trigger (:mod:`airflow_provider_census.triggers.sync_events`)
and its polls (:mod:`airflow_provider_census.triggers.sync_watch`) carry them out.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_census.api.models import SyncRun


@dataclass(frozen=True)
class WatchMark:
    """Which runs of the sync are decided (fired, or passed over by the outcome filter).

    Every run up to ``settled_through`` is decided, and so is each id in ``decided`` above
    it: runs do not end in the order they start, so one mark alone would either skip an
    older run that ends late or fire a newer one twice. A run still going (or in a state
    this provider does not know) keeps ``settled_through`` below it.
    """

    settled_through: int
    decided: frozenset[int] = field(default_factory=frozenset)

    def covers(self, run_id: int) -> bool:
        return run_id <= self.settled_through or run_id in self.decided

    def advanced(self, runs: Iterable[SyncRun], newly_decided: Iterable[int], floor: int) -> WatchMark:
        """The mark after one poll saw ``runs`` (every run above ``floor``) and decided ``newly_decided``.

        ``floor`` is at least ``settled_through``: it is higher only when the poll could not
        look back that far, and the runs below it are given up.
        """
        decided = self.decided | frozenset(newly_decided)
        seen = [run for run in runs if run.id > floor]
        open_ids = [run.id for run in seen if run.id not in decided and not run.outcome.is_terminal]
        settled = min(open_ids) - 1 if open_ids else max((run.id for run in seen), default=floor)
        settled = max(settled, floor, self.settled_through)
        return WatchMark(settled, frozenset(run_id for run_id in decided if run_id > settled))

    def to_json(self) -> dict[str, Any]:
        return {"settled_through": self.settled_through, "decided": sorted(self.decided)}

    @classmethod
    def from_json(cls, data: object) -> WatchMark:
        """The mark back from the store; a ValueError when it is not one (the watch then starts afresh)."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping, got {type(data).__name__}")
        settled, decided = data.get("settled_through"), data.get("decided")
        if isinstance(settled, bool) or not isinstance(settled, int) or not isinstance(decided, list):
            raise ValueError(f"not a watch mark: {json.dumps(data)[:200]}")
        if not all(isinstance(run_id, int) and not isinstance(run_id, bool) for run_id in decided):
            raise ValueError("decided run ids must be integers")
        return cls(settled, frozenset(decided))


def first_mark(runs: Sequence[SyncRun]) -> WatchMark:
    """The mark of a watch that begins now: every run that already ended is decided, unfired."""
    floor = min((run.id for run in runs), default=1) - 1
    return WatchMark(floor).advanced(runs, (run.id for run in runs if run.outcome.is_terminal), floor)


def ended_since(mark: WatchMark, runs: Iterable[SyncRun]) -> list[SyncRun]:
    """The runs that reached a known end and that ``mark`` does not cover, oldest first."""
    return sorted((run for run in runs if not mark.covers(run.id) and run.outcome.is_terminal), key=lambda run: run.id)


def fired_with_marks(
    before: WatchMark, ended: Sequence[SyncRun], outcomes: Collection[str]
) -> list[tuple[SyncRun, WatchMark]]:
    """Each run of ``ended`` that fires (its outcome is in ``outcomes``), with the mark that covers it.

    That mark is ``before`` plus the run and the runs of ``ended`` before it: it may be
    written once this run's event and those before it are stored, not those after. The runs
    the outcome filter passes over are in it from the first: they never fire.
    """
    decided = set(before.decided) | {run.id for run in ended if run.outcome.value not in outcomes}
    fired = []
    for run in (run for run in ended if run.outcome.value in outcomes):
        decided.add(run.id)
        fired.append((run, WatchMark(before.settled_through, frozenset(decided))))
    return fired
