"""``CensusTriggerSyncOperator``: trigger a Census sync and, by default, wait for its run.

A retry on Airflow 3.3+ is durable through Airflow's own ``ResumableJobMixin``: the run id is
kept in the task's ``task_state_store`` when Census gives it, and the next try reconnects to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ResumableJobMixin

from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.core.steps import WaitState
from airflow_provider_census.openlineage import CensusLineageMixin
from airflow_provider_census.operators.triggering_base import SyncTriggeringTask
from airflow_provider_census.version_compat import task_state_store

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.hooks.triggering import StartedRun
    from airflow_provider_census.runs import RunSummary
    from airflow_provider_census.version_compat import Context

STATE_STORE_KEY = "census_sync_run_id"
"""Where, on Airflow 3.3+, a try keeps its run id in the task's ``task_state_store`` for the tries after it."""


class CensusTriggerSyncOperator(CensusLineageMixin, ResumableJobMixin, SyncTriggeringTask):
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
    :param poll_interval: seconds between polls of the run; with ``polling="adaptive"`` the
        longest gap once the run's likely end has come.
    :param polling: ``adaptive`` (default): where the sync's recent completed runs took about as
        long each time, poll once early (a run that fails at once), rarely while the run surely
        goes on, densely around its likely end, then every ``poll_interval``; the history comes
        with the one look at the sync's runs made before each trigger. A sync without history,
        or with erratic durations, is polled every ``poll_interval``. ``fixed``: always every
        ``poll_interval``.
    :param timeout: how long to wait for the run (seconds or timedelta); then the task fails
        and the run goes on. ``execution_timeout``, when set, cancels the run instead.
    :param cancel_on_kill: cancel the run when the task is killed: on the worker, and while
        deferred on Airflow 3.3 and later, where marking the task failed, clearing it and also
        marking it successful each cancel the run.
    :param durable: on Airflow 3.3 and later, Airflow's ``ResumableJobMixin`` switch (default
        on): the run id is kept in the task's ``task_state_store`` as soon as Census gives it, so
        a retry (after a worker crash, say) does not start a second run: a run still going is
        waited for, a completed one that passes the task's checks is the result, and any other is
        triggered afresh. The id is forgotten once the task succeeds, so clearing a successful
        task syncs again. ``durable=False`` triggers afresh on every try. Before 3.3 Airflow has
        no store and warns that the argument has no effect there.
    :param reattach_on_retry: the provider's own switch for the same protection (default on):
        ``False`` is ``durable=False`` on 3.3+; before 3.3 it turns off the one look a retry
        makes there: the sync's newest run is waited for if it is still going, whoever started it.
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
    external_id_key = STATE_STORE_KEY

    def __init__(self, *, sync_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_id = sync_id
        self.durable = self.durable and self.reattach_on_retry
        self._started: StartedRun | None = None
        self._kept_run: SyncRun | None = None
        self._kept_verdict = "fresh"
        self._result: int | None = None

    def execute(self, context: Context) -> Any:
        return self.execute_resumable(context)

    # -- ResumableJobMixin: submit, look at what an earlier try kept, wait, result --

    def submit_job(self, context: Context) -> int:
        """Trigger the sync (or, before Airflow 3.3, adopt its newest run an earlier try left going)."""
        sync_id = census_id(self.sync_id, "sync_id")
        adopted = self.newest_run_going(context, sync_id) if task_state_store(context) is None else None
        if adopted is not None:
            return adopted
        self._started = self._trigger(sync_id)
        return self._started.run_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """Census's status of the run an earlier try kept, judged at once by this task's rules (below)."""
        sync_id = census_id(self.sync_id, "sync_id")
        run = self.hook.get_sync_run(census_id(external_id, "the sync_run_id kept by an earlier try"), sync_id=sync_id)
        self._kept_verdict = self.kept_run_verdict(context, run, sync_id)
        self._kept_run = run if self._kept_verdict == "result" else None
        return run.status

    def is_job_active(self, status: str) -> bool:
        """Still going, and of this task's sync: wait for it."""
        return self._kept_verdict == "wait"

    def is_job_succeeded(self, status: str) -> bool:
        """Completed, readable as not canceled, and passing this task's checks: it is the result."""
        return self._kept_verdict == "result"

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        """Publish the run, then wait for it and what its end leads to; the task's result (the run id)."""
        sync_id = census_id(self.sync_id, "sync_id")
        run_id = census_id(external_id, "sync_run_id")
        self.publish(context, sync_id, run_id)
        if not self.wait_for_completion:
            self._forget_kept_run(context)
            self._result = run_id
        else:
            started = self._started if self._started is not None and self._started.run_id == run_id else None
            schedule = None if started is None else self.schedule_of(started)
            state = WaitState(run_id, sync_id, schedule=schedule).with_deadlines(**self.deadlines(context))
            self._result = self.follow(context, state)
        return self._result

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        """The result of the wait, or, when an earlier try's run completed, that run finished as this try's."""
        if self._result is not None or self._kept_run is None:
            return self._result
        self.publish(context, self._kept_run.sync_id, self._kept_run.id)
        return self.finish(context, self.summary_of(self._kept_run))

    # -- the rest of the task's own steps --

    def _trigger(self, sync_id: int) -> StartedRun:
        started = self.hook.start_sync_run(sync_id, force_full_sync=self.force_full_sync)
        self.log.info("Triggered Census sync %s: run %s", sync_id, started.run_id)
        return started

    def trigger_fresh(self, context: Context, state: WaitState) -> WaitState:
        """A fresh run after a skip: kept for later tries like the first, and published; it decides the task."""
        sync_id = census_id(self.sync_id, "sync_id")
        started = self._trigger(sync_id)
        store = task_state_store(context)
        if store is not None and self.durable:
            store.set(STATE_STORE_KEY, started.run_id)
        self.log.info("Triggered fresh run %s of sync %s after the skip; it decides the task.", started.run_id, sync_id)
        self.publish(context, sync_id, started.run_id)
        return state.waiting_for(started.run_id, self.schedule_of(started))

    def finish(self, context: Context, summary: RunSummary) -> int:
        """The shared finish, then forget the kept run: the task has its result."""
        run_id = super().finish(context, summary)
        self._forget_kept_run(context)
        return run_id

    def _forget_kept_run(self, context: Context) -> None:
        """Drop the run id kept for later tries once the task succeeds.

        Tries after a success come from a user clearing the task to sync again (Airflow keeps
        the store across a clear): they must trigger a fresh run, not take the old one as the result.
        """
        store = task_state_store(context)
        if store is not None and self.durable:
            store.delete(STATE_STORE_KEY)
