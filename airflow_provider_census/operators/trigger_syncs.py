"""``CensusTriggerSyncsOperator``: trigger every sync a selection picks and wait for all their runs in one deferral.

Each sync's wait is decided as the one-sync operator's is (:mod:`~airflow_provider_census.core.steps`);
where every sync stands (a :class:`~airflow_provider_census.batch.SyncBatch`) and the task's deadlines
cross each deferral in the trigger's ``task_state``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.errors import CensusError, CensusSyncRunsFailedError
from airflow_provider_census.api.settings import syncs_app_url
from airflow_provider_census.assets.census import record_runs_in_outlets
from airflow_provider_census.batch import SyncBatch, SyncProgress
from airflow_provider_census.core.events import RunEvent, RunsEvent
from airflow_provider_census.core.schedule import ScheduledPolls
from airflow_provider_census.core.steps import (
    Done,
    FindBlocker,
    TriggerFresh,
    WaitState,
    Watch,
    after_blocker,
    after_end,
    read_deadlines,
)
from airflow_provider_census.hooks.selection import checked_on_no_match
from airflow_provider_census.links.census import CensusSyncRunsLink
from airflow_provider_census.openlineage import CensusLineageMixin
from airflow_provider_census.operators.arguments import CalledWithContext, parse_if_known, selection_when_run
from airflow_provider_census.operators.base import positive_count
from airflow_provider_census.operators.triggering_base import SyncTriggeringTask
from airflow_provider_census.runs import XCOM_SYNC_RUN_IDS, XCOM_SYNC_RUNS, XCOM_SYNC_RUNS_URL
from airflow_provider_census.selectors import Selection, SelectionInput
from airflow_provider_census.triggers.sync_runs import CensusSyncRunsTrigger
from airflow_provider_census.version_compat import task_state_store
from airflow_provider_census.worker_wait import WorkerWatch, wait_in_worker

if TYPE_CHECKING:
    from airflow_provider_census.hooks.triggering import StartedRun
    from airflow_provider_census.version_compat import Context

MANY_STATE_STORE_KEY = "census_sync_runs"
"""Where, on Airflow 3.3+, a try keeps its run id per sync id (as text) in the ``task_state_store``."""


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

    ``force_full_sync``, ``wait_for_completion``, ``deferrable``, ``poll_interval``, ``polling``,
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
        parse_if_known(self.select, self.exclude)
        self._batch: SyncBatch | None = None
        self.sync_ids: list[int] = []
        """The selected syncs, once the task has run (OpenLineage reads them)."""

    def execute(self, context: Context) -> dict[str, int]:
        syncs = self.hook.select_syncs(
            selection_when_run(self.select, self.exclude, context),
            include_paused=self.include_paused,
            on_no_match=self.on_no_match,
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
        kept = store.get(MANY_STATE_STORE_KEY) if store is not None and self.reattach_on_retry else None
        kept_runs = kept if isinstance(kept, Mapping) else {}
        wanted = []
        for sync_id in sync_ids:
            if store is None:
                going = self.newest_run_going(context, sync_id)
                batch.start(sync_id, going) if going is not None else wanted.append((sync_id, 0))
                continue
            kept_id = kept_runs.get(str(sync_id))
            run = None if kept_id is None else self.hook.get_sync_run(int(kept_id), sync_id=sync_id)
            verdict = "fresh" if run is None else self.kept_run_verdict(context, run, sync_id)
            if run is not None and verdict == "result":
                batch.end(sync_id, self.summary_of(run))
            elif run is not None and verdict == "wait":
                batch.start(sync_id, run.id)
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
                pool.submit(self.hook.start_sync_run, sync_id, force_full_sync=self.force_full_sync): (sync_id, skips)
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

    def _record_trigger(self, batch: SyncBatch, future: Future[StartedRun], sync_id: int, skips: int) -> None:
        if future.cancelled():
            batch.give_up(sync_id, "not triggered: fail_fast stopped the task after another sync failed to trigger")
            return
        try:
            started = future.result()
        except CensusError as exc:
            batch.give_up(sync_id, f"triggering it failed: {exc}")
            return
        schedule = self.schedule_of(started)
        batch.start(sync_id, started.run_id, skips, None if schedule is None else schedule.to_json())
        self.log.info("Triggered Census sync %s: run %s", sync_id, started.run_id)

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

    def _wait(self, context: Context, batch: SyncBatch, deadlines: Mapping[str, float | None]) -> dict[str, int]:
        """Wait for every run going (deferred, or here), then settle each end; again while skips are waited out."""
        while True:
            if self.fail_fast and batch.failures(self.expectations):
                self._stop_going_runs(batch)
            if not batch.going:
                return self._finish(context, batch)
            task_state = {"batch": batch.to_json(), **deadlines}
            trigger = CensusSyncRunsTrigger(
                batch.own_going_run_ids,
                watched_run_ids=batch.watched_run_ids,
                sync_ids={str(progress.run_id): progress.sync_id for progress in batch.going.values()},
                poll_plans={str(p.run_id): p.schedule for p in batch.going.values() if p.schedule is not None},
                fail_fast=self.fail_fast,
                on_skipped=self.expectations.on_skipped,
                max_rejected_records=self.expectations.max_rejected_records,
                max_rejected_share=self.expectations.max_rejected_share,
                task_state=task_state,
                **self.waiting_kwargs(self.rules(**deadlines), cancel_on_kill=self.cancel_on_kill),
            )
            if self.deferrable:
                self.defer(trigger=trigger, method_name="execute_complete", timeout=None)
            self._after_wait(context, batch, self._wait_here(batch, deadlines), deadlines)

    def _wait_here(self, batch: SyncBatch, deadlines: Mapping[str, float | None]) -> RunsEvent:
        """The wait in the worker: one :class:`~airflow_provider_census.watch.WorkerWatch` per run, side by side."""
        watches = [
            WorkerWatch(
                progress.run_id,
                replace(self.rules(**deadlines), schedule=ScheduledPolls.from_json(progress.schedule)),
                self.poll_hook,
                self.log,
                census_conn_id=self.census_conn_id,
                sync_id=progress.sync_id,
                watch_only=progress.watching,
            )
            for progress in batch.going.values()
        ]
        fails = self._fails_fast if self.fail_fast else None
        return RunsEvent(tuple(wait_in_worker(watches, fails=fails)))

    def _fails_fast(self, event: RunEvent, watch: WorkerWatch) -> bool:
        return event.fails(self.expectations, watched_only=watch.watch_only)

    @staticmethod
    def _state_of(progress: SyncProgress, deadlines: Mapping[str, float | None]) -> WaitState:
        """One sync's wait as the steps see it: its run, whether only watched, its skips, the task's deadlines."""
        return WaitState(progress.run_id, progress.sync_id, progress.watching, progress.skips).with_deadlines(
            **deadlines
        )

    def execute_complete(self, context: Context, event: object = None) -> dict[str, int]:
        """Resume after the trigger's event, which carries where the syncs stand; an unreadable one fails clearly."""
        parsed = RunsEvent.from_dict(event)
        task_state = parsed.task_state or {}
        try:
            restored = self._batch = SyncBatch.from_json(task_state.get("batch"))
            deadlines = read_deadlines(task_state)
        except ValueError as exc:
            raise CensusError(
                f"The task's record of its Census runs cannot be read ({exc}). Check the runs in Census "
                "(XCom sync_run_ids), then clear the task."
            ) from None
        self._after_wait(context, restored, parsed, deadlines)
        return self._wait(context, restored, deadlines)

    def _after_wait(
        self, context: Context, batch: SyncBatch, event: RunsEvent, deadlines: Mapping[str, float | None]
    ) -> None:
        """Settle each run that ended; trigger afresh the syncs whose run Census skipped (``on_skipped="wait"``)."""
        fresh = []
        for run_event in event.runs:
            progress = batch.progress_of_run(run_event.sync_run_id)
            settled = None if progress is None else self._settle(batch, self._state_of(progress, deadlines), run_event)
            if settled is not None:
                fresh.append((settled.sync_id or 0, settled.skips))
        if fresh:
            self._trigger_after_skips(context, batch, fresh)

    def _settle(self, batch: SyncBatch, state: WaitState, run_event: RunEvent) -> WaitState | None:
        """Record how one sync's wait ended, as the steps decide; its state when the sync needs a fresh run."""
        sync_id = state.sync_id or 0
        if run_event.status != "finished" or run_event.summary is None:
            batch.give_up(sync_id, run_event.described())
            return None
        summary = run_event.summary
        if state.watching:
            self.log.info("Run %s, which made Census skip sync %s, ended.", state.run_id, sync_id)
        state, step = after_end(state, summary.outcome, self.skip_policy, time.time())
        if isinstance(step, FindBlocker):
            state, step = after_blocker(state, self.blocker_of(summary, sync_id), self.skip_policy, time.time())
        if isinstance(step, Done):
            if step.gave_up:
                self.log.warning("Census skipped %d fresh runs of sync %s in a row; giving up.", state.skips, sync_id)
            batch.end(sync_id, summary)
            return None
        if isinstance(step, Watch):
            self.log.info(
                "Census skipped run %s of sync %s because run %s was going; waiting for it.",
                summary.sync_run_id,
                sync_id,
                step.run_id,
            )
            batch.watch(sync_id, step.run_id, state.skips)
            return None
        if isinstance(step, TriggerFresh):
            return state
        batch.give_up(sync_id, "the task's deadline passed while it waited out a skip; no fresh run was triggered")
        return None

    def _trigger_after_skips(self, context: Context, batch: SyncBatch, fresh: list[tuple[int, int]]) -> None:
        if self.fail_fast and batch.failures(self.expectations):
            for sync_id, _ in fresh:
                batch.give_up(sync_id, "fail_fast: another sync failed, so no fresh run was triggered after the skip")
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
