"""``CensusTriggerSyncOperator``: trigger a Census sync and, by default, wait for its run.

``CensusTriggerSyncsOperator``: trigger every sync a selection picks and wait for all their
runs in one deferral.

``CensusOperator``, the name of provider 2.1, stays as a thin deprecated subclass so DAGs
written against 2.1 keep working unchanged.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow_provider_census.api.errors import (
    CensusError,
    CensusInputError,
    CensusRunTimeoutError,
    CensusSyncRunsFailedError,
)
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.settings import syncs_app_url
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.assets.census import record_runs_in_outlets
from airflow_provider_census.batch import SyncBatch, SyncProgress
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.hooks.selection import checked_on_no_match
from airflow_provider_census.links.census import CensusSyncRunsLink
from airflow_provider_census.openlineage import CensusLineageMixin
from airflow_provider_census.runs import XCOM_SYNC_RUN_IDS, XCOM_SYNC_RUNS, XCOM_SYNC_RUNS_URL, RunSummary
from airflow_provider_census.selectors import Selection, SelectionInput, parse_selection
from airflow_provider_census.version_compat import AirflowProviderDeprecationWarning
from airflow_provider_census.waiting import Deadlines, SyncTriggeringTask, positive_count, task_state_store

if TYPE_CHECKING:
    from airflow_provider_census.core.events import RunEvent, RunsEvent
    from airflow_provider_census.version_compat import Context

T = TypeVar("T")

MAX_RETRIGGERS_AFTER_SKIPS = 3
"""With ``on_skipped="wait"``, how many fresh runs one task triggers after skipped ones before it fails."""
STATE_STORE_KEY = "census_sync_run_id"
"""Where, on Airflow 3.3+, a try keeps its run id in the task's ``task_state_store`` for the tries after it."""
MANY_STATE_STORE_KEY = "census_sync_runs"
"""The same for the many-syncs operator: its run id per sync id (as text)."""


