"""One watch of a Census sync's runs: its polls, its failures and where its mark is kept.

The trigger :class:`~airflow_provider_census.triggers.sync_events.CensusSyncRunFinishedTrigger`
drives a :class:`SyncWatch` with :func:`polls`, on its own loop (Airflow 3.0-3.2) or as the
producer of an ack-mode stream (Airflow 3.3+, :mod:`airflow_provider_census.triggers.acked_watch`);
what a poll decides is :mod:`airflow_provider_census.triggers.watch_mark`'s, and its retries
follow the rules of every wait (:mod:`airflow_provider_census.core.wait`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from airflow_provider_census.api.errors import CensusError
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.retry import is_transient, retry_after_of
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.wait import backoff, honoured
from airflow_provider_census.hooks.census_async import CensusAsyncHook
from airflow_provider_census.runs import RunSummary
from airflow_provider_census.triggers.watch_mark import WatchMark, ended_since, fired_with_marks, first_mark
from airflow_provider_census.version_compat import aget_variable, aset_variable


class WatchedSync(Protocol):
    """What a watch is told of the sync it watches: the trigger's settings and its log, nothing else."""

    sync_id: int
    census_conn_id: str
    poll_interval: float
    outcomes: tuple[str, ...]

    @property
    def log(self) -> Any: ...


LIST_PAGE_SIZE = 25
CATCH_UP_RUNS = 100
"""How many of a sync's newest runs one poll reads at most, looking back for runs not yet decided."""

Fired = list[tuple[RunSummary, WatchMark]]
"""What one poll fires, oldest first: each run's summary with the mark that may be stored once its event is."""


class MarkStore:
    """Where a watch keeps its mark: the asset state store, else an Airflow Variable of the same key.

    The triggerer gives a watcher an asset state store on Airflow 3.3+; for a trigger that
    several assets share, Airflow's accessor has no single store and raises ValueError.
    """

    def __init__(self, asset_store: Any, key: str, log: Any) -> None:
        self.asset_store = asset_store
        self.key = key
        self.log = log

    async def load(self) -> WatchMark | None:
        """The stored mark, or None for a first watch; store failures propagate, to be retried."""
        stored = await self._read()
        if stored is None:
            return None
        try:
            return WatchMark.from_json(stored if self.asset_store is not None else json.loads(stored))
        except ValueError as exc:
            self.log.warning("The stored mark %s cannot be read (%s); the watch starts afresh", self.key, exc)
            return None

    async def _read(self) -> Any:
        if self.asset_store is not None:
            try:
                return await self.asset_store.aget(self.key, None)
            except ValueError:
                self.log.info(
                    "This Census watcher serves several assets, so its mark is the Airflow Variable %s", self.key
                )
                self.asset_store = None
        return await aget_variable(self.key)

    async def save(self, mark: WatchMark) -> None:
        if self.asset_store is not None:
            await self.asset_store.aset(self.key, mark.to_json())
        else:
            await aset_variable(self.key, json.dumps(mark.to_json()))


