"""``CensusSyncRunFinishedTrigger``: schedule a DAG whenever a Census sync finishes a run.

An event trigger for Airflow 3's ``AssetWatcher``. It never starts a run: it watches the
runs something else starts (Census's own schedule, the app's "Sync now", another tool) and
fires one event per run that ends, so a DAG scheduled on the watched asset runs once per
finished sync run::

    from airflow.sdk import Asset, AssetWatcher

    users_synced = Asset(
        "census_sync_1234_finished",
        watchers=[AssetWatcher(name="census_1234", trigger=CensusSyncRunFinishedTrigger(sync_id=1234))],
    )
    # DAG(..., schedule=[users_synced])

Event payload, schema version 1 (JSON primitives; Airflow puts it in the asset event's
``extra["payload"]``): ``schema_version`` and the run's summary, as XCom ``sync_run`` has it:
``sync_id``, ``sync_run_id``, ``status`` (Census's word), ``outcome`` (``succeeded``,
``failed``, ``canceled``, ``skipped``), the record counts, ``error_code``/``error_message``/
``error_detail``, the timestamps and ``url``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_census.api.errors import CensusConfigurationError, CensusError, CensusInputError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.retry import ONE_TRY, is_transient, retry_after_of
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.runs import RunSummary
from airflow_provider_census.triggers.census import MAX_BACKOFF_INTERVALS, MAX_RETRY_AFTER_SECONDS
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, BaseEventTrigger

EVENT_SCHEMA_VERSION = 1
FIRING_OUTCOMES = (RunOutcome.SUCCEEDED, RunOutcome.FAILED, RunOutcome.CANCELED, RunOutcome.SKIPPED)
"""The outcomes a watcher may fire for: the terminal ones. ``unknown`` is not among them."""
DEFAULT_OUTCOMES = ("succeeded",)
LIST_PAGE_SIZE = 25
CATCH_UP_RUNS = 100
"""How many of a sync's newest runs one poll reads at most, looking back for runs not yet decided."""
MARK_DELAY_SECONDS = 10.0
"""How long after firing the mark is written: long enough for the triggerer to store the events first."""
MARK_KEY_PREFIX = "census_sync_watch"


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


