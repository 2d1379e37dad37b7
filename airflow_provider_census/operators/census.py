"""``CensusTriggerSyncOperator``: trigger a Census sync and, by default, wait for its run.

``CensusOperator``, the name of provider 2.1, stays as a thin deprecated subclass so DAGs
written against 2.1 keep working unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.errors import CensusRunTimeoutError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.runs import RunSummary
from airflow_provider_census.version_compat import AIRFLOW_V_3_3_PLUS, AirflowProviderDeprecationWarning
from airflow_provider_census.waiting import Deadlines, SyncRunTask, positive_seconds

if TYPE_CHECKING:
    from airflow_provider_census.triggers.census import RunEvent
    from airflow_provider_census.version_compat import Context

DEFAULT_TIMEOUT = timedelta(hours=24)
MAX_RETRIGGERS_AFTER_SKIPS = 3
"""With ``on_skipped="wait"``, how many fresh runs one task triggers after skipped ones before it fails."""
STATE_STORE_KEY = "census_sync_run_id"
"""Where, on Airflow 3.3+, a try keeps its run id in the task's ``task_state_store`` for the tries after it."""


class CensusTriggerSyncOperator(SyncRunTask):
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

    def __init__(
        self,
        *,
        sync_id: int | str,
        force_full_sync: bool = False,
        wait_for_completion: bool = True,
        poll_interval: float = 10.0,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        reattach_on_retry: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sync_id = sync_id
        self.force_full_sync = force_full_sync
        self.wait_for_completion = wait_for_completion
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.timeout = positive_seconds(timeout, "timeout")
        self.cancel_on_kill = cancel_on_kill
        self.reattach_on_retry = reattach_on_retry
        self._sync_run_id: int | None = None

    @property
    def poll_seconds(self) -> float:
        return self.poll_interval

    @property
    def cancels_on_kill(self) -> bool:
        return self.cancel_on_kill

    def execute(self, context: Context) -> int:
        sync_id = census_id(self.sync_id, "sync_id")
        earlier = self._earlier_try_run(context, sync_id)
        if isinstance(earlier, RunSummary):
            self.publish(context, sync_id, earlier.sync_run_id)
            return self.finish(context, earlier)
        run_id = earlier if earlier is not None else self._trigger(context, sync_id)
        self.publish(context, sync_id, run_id)
        if not self.wait_for_completion:
            self._forget_kept_run(context)
            return run_id
        return self._wait(context, run_id, Deadlines.for_task(context, self.timeout, self.execution_timeout), 0)

    # -- retries: never a second run for one task --

    def _earlier_try_run(self, context: Context, sync_id: int) -> int | RunSummary | None:
        """On a retry, what an earlier try left: a run to wait for (its id), a result (its summary), or nothing."""
        if not self.reattach_on_retry or context["ti"].try_number <= 1:
            return None
        store = _task_state_store(context)
        if store is not None:
            return self._run_kept_by_earlier_try(context, store.get(STATE_STORE_KEY), sync_id)
        latest = self.hook.latest_sync_run(sync_id)
        if latest is not None and latest.outcome is RunOutcome.IN_PROGRESS:
            self.log.warning(
                "Try %s: sync %s already has run %s in progress (most likely from an earlier try); "
                "waiting for it instead of starting a second run (reattach_on_retry=False turns this off).",
                context["ti"].try_number,
                sync_id,
                latest.id,
            )
            return latest.id
        return None

    def _run_kept_by_earlier_try(self, context: Context, kept: object, sync_id: int) -> int | RunSummary | None:
        if kept is None:
            return None
        run = self.hook.get_sync_run(census_id(kept, "the sync_run_id kept by an earlier try"))
        try_number = context["ti"].try_number
        if run.sync_id != sync_id:
            return None
        if run.outcome is RunOutcome.IN_PROGRESS:
            self.log.warning("Try %s: run %s of an earlier try is still going; waiting for it.", try_number, run.id)
            return run.id
        summary = self.summary_of(run)
        if run.outcome is RunOutcome.SUCCEEDED and self.expectations.accept(summary):
            self.log.warning("Try %s: run %s of an earlier try completed; it is the result.", try_number, run.id)
            return summary
        self.log.warning(
            "Try %s: run %s of an earlier try ended %s%s; triggering afresh.",
            try_number,
            run.id,
            run.status,
            "" if run.outcome is not RunOutcome.SUCCEEDED else " but failed this task's checks",
        )
        return None

    def _trigger(self, context: Context, sync_id: int) -> int:
        run_id = self.hook.trigger_sync_run(sync_id, force_full_sync=self.force_full_sync)
        self.log.info("Triggered Census sync %s: run %s", sync_id, run_id)
        store = _task_state_store(context)
        if store is not None:
            store.set(STATE_STORE_KEY, run_id)
        return run_id

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
        store = _task_state_store(context)
        if store is not None:
            store.delete(STATE_STORE_KEY)

    # -- waiting: the task's own run, and a run that made Census skip it --

    def _wait(self, context: Context, run_id: int, deadlines: Deadlines, skips: int) -> int:
        """Check once, then defer or poll here; the run's end decides the task's."""
        self._sync_run_id = run_id
        first = self.first_look(run_id)
        if first is not None and first.outcome.is_terminal:
            return self._on_end(context, first, deadlines, skips)
        trigger = self.make_trigger(run_id, deadlines)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", kwargs={"skips": skips}, timeout=None)
        return self._on_event(context, self.wait_in_worker(trigger), skips)

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
            self.log.warning("Census skipped %d fresh runs of sync %s in a row; giving up.", skips, summary.sync_id)
        self._sync_run_id = None
        return self.finish(context, summary)

    def _wait_out_skip(self, context: Context, skipped: RunSummary, deadlines: Deadlines, skips: int) -> int:
        """Wait for the run that made Census skip ours (never canceling it), then trigger a fresh one."""
        self._sync_run_id = None
        blocker = self.earlier_run(skipped)
        if blocker is None or blocker.outcome.is_terminal:
            self.log.info("Census skipped run %s; the run it yielded to has ended.", skipped.sync_run_id)
            return self._trigger_after_skip(context, skipped.sync_id, deadlines, skips)
        self.log.info(
            "Census skipped run %s because run %s was going; waiting for run %s, then triggering a fresh run "
            "(%d of at most %d).",
            skipped.sync_run_id,
            blocker.id,
            blocker.id,
            skips,
            MAX_RETRIGGERS_AFTER_SKIPS,
        )
        trigger = self.make_trigger(blocker.id, deadlines.for_watching)
        trigger.cancel_on_kill = False
        kwargs: dict[str, Any] = {"skips": skips, "wait_deadline": deadlines.wait, "cancel_deadline": deadlines.cancel}
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_after_blocking_run", kwargs=kwargs, timeout=None)
        return self._after_blocking_run(context, self.wait_in_worker(trigger), deadlines, skips)

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
        sync_id = parsed.summary.sync_id if parsed.summary else census_id(self.sync_id, "sync_id")
        return self._trigger_after_skip(context, sync_id, deadlines, skips)

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
            self.hook.cancel_sync_run(self._sync_run_id)
            self.log.info("Canceled Census sync run %s because the task was killed", self._sync_run_id)


def _task_state_store(context: Context) -> Any:
    """The task's ``task_state_store`` on Airflow 3.3 and later, else None (older Airflow has none)."""
    return context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None


def describe_status(event: RunEvent) -> str:
    return event.summary.status if event.summary is not None else event.status


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