class SyncWatch:
    """One watcher's state between polls: the mark, what was saved, failures in a row."""

    def __init__(self, trigger: WatchedSync, hook: CensusAsyncHook, marks: MarkStore) -> None:
        self.trigger = trigger
        self.hook = hook
        self.marks = marks
        self.mark: WatchMark | None = None
        self.loaded = False
        self.saved: WatchMark | None = None
        self.failures = 0
        self.last_error: BaseException | None = None
        self.unknown_noted: set[int] = set()

    async def poll(self) -> Fired:
        """The runs one poll fires, oldest first; none when Census or the store could not be read."""
        try:
            if not self.loaded:
                self.mark = self.saved = await self.marks.load()
                self.loaded = True
            fired = await self._read_runs()
        except Exception as exc:  # a watcher outlives every failure; each is logged and retried
            self._note_failure(exc)
            return []
        self.failures, self.last_error = 0, None
        return fired

    async def _read_runs(self) -> Fired:
        sync_id = self.trigger.sync_id
        floor = None if self.mark is None else self.mark.settled_through
        runs, reached = await runs_above(self.hook, sync_id, floor)
        if self.mark is None:
            self.mark = first_mark(runs)
            self.trigger.log.info("Watching Census sync %s from run %s on", sync_id, self.mark.settled_through)
            return []
        lowest_seen = min((run.id for run in runs), default=self.mark.settled_through + 1)
        floor_now = self.mark.settled_through if reached else lowest_seen - 1
        if not reached:
            self.trigger.log.warning(
                "More than %d runs of Census sync %s came after run %s; runs before %s are not looked at",
                CATCH_UP_RUNS,
                sync_id,
                self.mark.settled_through,
                lowest_seen,
            )
        ended = ended_since(self.mark, runs)
        self._note_unknown(runs)
        before, self.mark = self.mark, self.mark.advanced(runs, (run.id for run in ended), floor_now)
        return [
            (RunSummary.of(run, self.hook.base_url), mark)
            for run, mark in fired_with_marks(before, ended, self.trigger.outcomes)
        ]

    def _note_unknown(self, runs: Iterable[SyncRun]) -> None:
        """Log once per run that Census reports a state this provider does not know (it never fires)."""
        for run in runs:
            if run.outcome is RunOutcome.UNKNOWN and run.id not in self.unknown_noted:
                self.unknown_noted.add(run.id)
                self.trigger.log.warning(
                    "Census sync %s run %s is in the unknown state %r: it does not fire until it reaches a known end",
                    run.sync_id,
                    run.id,
                    run.status,
                )

    async def save_mark(self, mark: WatchMark | None) -> None:
        """Write ``mark`` unless it is the one saved; a failed write is logged and tried again after the next poll."""
        if mark is None or mark == self.saved:
            return
        try:
            await self.marks.save(mark)
        except Exception as exc:  # the mark stays in memory and is written next time
            self.trigger.log.warning(
                "Writing the mark %s failed: %s; trying again after the next poll", self.marks.key, exc
            )
            return
        self.saved = mark

    def _note_failure(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = exc
        log = self.trigger.log.warning if isinstance(exc, CensusError) and is_transient(exc) else self.trigger.log.error
        log(
            "Watching Census sync %s failed (%d in a row), trying again: %s",
            self.trigger.sync_id,
            self.failures,
            exc,
        )

    def next_wait(self) -> float:
        """The poll interval; after failures in a row, doubled per failure (capped) and never before Retry-After."""
        interval = self.trigger.poll_interval
        if not self.failures:
            return interval
        jitter = random.uniform(0, interval / 10)  # noqa: S311
        return max(backoff(interval, self.failures, jitter), honoured(retry_after_of(self.last_error)))


async def polls(watch: SyncWatch) -> AsyncIterator[Fired]:
    """What each poll fires, forever: a poll every interval (or backoff), the first after a random part of one.

    The random start spreads the watchers a restarted triggerer starts at once.
    """
    await asyncio.sleep(random.uniform(0, watch.trigger.poll_interval))  # noqa: S311
    while True:
        began = time.monotonic()
        yield await watch.poll()
        await asyncio.sleep(max(0.0, began + watch.next_wait() - time.monotonic()))


async def runs_above(hook: CensusAsyncHook, sync_id: int, floor: int | None) -> tuple[list[SyncRun], bool]:
    """The sync's runs newer than ``floor``, newest first, and whether the listing reached ``floor``.

    Without a floor (a first watch) one page is read. Paging newest first while runs start
    can show a run twice (it slid to the next page), never skip one; the first reading wins.
    At :data:`CATCH_UP_RUNS` runs the listing stops short of the floor.
    """
    seen: dict[int, SyncRun] = {}
    page = 1
    while True:
        listing = await hook.alist_sync_runs(sync_id, page=page, per_page=LIST_PAGE_SIZE, order="desc")
        for run in listing.items:
            seen.setdefault(run.id, run)
        if floor is None:
            return list(seen.values()), True
        newer = [run for run in seen.values() if run.id > floor]
        following = listing.next_number
        if not listing.items or min(run.id for run in listing.items) <= floor:
            return newer, True
        if following is None or following <= page:
            return newer, True
        if len(newer) >= CATCH_UP_RUNS:
            return newer, False
        page = following
