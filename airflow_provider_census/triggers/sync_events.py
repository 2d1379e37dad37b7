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
from collections.abc import AsyncIterator, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_census.api.errors import CensusConfigurationError, CensusError, CensusInputError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.retry import ONE_TRY, is_transient, retry_after_of
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.wait import backoff, honoured
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.runs import RunSummary
from airflow_provider_census.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    BaseEventTrigger,
    SharedStreamProducer,
    aget_variable,
    aset_variable,
)

if TYPE_CHECKING:
    from airflow.triggers.shared_stream import AdvanceItem

EVENT_SCHEMA_VERSION = 1
FIRING_OUTCOMES = (RunOutcome.SUCCEEDED, RunOutcome.FAILED, RunOutcome.CANCELED, RunOutcome.SKIPPED)
"""The outcomes a watcher may fire for: the terminal ones. ``unknown`` is not among them."""
DEFAULT_OUTCOMES = ("succeeded",)
LIST_PAGE_SIZE = 25
CATCH_UP_RUNS = 100
"""How many of a sync's newest runs one poll reads at most, looking back for runs not yet decided."""
MARK_DELAY_SECONDS = 10.0
"""Where nothing says when Airflow stored the events (Airflow 3.0-3.2), how long after firing the mark is written."""
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
    another triggerer). What it has fired is a :class:`WatchMark`, stored under the key
    ``census_sync_watch:<census_conn_id>:<sync_id>:<outcomes joined by +>`` (so a changed
    ``poll_interval`` keeps it): in the watched asset's state store on Airflow 3.3+ when the
    trigger watches one asset, else in the Airflow Variable of that name (Airflow 3.0 to 3.2,
    or one trigger shared by several assets), as JSON. A restarted watcher reads it and fires
    for every run that ended while no triggerer ran it (up to :data:`CATCH_UP_RUNS` runs back;
    older ones are logged and not fired). A mark that cannot be read is logged and the watch
    starts afresh; deleting it does the same. When the mark is written decides what a restart
    can repeat:

    - On Airflow 3.3+ the triggerer runs the watch as a shared stream in ack mode, the one
      way Airflow tells a trigger that its events are stored: the mark covering a run is
      written once Airflow has stored that run's asset event, never before. A run is never
      lost, and fires again only if the triggerer stops between storing the event and
      writing the mark (about one state sync of the triggerer, a second or two), or if that
      write failed and the triggerer stops before the next poll retries it. Airflow offers
      no way to close that gap: a trigger cannot read asset events back.
    - On Airflow 3.0 to 3.2 nothing tells a trigger when its events are stored, so the mark
      is written :data:`MARK_DELAY_SECONDS` after the events it covers: a triggerer that
      stops within those seconds of firing fires that run again after the restart, and a
      run whose event Airflow failed to store within them is lost.

    Two watchers of one sync with the same ``outcomes`` and different ``poll_interval`` are two
    triggers: through a Variable they share one mark, so give them the same interval.

    Polls that fail (Census unreachable, 5xx, 429, a refused token) never end the watch,
    since there is no task to fail: they are logged and retried, the wait doubling per
    failure in a row up to :data:`~airflow_provider_census.core.wait.MAX_BACKOFF_INTERVALS`
    intervals, and never sooner than Census's ``Retry-After`` (the rules of every wait).

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
        """The key of this watch's mark: in the asset state store, or the Variable's name."""
        return f"{MARK_KEY_PREFIX}:{self.census_conn_id}:{self.sync_id}:{'+'.join(self.outcomes)}"

    @property
    def stream_key(self) -> tuple[str, float]:
        """The watch's identity (its kwargs), so its shared stream has it as the one subscriber."""
        return (self.mark_key, self.poll_interval)

    def shared_stream_key(self) -> Hashable:
        """Airflow 3.3+: have the triggerer run this watch as a shared stream in ack mode.

        The triggerer then calls :meth:`create_shared_stream_producer`, which sees the kwargs
        alone, not this instance and the asset state store the triggerer gave it; so the
        watcher waits for its producer under its key.
        """
        _AWAITING_PRODUCER[self.stream_key] = self
        return self.stream_key

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> _AckedWatch:
        """The producer of the stream the triggerer opens for the watcher that just gave its key."""
        return _AckedWatch(_AWAITING_PRODUCER.pop(cls(**kwargs).stream_key))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """One event per run the stream fires; the marks in between fire nothing."""
        async for summary in shared_stream:
            if summary is not None:
                yield self._event(summary)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """The watch as its own loop, where the triggerer has no shared streams (Airflow 3.0-3.2).

        Nothing says when Airflow stored the events, so the mark follows them
        :data:`MARK_DELAY_SECONDS` later.
        """
        hook = CensusHook(self.census_conn_id, retry_policy=ONE_TRY)
        watch = _Watch(self, hook)
        try:
            async for fired in _polls(watch):
                for summary, _ in fired:
                    yield self._event(summary)
                if fired:
                    await asyncio.sleep(MARK_DELAY_SECONDS)
                await watch.save_mark(watch.mark)
        finally:
            await hook.aclose()

    def _event(self, summary: RunSummary) -> TriggerEvent:
        self.log.info(
            "Census sync %s run %s ended: %s (%s)",
            summary.sync_id,
            summary.sync_run_id,
            summary.status,
            summary.outcome.value,
        )
        return TriggerEvent({"schema_version": EVENT_SCHEMA_VERSION, **summary.to_json()})  # type: ignore[no-untyped-call]


