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
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_census.api.errors import CensusConfigurationError, CensusInputError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.retry import ONE_TRY
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.hooks.census_async import CensusAsyncHook
from airflow_provider_census.runs import RunSummary
from airflow_provider_census.triggers.acked_watch import AckedWatch, MarkStoreRequest
from airflow_provider_census.triggers.sync_watch import CATCH_UP_RUNS, MarkStore, SyncWatch, polls
from airflow_provider_census.triggers.watch_mark import WatchMark
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, BaseEventTrigger

__all__ = [
    "CATCH_UP_RUNS",
    "DEFAULT_OUTCOMES",
    "EVENT_SCHEMA_VERSION",
    "FIRING_OUTCOMES",
    "MARK_DELAY_SECONDS",
    "MARK_KEY_PREFIX",
    "CensusSyncRunFinishedTrigger",
    "WatchMark",
]

EVENT_SCHEMA_VERSION = 1
FIRING_OUTCOMES = (RunOutcome.SUCCEEDED, RunOutcome.FAILED, RunOutcome.CANCELED, RunOutcome.SKIPPED)
"""The outcomes a watcher may fire for: the terminal ones. ``unknown`` is not among them."""
DEFAULT_OUTCOMES = ("succeeded",)
MARK_DELAY_SECONDS = 10.0
"""Where nothing says when Airflow stored the events (Airflow 3.0-3.2), how long after firing the mark is written."""
MARK_KEY_PREFIX = "census_sync_watch"


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
    triggers: through a Variable they share one mark, so give them the same interval. Airflow
    may also store one watch twice (two DAG files that declare it, each for its own asset):
    each trigger then polls on its own and keeps its own mark in its own asset's store.

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

    def shared_stream_key(self) -> Hashable:
        """Airflow 3.3+: have the triggerer run this watch as a stream of its own, in ack mode.

        Ack mode is the one way a triggerer tells a trigger that its events are stored. The
        stream is this trigger row's own (its id is in the key), not shared with another row
        of the same watch: each keeps its mark in the asset state store the triggerer gave it.
        """
        return (self.mark_key, self.trigger_id)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> AckedWatch:
        """The producer of this watch's stream; it asks the watcher's filter for the mark store through the stream."""
        return AckedWatch(cls(**kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """One event per run the stream fires; the marks in between fire nothing.

        The stream's first item asks where this watch's mark is kept: only this instance
        holds the asset state store the triggerer gave it.
        """
        async for item in shared_stream:
            if isinstance(item, MarkStoreRequest):
                item.give(self._mark_store())
            elif item is not None:
                yield self._event(item)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """The watch as its own loop, where the triggerer has no shared streams (Airflow 3.0-3.2).

        Nothing says when Airflow stored the events, so the mark follows them
        :data:`MARK_DELAY_SECONDS` later.
        """
        hook = CensusAsyncHook(self.census_conn_id, retry_policy=ONE_TRY)
        watch = SyncWatch(self, hook, self._mark_store())
        try:
            async for fired in polls(watch):
                for summary, _ in fired:
                    yield self._event(summary)
                if fired:
                    await asyncio.sleep(MARK_DELAY_SECONDS)
                await watch.save_mark(watch.mark)
        finally:
            await hook.aclose()

    def _mark_store(self) -> MarkStore:
        """Where this watch's mark is kept: the asset state store the triggerer gave it (3.3+), else a Variable."""
        return MarkStore(getattr(self, "asset_state_store", None), self.mark_key, self.log)

    def _event(self, summary: RunSummary) -> TriggerEvent:
        self.log.info(
            "Census sync %s run %s ended: %s (%s)",
            summary.sync_id,
            summary.sync_run_id,
            summary.status,
            summary.outcome.value,
        )
        return TriggerEvent({"schema_version": EVENT_SCHEMA_VERSION, **summary.to_json()})  # type: ignore[no-untyped-call]


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