class CensusSyncRunFinishedTrigger(BaseEventTrigger):
    """Fire one event each time a Census sync finishes a run, for an ``AssetWatcher`` (Airflow 3.0+).

    Each poll lists the sync's newest runs (one request, more only to look further back) and
    fires, oldest first, for every run that ended since the last poll with an outcome in
    ``outcomes``. Runs that had already ended when the watch first began never fire; a run
    still going then fires when it ends. A run in a state this provider does not know never
    fires: it is waited for like a run still going. The event carries ``outcome``, so a DAG
    that also watches failures can tell them apart.

    **Memory across triggerer restarts.** A watcher runs for as long as its asset is watched,
    and the triggerer restarts it from its kwargs alone (a restart, a deploy, a hand-over to
    another triggerer). What it has fired is a :class:`WatchMark`, kept:

    - on Airflow 3.3 and later, in the watched asset's state store (the metadata database),
      under the key ``census_sync_watch:<census_conn_id>:<sync_id>:<outcomes joined by +>``, so a changed
      ``poll_interval`` keeps the mark. A restarted watcher reads it and fires for every run
      that ended while no triggerer ran it (up to :data:`CATCH_UP_RUNS` runs back; older
      ones are logged and not fired), and never again for a run it fired before. The mark
      is written :data:`MARK_DELAY_SECONDS` after the events it covers, once the triggerer
      has had time to store them: a triggerer that stops within those seconds of firing
      fires that run again after the restart (at least once, never lost). Deleting the key
      makes the watch start afresh.
    - on Airflow 3.0 to 3.2 (no asset state store), and when one trigger watches several
      assets (the store then has no single place), in the triggerer's memory only. A
      restarted watcher starts afresh: it never fires twice for a run, but a run that ended
      while no triggerer ran the watcher is not fired.

    Polls that fail (Census unreachable, 5xx, 429, a refused token) never end the watch,
    since there is no task to fail: they are logged and retried, the wait doubling per
    failure in a row up to :data:`~airflow_provider_census.triggers.census.MAX_BACKOFF_INTERVALS`
    intervals, and never sooner than Census's ``Retry-After``.

    :param sync_id: the sync to watch.
    :param census_conn_id: the Airflow connection to Census.
    :param poll_interval: seconds between polls.
    :param outcomes: the run outcomes that fire: any of ``succeeded`` (the default alone),
        ``failed``, ``canceled``, ``skipped``.
    """

    def __init__(
        self,
        sync_id: int | str,
        *,
        census_conn_id: str = CensusHook.default_conn_name,
        poll_interval: float = 60.0,
        outcomes: Sequence[str] = DEFAULT_OUTCOMES,
    ) -> None:
        if not AIRFLOW_V_3_0_PLUS:
            raise CensusConfigurationError(
                "CensusSyncRunFinishedTrigger drives an AssetWatcher, which needs Airflow 3.0 or later. "
                "On Airflow 2 wait for a run with CensusSyncRunSensor, or schedule the DAG on the dataset "
                "of the task that triggers the sync (census_sync_asset(sync_id) in its outlets)."
            )
        super().__init__()  # type: ignore[no-untyped-call]
        self.sync_id = census_id(sync_id, "sync_id")
        self.census_conn_id = census_conn_id
        self.poll_interval = float(poll_interval)
        self.outcomes = _checked_outcomes(outcomes)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sync_id": self.sync_id,
                "census_conn_id": self.census_conn_id,
                "poll_interval": self.poll_interval,
                "outcomes": list(self.outcomes),
            },
        )

    @property
    def mark_key(self) -> str:
        """The asset state store key of this watch's mark."""
        return f"{MARK_KEY_PREFIX}:{self.census_conn_id}:{self.sync_id}:{'+'.join(self.outcomes)}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CensusHook(self.census_conn_id, retry_policy=ONE_TRY)
        watch = _Watch(self, hook, _MarkStore(getattr(self, "asset_state_store", None), self.mark_key, self.log))
        try:
            await asyncio.sleep(random.uniform(0, self.poll_interval))  # noqa: S311 - spread watchers after a restart
            while True:
                began = time.monotonic()
                events = await watch.poll()
                for event in events:
                    yield event
                if events:
                    await asyncio.sleep(MARK_DELAY_SECONDS)
                await watch.save_mark()
                await asyncio.sleep(max(0.0, began + watch.next_wait() - time.monotonic()))
        finally:
            await hook.aclose()


def _checked_outcomes(outcomes: Sequence[str]) -> tuple[str, ...]:
    """The outcomes, sorted and unique, so equal watches serialize (and hash) the same."""
    allowed = {outcome.value for outcome in FIRING_OUTCOMES}
    given = [outcomes] if isinstance(outcomes, str) else list(outcomes)
    wrong = [outcome for outcome in given if outcome not in allowed]
    if wrong or not given:
        raise CensusInputError(
            f"outcomes must be a non-empty list of {', '.join(sorted(allowed))}; got {outcomes!r}. "
            "A run in a state this provider does not know never fires."
        )
    return tuple(sorted(set(given)))