_AWAITING_PRODUCER: dict[Hashable, CensusSyncRunFinishedTrigger] = {}
"""Watchers whose shared stream the triggerer is opening, by stream key (see ``shared_stream_key``)."""


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


class _AckedWatch(SharedStreamProducer):
    """One watch as a shared stream in ack mode (Airflow 3.3+): its mark is written once its events are stored.

    Each item is a fired run's summary (``None`` for a mark alone) with the mark covering it
    and everything yielded before it. The triggerer hands the summary to the watcher's
    filter, stores the event the filter makes in the metadata database, and only then calls
    :meth:`advance` with the items, in the order they were yielded.
    """

    def __init__(self, trigger: CensusSyncRunFinishedTrigger) -> None:
        self.hook = CensusHook(trigger.census_conn_id, retry_policy=ONE_TRY)
        self.watch = _Watch(trigger, self.hook)
        self.lost_one = False

    async def open_stream(self) -> AsyncIterator[tuple[RunSummary | None, WatchMark]]:
        async for fired in _polls(self.watch):
            for item in fired:
                yield item
            if self.watch.mark is not None and self.watch.mark != self.watch.saved:
                yield None, self.watch.mark

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Write the mark of the last item, up to the first item whose event Airflow did not store.

        After such an item no mark is written again: the triggerer fails the watcher (the item
        timed out or overflowed), and the restarted watcher fires that run again.
        """
        mark = None
        for item in batch:
            self.lost_one = self.lost_one or not item.outcome.is_clean
            if self.lost_one:
                break
            mark = item.broker_payload
        await self.watch.save_mark(mark)

    async def aclose(self) -> None:
        await self.hook.aclose()


async def _polls(watch: _Watch) -> AsyncIterator[list[tuple[RunSummary, WatchMark]]]:
    """What each poll fires, forever: a poll every interval (or backoff), the first after a random part of one.

    The random start spreads the watchers a restarted triggerer starts at once.
    """
    await asyncio.sleep(random.uniform(0, watch.trigger.poll_interval))  # noqa: S311
    while True:
        began = time.monotonic()
        yield await watch.poll()
        await asyncio.sleep(max(0.0, began + watch.next_wait() - time.monotonic()))


class _MarkStore:
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


class _Watch:
    """One watcher's state between polls: the mark, what was saved, failures in a row."""

    def __init__(self, trigger: CensusSyncRunFinishedTrigger, hook: CensusHook) -> None:
        self.trigger = trigger
        self.hook = hook
        self.marks = _MarkStore(getattr(trigger, "asset_state_store", None), trigger.mark_key, trigger.log)
        self.mark: WatchMark | None = None
        self.loaded = False
        self.saved: WatchMark | None = None
        self.failures = 0
        self.last_error: BaseException | None = None
        self.unknown_noted: set[int] = set()

    async def poll(self) -> list[tuple[RunSummary, WatchMark]]:
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

    async def _read_runs(self) -> list[tuple[RunSummary, WatchMark]]:
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
        before, self.mark = self.mark, self.mark.advanced(runs, (run.id for run in ended), floor_now)
        return self._fired(before, ended)

    def _fired(self, before: WatchMark, ended: Sequence[SyncRun]) -> list[tuple[RunSummary, WatchMark]]:
        """Each run of ``ended`` that fires, with the mark of ``before`` plus it and the runs ended before it.

        That mark may be written once this run's event and those before it are stored, not
        those after. The runs the outcome filter passes over are in it from the first: they
        never fire.
        """
        wanted = self.trigger.outcomes
        decided = set(before.decided) | {run.id for run in ended if run.outcome.value not in wanted}
        fired = []
        for run in (run for run in ended if run.outcome.value in wanted):
            decided.add(run.id)
            mark = WatchMark(before.settled_through, frozenset(decided))
            fired.append((RunSummary.of(run, self.hook.base_url), mark))
        return fired

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