class CensusTriggerSyncOperator(CensusLineageMixin, SyncTriggeringTask):
    """Trigger a Census sync, then wait for its run without holding a worker slot.

    The task returns the ``sync_run_id`` (so ``{{ ti.xcom_pull('task_id') }}`` feeds a
    :class:`~airflow_provider_census.sensors.census.CensusSyncRunSensor`) and pushes the run's
    summary under the XCom key ``sync_run``. A run that does not succeed raises a
    :class:`~airflow_provider_census.api.errors.CensusRunError` subclass whose message carries
    the sync and run ids, the status, Census's ``error_code``, ``error_message`` and
    ``error_detail``, the record counts and the run's URL.

    :param sync_id: the Census sync to trigger (templated).
    :param census_conn_id: the Airflow connection to Census (templated).
    :param force_full_sync: resync every record instead of only the changes.
    :param wait_for_completion: wait for the run to end (default); if False, return at once.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between polls of the run.
    :param timeout: how long to wait for the run (seconds or timedelta); then the task fails
        and the run goes on. ``execution_timeout``, when set, cancels the run instead.
    :param cancel_on_kill: cancel the run when the task is killed: on the worker, and while
        deferred on Airflow 3.3 and later, where marking the task failed, clearing it and also
        marking it successful each cancel the run.
    :param reattach_on_retry: on a task retry (after a worker crash, say), do not start a
        second run. On Airflow 3.3 and later the run id of the earlier try is kept in the task's
        ``task_state_store``: a run still going is waited for, a completed one that passes the
        task's checks is the result, and any other is triggered afresh. The id is forgotten once
        the task succeeds, so clearing a successful task syncs again. Before 3.3, the sync's
        newest run is waited for if it is still going, whoever started it.
    :param on_skipped: when Census skips the run because an earlier run of the sync is still
        going: ``fail`` (default), ``succeed``, or ``wait``: wait for that earlier run, then
        trigger a fresh run (up to three times per task, within its deadlines), whose end
        decides the task. The earlier run may have read the models before they were rebuilt,
        so it never decides the task itself.
    :param max_rejected_records: fail a completed run that rejected more records than this.
    :param max_rejected_share: fail a completed run that rejected more than this share (0-1)
        of the records it processed.
    :param max_poll_failures: failed polls in a row tolerated before the wait gives up.
    :param unknown_state_timeout: seconds a run may stay in a state the provider does not know.
    """

    template_fields: Sequence[str] = ("sync_id", "census_conn_id")

    def __init__(self, *, sync_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_id = sync_id
        self._sync_run_id: int | None = None

    def execute(self, context: Context) -> int:
        sync_id = census_id(self.sync_id, "sync_id")
        store = task_state_store(context)
        earlier = self.earlier_try_run(context, sync_id, store.get(STATE_STORE_KEY) if store is not None else None)
        if isinstance(earlier, RunSummary):
            self.publish(context, sync_id, earlier.sync_run_id)
            return self.finish(context, earlier)
        run_id = earlier if earlier is not None else self._trigger(context, sync_id)
        self.publish(context, sync_id, run_id)
        if not self.wait_for_completion:
            self._forget_kept_run(context)
            return run_id
        return self._wait(context, run_id, self.deadlines(context), 0)

    def _trigger(self, context: Context, sync_id: int) -> int:
        run_id = self.hook.trigger_sync_run(sync_id, force_full_sync=self.force_full_sync)
        self.log.info("Triggered Census sync %s: run %s", sync_id, run_id)
        store = task_state_store(context)
        if store is not None:
            store.set(STATE_STORE_KEY, run_id)
        return run_id

    def finish(self, context: Context, summary: RunSummary) -> int:
        """The shared finish, then forget the kept run: the task has its result."""
        run_id: int = super().finish(context, summary)
        self._forget_kept_run(context)
        return run_id

    def _forget_kept_run(self, context: Context) -> None:
        """Drop the run id kept for later tries once the task succeeds.

        Tries after a success come from a user clearing the task to sync again (Airflow keeps
        the store across a clear): they must trigger a fresh run, not take the old one as the result.
        """
        store = task_state_store(context)
        if store is not None:
            store.delete(STATE_STORE_KEY)

    # -- waiting: the task's own run, and a run that made Census skip it --

    def _wait(self, context: Context, run_id: int, deadlines: Deadlines, skips: int) -> int:
        """Check once, then defer or poll here; the run's end decides the task's."""
        self._sync_run_id = run_id
        sync_id = census_id(self.sync_id, "sync_id")
        first = self.first_look(run_id, sync_id)
        if first is not None and first.outcome.is_terminal:
            return self._on_end(context, first, deadlines, skips)
        trigger = self.make_trigger(run_id, deadlines, sync_id)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", kwargs={"skips": skips}, timeout=None)
        return self._on_event(context, self.wait_in_worker(trigger.watch(self.log)), skips)

    def execute_complete(self, context: Context, event: object = None, skips: int = 0) -> int:
        """Resume after the trigger's event; a missing or malformed event fails the task clearly."""
        return self._on_event(context, self.read_event(event), skips)

    def _on_event(self, context: Context, parsed: RunEvent, skips: int) -> int:
        if parsed.status != "finished" or parsed.summary is None:
            self._sync_run_id = None if parsed.canceled_run else parsed.sync_run_id
            self.raise_for_unfinished(parsed)
        return self._on_end(context, parsed.summary, Deadlines.of_event(parsed), skips)

    def timeout_error(self, event: RunEvent) -> Exception:
        return CensusRunTimeoutError(event.described(), event.summary_json())

    def _on_end(self, context: Context, summary: RunSummary, deadlines: Deadlines, skips: int) -> int:
        if summary.outcome is RunOutcome.SKIPPED and self.expectations.waits_out_skips:
            if skips < MAX_RETRIGGERS_AFTER_SKIPS:
                return self._wait_out_skip(context, summary, deadlines, skips + 1)
            self.log.warning("Census skipped %d fresh runs of sync %s in a row; giving up.", skips, self.sync_id)
        self._sync_run_id = None
        return self.finish(context, summary)

    def _wait_out_skip(self, context: Context, skipped: RunSummary, deadlines: Deadlines, skips: int) -> int:
        """Wait for the run that made Census skip ours (never canceling it), then trigger a fresh one."""
        self._sync_run_id = None
        sync_id = census_id(self.sync_id, "sync_id")
        blocker = self.earlier_run(skipped, sync_id)
        if blocker is None and not self.hook.runs_listed():
            return self.finish(context, skipped)
        if blocker is None or blocker.outcome.is_terminal:
            self.log.info("Census skipped run %s; the run it yielded to has ended.", skipped.sync_run_id)
            return self._trigger_after_skip(context, sync_id, deadlines, skips)
        self.log.info(
            "Census skipped run %s because run %s was going; waiting for run %s, then triggering a fresh run "
            "(%d of at most %d).",
            skipped.sync_run_id,
            blocker.id,
            blocker.id,
            skips,
            MAX_RETRIGGERS_AFTER_SKIPS,
        )
        trigger = self.make_trigger(blocker.id, deadlines.for_watching, sync_id)
        trigger.cancel_on_kill = False
        kwargs: dict[str, Any] = {"skips": skips, "wait_deadline": deadlines.wait, "cancel_deadline": deadlines.cancel}
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_after_blocking_run", kwargs=kwargs, timeout=None)
        return self._after_blocking_run(context, self.wait_in_worker(trigger.watch(self.log)), deadlines, skips)

    def execute_after_blocking_run(
        self,
        context: Context,
        event: object = None,
        skips: int = 1,
        wait_deadline: float | None = None,
        cancel_deadline: float | None = None,
    ) -> int:
        """Resume once the run that blocked ours has ended (or the wait for it has)."""
        deadlines = Deadlines(wait_deadline, cancel_deadline)
        return self._after_blocking_run(context, self.read_event(event), deadlines, skips)

    def _after_blocking_run(self, context: Context, parsed: RunEvent, deadlines: Deadlines, skips: int) -> int:
        """Trigger the fresh run, unless the wait for the blocking run ended on an error."""
        if parsed.status == "error":
            self.raise_for_unfinished(parsed)
        self.log.info("Run %s, which blocked ours, ended: %s.", parsed.sync_run_id, describe_status(parsed))
        return self._trigger_after_skip(context, census_id(self.sync_id, "sync_id"), deadlines, skips)

    def _trigger_after_skip(self, context: Context, sync_id: int, deadlines: Deadlines, skips: int) -> int:
        if deadlines.passed:
            raise CensusRunTimeoutError(
                f"The task's deadline passed while it waited for the run that made Census skip its own; "
                f"no fresh run of sync {sync_id} was triggered.",
                {},
            )
        run_id = self._trigger(context, sync_id)
        self.log.info("Triggered fresh run %s of sync %s after the skip; it decides the task.", run_id, sync_id)
        self.publish(context, sync_id, run_id)
        return self._wait(context, run_id, deadlines, skips)

    def on_kill(self) -> None:
        """Cancel the run this task is waiting for, unless it already ended (never a run it only watches)."""
        if self.cancel_on_kill and self._sync_run_id is not None:
            self.canceled_runs.add(self._sync_run_id)
            self.hook.cancel_sync_run(self._sync_run_id)
            self.log.info("Canceled Census sync run %s because the task was killed", self._sync_run_id)


def describe_status(event: RunEvent) -> str:
    return event.summary.status if event.summary is not None else event.status


class CensusTriggerSyncsOperator(CensusLineageMixin, SyncTriggeringTask):
    """Trigger every Census sync a selection picks, then wait for all their runs in one deferral.

    The selection is resolved when the task runs (``select``/``exclude`` as in
    :meth:`~airflow_provider_census.hooks.census.CensusHook.select_syncs`, so a sync added in
    Census is picked up without editing the DAG); malformed selectors fail the DAG's import.
    Each selected sync is triggered once, a few at a time; then one trigger waits for every run
    (one deferral, one pooled client), with the waiting parameters of
    :class:`CensusTriggerSyncOperator`, each applied to each run.

    The task fails once every run has ended if any sync did not succeed, with one line per
    failed sync (its run's status, Census's ``error_code`` and ``error_message``, its link) in a
    :class:`~airflow_provider_census.api.errors.CensusSyncRunsFailedError`. It returns the run
    id per sync id (ids as text, as JSON keys are) and pushes every run's summary under the
    XCom key ``sync_runs``. On a retry (Airflow 3.3+, with ``reattach_on_retry``) syncs whose
    run succeeded are not run again: only the failed ones are triggered afresh.

    :param select: selectors (``12``, ``label:crm_*``, ``source:dim_users``, ...), a
        :class:`~airflow_provider_census.selectors.Selection` made by ``parse_selection``, or a
        callable that makes either from the task's context when it runs, such as
        :func:`~airflow_provider_census.assets.tables.selection_from_asset_events` for the syncs
        that read the tables this DAG run's triggering asset events name (templated). A
        callable takes one positional argument, the task's context, and is called by the task
        itself, never by Airflow's template rendering (see :class:`CalledWithContext`).
    :param exclude: selectors to leave out, or a callable of the task's context that returns
        them (templated).
    :param include_paused: also run syncs that are paused in Census.
    :param on_no_match: when nothing is selected: ``fail`` (default), ``skip`` the task, or
        ``empty`` (succeed with no runs).
    :param fail_fast: at the first sync that does not succeed, cancel the task's other runs
        still going and fail (without it, every run is waited for to its end).
    :param max_concurrent_triggers: how many syncs are triggered at the same time.

    ``force_full_sync``, ``wait_for_completion``, ``deferrable``, ``poll_interval``,
    ``timeout``, ``cancel_on_kill``, ``reattach_on_retry``, ``on_skipped``,
    ``max_rejected_records``, ``max_rejected_share``, ``max_poll_failures`` and
    ``unknown_state_timeout`` are those of :class:`CensusTriggerSyncOperator`.
    """

    template_fields: Sequence[str] = ("select", "exclude", "census_conn_id")
    operator_extra_links = (CensusSyncRunsLink(),)

    def __init__(
        self,
        *,
        select: SelectionInput | Selection | Callable[[Context], SelectionInput | Selection],
        exclude: SelectionInput | Callable[[Context], SelectionInput] | None = None,
        include_paused: bool = False,
        on_no_match: str = "fail",
        fail_fast: bool = False,
        max_concurrent_triggers: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.select: SelectionInput | Selection | CalledWithContext[SelectionInput | Selection] = (
            CalledWithContext(select) if callable(select) else select
        )
        self.exclude: SelectionInput | CalledWithContext[SelectionInput] | None = (
            CalledWithContext(exclude) if callable(exclude) else exclude
        )
        self.include_paused = include_paused
        self.on_no_match = checked_on_no_match(on_no_match)
        self.fail_fast = fail_fast
        self.max_concurrent_triggers = positive_count(max_concurrent_triggers, "max_concurrent_triggers")
        self._parse_what_is_known_now()
        self._batch: SyncBatch | None = None
        self.sync_ids: list[int] = []
        """The selected syncs, once the task has run (OpenLineage reads them)."""

    def _parse_what_is_known_now(self) -> None:
        """Parse a selection that is known when the DAG file is imported, so that a typo fails the import, not a run."""
        select, exclude = self.select, self.exclude
        if isinstance(select, CalledWithContext) or isinstance(exclude, CalledWithContext):
            return
        if not _resolved_when_run(select, exclude):
            self._parsed(select, exclude)

    def _selection(self, context: Context) -> Selection:
        """The selection as the task runs: rendered, or made from its context by a callable ``select``/``exclude``."""
        select = self.select.function(context) if isinstance(self.select, CalledWithContext) else self.select
        exclude = self.exclude.function(context) if isinstance(self.exclude, CalledWithContext) else self.exclude
        return self._parsed(select, exclude)

    @staticmethod
    def _parsed(select: SelectionInput | Selection, exclude: SelectionInput | None) -> Selection:
        if isinstance(select, Selection):
            if exclude is not None:
                raise CensusInputError("Pass exclude to parse_selection with the rest of the selection, not beside it.")
            return select
        return parse_selection(select, exclude)

    def execute(self, context: Context) -> dict[str, int]:
        syncs = self.hook.select_syncs(
            self._selection(context), include_paused=self.include_paused, on_no_match=self.on_no_match
        )
        batch = self._batch = SyncBatch()
        if not syncs:
            self.log.info("No Census sync was selected; nothing to run.")
            return self._finish(context, batch)
        self._reattach_or_trigger(context, [sync.id for sync in syncs], batch)
        if not self.wait_for_completion:
            return self._finish(context, batch)
        return self._wait(context, batch, self.deadlines(context))

    # -- triggering: each sync once, a few at a time --

    def _reattach_or_trigger(self, context: Context, sync_ids: list[int], batch: SyncBatch) -> None:
        """Take what earlier tries left (runs going, results), then trigger the rest."""
        store = task_state_store(context)
        kept = store.get(MANY_STATE_STORE_KEY) if store is not None else None
        kept_runs = kept if isinstance(kept, Mapping) else {}
        wanted = []
        for sync_id in sync_ids:
            earlier = self.earlier_try_run(context, sync_id, kept_runs.get(str(sync_id)))
            if isinstance(earlier, RunSummary):
                batch.end(sync_id, earlier)
            elif earlier is not None:
                batch.start(sync_id, earlier)
            else:
                wanted.append((sync_id, 0))
        self._trigger_all(context, batch, wanted)

    def _trigger_all(self, context: Context, batch: SyncBatch, wanted: list[tuple[int, int]]) -> None:
        """Trigger each (sync, skips so far) once, at most ``max_concurrent_triggers`` at a time.

        Each run id is kept in the ``task_state_store`` as soon as Census gives it, so a try
        that dies halfway leaves the next one every run already started. With ``fail_fast``, a
        sync that fails to trigger stops the syncs not yet triggered.
        """
        if not wanted:
            return
        store = task_state_store(context)
        _ = self.hook.client  # read the connection and open the session once, before the threads share them
        workers = min(self.max_concurrent_triggers, len(wanted))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="census-trigger") as pool:
            futures = {
                pool.submit(self.hook.trigger_sync_run, sync_id, force_full_sync=self.force_full_sync): (sync_id, skips)
                for sync_id, skips in wanted
            }
            for future in as_completed(futures):
                self._record_trigger(batch, future, *futures[future])
                if store is not None:
                    store.set(MANY_STATE_STORE_KEY, batch.kept_runs())
                if self.fail_fast and batch.problems:
                    for other in futures:
                        other.cancel()
        self._publish_runs(context, batch, [sync_id for sync_id, _ in wanted])

    def _record_trigger(self, batch: SyncBatch, future: Future[int], sync_id: int, skips: int) -> None:
        if future.cancelled():
            batch.give_up(sync_id, "not triggered: fail_fast stopped the task after another sync failed to trigger")
            return
        try:
            run_id = future.result()
        except CensusError as exc:
            batch.give_up(sync_id, f"triggering it failed: {exc}")
            return
        batch.start(sync_id, run_id, skips)
        self.log.info("Triggered Census sync %s: run %s", sync_id, run_id)

    def _publish_runs(self, context: Context, batch: SyncBatch, sync_ids: list[int]) -> None:
        """Push the runs by sync id and one link to them, before waiting, and log each new run's URL."""
        runs = batch.kept_runs()
        context["ti"].xcom_push(key=XCOM_SYNC_RUN_IDS, value=runs)
        if len(runs) == 1:
            ((only_sync, only_run),) = runs.items()
            url = self.hook.sync_run_url(int(only_sync), only_run)
        else:
            url = syncs_app_url(self.hook.base_url)
        context["ti"].xcom_push(key=XCOM_SYNC_RUNS_URL, value=url)
        for sync_id in sync_ids:
            if sync_id in batch.going:
                self.log.info(
                    "Census sync %s run %s: %s",
                    sync_id,
                    batch.going[sync_id].run_id,
                    self.hook.sync_run_url(sync_id, batch.going[sync_id].run_id),
                )

    # -- waiting: all runs in one trigger, rounds only for runs Census skipped --

    def _wait(self, context: Context, batch: SyncBatch, deadlines: Deadlines) -> dict[str, int]:
        if self.fail_fast and batch.failures(self.expectations):
            self._stop_going_runs(batch)
        if not batch.going:
            return self._finish(context, batch)
        from airflow_provider_census.triggers.census import CensusSyncRunsTrigger

        trigger = CensusSyncRunsTrigger(
            batch.own_going_run_ids,
            watched_run_ids=batch.watched_run_ids,
            sync_ids={str(progress.run_id): progress.sync_id for progress in batch.going.values()},
            fail_fast=self.fail_fast,
            on_skipped=self.expectations.on_skipped,
            max_rejected_records=self.expectations.max_rejected_records,
            max_rejected_share=self.expectations.max_rejected_share,
            task_state=batch.to_json(),
            **self.waiting_kwargs(deadlines),
        )
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", timeout=None)
        return self._after_wait(context, batch, self.wait_in_worker(trigger.watch(self.log)), deadlines)

    def execute_complete(self, context: Context, event: object = None) -> dict[str, int]:
        """Resume after the trigger's event, which carries where the syncs stand; an unreadable one fails clearly."""
        from airflow_provider_census.core.events import RunsEvent

        parsed = RunsEvent.from_dict(event)
        try:
            restored = self._batch = SyncBatch.from_json(parsed.task_state)
        except ValueError as exc:
            raise CensusError(
                f"The task's record of its Census runs cannot be read ({exc}). Check the runs in Census "
                "(XCom sync_run_ids), then clear the task."
            ) from None
        return self._after_wait(context, restored, parsed, Deadlines(parsed.wait_deadline, parsed.cancel_deadline))

    def _after_wait(self, context: Context, batch: SyncBatch, event: RunsEvent, deadlines: Deadlines) -> dict[str, int]:
        """Settle each run that ended; trigger afresh the syncs whose run Census skipped (``on_skipped="wait"``)."""
        fresh = []
        for run_event in event.runs:
            progress = batch.progress_of_run(run_event.sync_run_id)
            if progress is not None and self._settle(batch, progress, run_event):
                fresh.append((progress.sync_id, progress.skips))
        if fresh:
            self._trigger_after_skips(context, batch, fresh, deadlines)
        return self._wait(context, batch, deadlines)

    def _settle(self, batch: SyncBatch, progress: SyncProgress, run_event: RunEvent) -> bool:
        """Record how one wait ended; True when the sync needs a fresh run."""
        if run_event.status != "finished" or run_event.summary is None:
            batch.give_up(progress.sync_id, run_event.described())
            return False
        if progress.watching:
            self.log.info("Run %s, which made Census skip sync %s, ended.", progress.run_id, progress.sync_id)
            return True
        summary = run_event.summary
        waits_out = summary.outcome is RunOutcome.SKIPPED and self.expectations.waits_out_skips
        if not waits_out or self._skips_exhausted(progress):
            batch.end(progress.sync_id, summary)
            return False
        progress.skips += 1
        blocker = self.earlier_run(summary, progress.sync_id)
        if blocker is None and not self.hook.runs_listed():
            batch.end(progress.sync_id, summary)
            return False
        if blocker is None or blocker.outcome.is_terminal:
            return True
        self.log.info(
            "Census skipped run %s of sync %s because run %s was going; waiting for it.",
            summary.sync_run_id,
            progress.sync_id,
            blocker.id,
        )
        batch.watch(progress.sync_id, blocker.id, progress.skips)
        return False

    def _skips_exhausted(self, progress: SyncProgress) -> bool:
        if progress.skips < MAX_RETRIGGERS_AFTER_SKIPS:
            return False
        self.log.warning(
            "Census skipped %d fresh runs of sync %s in a row; giving up.", progress.skips, progress.sync_id
        )
        return True

    def _trigger_after_skips(
        self, context: Context, batch: SyncBatch, fresh: list[tuple[int, int]], deadlines: Deadlines
    ) -> None:
        reason = None
        if deadlines.passed:
            reason = "the task's deadline passed while it waited out a skip; no fresh run was triggered"
        elif self.fail_fast and batch.failures(self.expectations):
            reason = "fail_fast: another sync failed, so no fresh run was triggered after the skip"
        if reason is not None:
            for sync_id, _ in fresh:
                batch.give_up(sync_id, reason)
            return
        for sync_id, _ in fresh:
            batch.going.pop(sync_id, None)
        self._trigger_all(context, batch, fresh)

    def _stop_going_runs(self, batch: SyncBatch) -> None:
        """``fail_fast`` before or between waits: cancel the task's own runs still going."""
        for progress in list(batch.going.values()):
            if progress.watching:
                batch.give_up(progress.sync_id, f"fail_fast: another sync failed; run {progress.run_id} left going")
                continue
            self.hook.cancel_sync_run(progress.run_id)
            batch.give_up(progress.sync_id, f"fail_fast: another sync failed; run {progress.run_id} was canceled")

    # -- the end --

    def _finish(self, context: Context, batch: SyncBatch) -> dict[str, int]:
        """Push every summary; fail with a line per failed sync, or record the runs in the outlets and succeed."""
        summaries = {str(sync_id): summary.to_json() for sync_id, summary in sorted(batch.ended.items())}
        context["ti"].xcom_push(key=XCOM_SYNC_RUNS, value=summaries)
        self.sync_ids = sorted({*batch.ended, *batch.problems, *batch.going})
        for summary in batch.ended.values():
            self.log.info("%s", summary.describe())
            self.record_census_run(summary)
        failures = batch.failures(self.expectations)
        if failures:
            self._link_first_failure(context, batch, failures)
            total = len(batch.ended) + len(batch.problems) + len(batch.going)
            lines = "\n".join(f"- {line}" for line in failures.values())
            raise CensusSyncRunsFailedError(
                f"{len(failures)} of {total} Census syncs did not succeed:\n{lines}",
                {"failed": {str(sync_id): line for sync_id, line in failures.items()}, "runs": summaries},
            )
        record_runs_in_outlets(list(self.outlets), context, batch.ended)
        store = task_state_store(context)
        if store is not None:
            store.delete(MANY_STATE_STORE_KEY)  # a cleared task syncs again (see CensusTriggerSyncOperator.finish)
        self._batch = None
        return batch.kept_runs()

    def _link_first_failure(self, context: Context, batch: SyncBatch, failures: dict[int, str]) -> None:
        failed_runs = [batch.ended[sync_id].url for sync_id in failures if sync_id in batch.ended]
        if failed_runs:
            context["ti"].xcom_push(key=XCOM_SYNC_RUNS_URL, value=failed_runs[0])

    def on_kill(self) -> None:
        """Cancel the task's own runs still going (never a run it only watches)."""
        if not self.cancel_on_kill or self._batch is None:
            return
        for run_id in self._batch.own_going_run_ids:
            self.canceled_runs.add(run_id)
            self.hook.cancel_sync_run(run_id)
            self.log.info("Canceled Census sync run %s because the task was killed", run_id)


@dataclass(frozen=True)
class CalledWithContext(Generic[T]):
    """A callable argument of a task, held so that only the task calls it: ``function(context)``.

    Airflow 2.11 and 3.x render a task's template fields before ``execute``, and a callable
    found there is called as ``value(context=..., jinja_env=...)``: a function of the context
    alone, such as ``selection_from_asset_events``, fails with a ``TypeError`` before the task
    starts. Held in this (not callable) object, the function passes through rendering as it is,
    and the task calls it with the context when it runs, as the docs promise. Its text is the
    function's qualified name, which Airflow shows as the rendered field and keeps in the
    serialized DAG (the same on every parse).
    """

    function: Callable[[Context], T]

    def __str__(self) -> str:
        """``module.function(context)``; ``module.function(context, ...)`` for a ``functools.partial`` of it."""
        function: object = self.function
        arguments = "context"
        if isinstance(function, functools.partial):
            function, arguments = function.func, "context, ..."
        module = getattr(function, "__module__", None)
        name = getattr(function, "__qualname__", type(function).__qualname__)
        return f"{module}.{name}({arguments})" if module else f"{name}({arguments})"


def _resolved_when_run(*values: object) -> bool:
    """Whether any value (or item of a list) is a Jinja template or a value Airflow resolves (an XComArg).

    Such a selection can be parsed only when the task runs; any other is parsed when the DAG is
    imported, so that a typo fails the import.
    """
    items: list[object] = []
    for value in values:
        items.extend(value if isinstance(value, list | tuple) else [value])
    return any(_is_template(item) or _resolved_by_airflow(item) for item in items)


def _is_template(item: object) -> bool:
    return isinstance(item, str) and ("{{" in item or "{%" in item)


def _resolved_by_airflow(item: object) -> bool:
    """An XComArg, on every Airflow version: its class has a ``resolve(context, ...)``, which rendering calls."""
    return not isinstance(item, str | int) and callable(getattr(item, "resolve", None))


class CensusOperator(CensusTriggerSyncOperator):
    """Deprecated (provider 2.1): trigger a sync and return its run id at once, without waiting.

    It is :class:`CensusTriggerSyncOperator` with ``wait_for_completion`` defaulting to False,
    so it checks its input, publishes the run's link, and on a retry reattaches to the run an
    earlier try left going, as the successor does. Use that class instead; every argument of
    it passes through.

    ``sync_id`` and ``census_conn_id`` stay in this signature because Airflow fills in
    ``default_args`` only for the parameters a class's own ``__init__`` names.

    :param sync_id: the Census sync to trigger (templated).
    :param census_conn_id: the Airflow connection to Census (templated).
    """

    def __init__(
        self,
        *,
        sync_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        warnings.warn(
            "CensusOperator is the name of airflow-provider-census 2.1; use "
            "airflow_provider_census.operators.census.CensusTriggerSyncOperator. For 2.1's behaviour "
            "(trigger, return the run id, do not wait) pass wait_for_completion=False; by default it "
            "also waits for the run and fails the task if the run fails.",
            AirflowProviderDeprecationWarning,
            stacklevel=2,
        )
        kwargs.setdefault("wait_for_completion", False)
        super().__init__(sync_id=sync_id, census_conn_id=census_conn_id, **kwargs)