class _MarkStore:
    """Reads and writes the mark in the asset state store, when the triggerer gave the watcher one."""

    def __init__(self, store: Any, key: str, log: Any) -> None:
        self.store = store
        self.key = key
        self.log = log

    async def load(self) -> WatchMark | None:
        """The stored mark, or None for a first watch (or no store); store failures propagate, to be retried."""
        if self.store is None:
            return None
        try:
            stored = await self.store.aget(self.key, None)
        except ValueError:
            self._give_up_store()
            return None
        if stored is None:
            return None
        try:
            return WatchMark.from_json(stored)
        except ValueError as exc:
            self.log.warning("The stored mark %s cannot be read (%s); the watch starts afresh", self.key, exc)
            return None

    async def save(self, mark: WatchMark) -> None:
        if self.store is None:
            return
        try:
            await self.store.aset(self.key, mark.to_json())
        except ValueError:
            self._give_up_store()

    def _give_up_store(self) -> None:
        """Several assets share this trigger: Airflow's accessor then has no single store to use."""
        self.log.warning(
            "This Census watcher serves several assets, so its mark %s is kept in the triggerer's memory only; "
            "a triggerer restart then misses runs that end while it is down. Give each asset its own watcher.",
            self.key,
        )
        self.store = None


class _Watch:
    """One watcher's state between polls: the mark, what was saved, failures in a row."""

    def __init__(self, trigger: CensusSyncRunFinishedTrigger, hook: CensusHook, marks: _MarkStore) -> None:
        self.trigger = trigger
        self.hook = hook
        self.marks = marks
        self.mark: WatchMark | None = None
        self.loaded = False
        self.saved: WatchMark | None = None
        self.failures = 0
        self.last_error: BaseException | None = None
        self.unknown_noted: set[int] = set()

    async def poll(self) -> list[TriggerEvent]:
        """The events of one poll, oldest run first; none when Census or the store could not be read."""
        try:
            if not self.loaded:
                self.mark = self.saved = await self.marks.load()
                self.loaded = True
            events = await self._read_runs()
        except Exception as exc:  # a watcher outlives every failure; each is logged and retried
            self._note_failure(exc)
            return []
        self.failures, self.last_error = 0, None
        return events

    async def _read_runs(self) -> list[TriggerEvent]:
        sync_id = self.trigger.sync_id
        floor = None if self.mark is None else self.mark.settled_through
        runs, reached = await _runs_above(self.hook, sync_id, floor)
        if self.mark is None:
            self.mark = _first_mark(runs)
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
        ended = sorted(
            (run for run in runs if not self.mark.covers(run.id) and run.outcome.is_terminal), key=lambda run: run.id
        )
        self._note_unknown(runs)
        self.mark = self.mark.advanced(runs, (run.id for run in ended), floor_now)
        base_url = self.hook.base_url
        return [
            self._event(RunSummary.of(run, base_url)) for run in ended if run.outcome.value in self.trigger.outcomes
        ]

    def _event(self, summary: RunSummary) -> TriggerEvent:
        self.trigger.log.info(
            "Census sync %s run %s ended: %s (%s)",
            summary.sync_id,
            summary.sync_run_id,
            summary.status,
            summary.outcome.value,
        )
        return TriggerEvent({"schema_version": EVENT_SCHEMA_VERSION, **summary.to_json()})  # type: ignore[no-untyped-call]

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

    async def save_mark(self) -> None:
        """Write the mark if it moved; a failed write is logged and tried again after the next poll."""
        if self.mark is None or self.mark == self.saved:
            return
        try:
            await self.marks.save(self.mark)
        except Exception as exc:  # the mark stays in memory and is written next time
            self.trigger.log.warning(
                "Writing the mark %s failed: %s; trying again after the next poll", self.marks.key, exc
            )
            return
        self.saved = self.mark

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
        backoff = interval * min(2.0 ** (self.failures - 1), MAX_BACKOFF_INTERVALS)
        backoff += random.uniform(0, interval / 10)  # noqa: S311
        return max(backoff, min(retry_after_of(self.last_error) or 0.0, MAX_RETRY_AFTER_SECONDS))


def _first_mark(runs: Sequence[SyncRun]) -> WatchMark:
    """The mark of a watch that begins now: every run that already ended is decided, unfired."""
    floor = min((run.id for run in runs), default=1) - 1
    return WatchMark(floor).advanced(runs, (run.id for run in runs if run.outcome.is_terminal), floor)


async def _runs_above(hook: CensusHook, sync_id: int, floor: int | None) -> tuple[list[SyncRun], bool]:
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
