"""``CensusTriggerSyncOperator``: trigger a Census sync and, by default, wait for its run.

``CensusOperator``, the name of provider 2.1, stays as a thin deprecated subclass so DAGs
written against 2.1 keep working unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.errors import CensusPollingError, CensusRunTimeoutError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.links.census import CensusSyncRunLink
from airflow_provider_census.outcomes import describe_run
from airflow_provider_census.version_compat import AirflowProviderDeprecationWarning, BaseOperator
from airflow_provider_census.waiting import Deadlines, SyncRunWaitingMixin, positive_seconds

if TYPE_CHECKING:
    from airflow_provider_census.triggers.census import RunEvent
    from airflow_provider_census.version_compat import Context

DEFAULT_TIMEOUT = timedelta(hours=24)


class CensusTriggerSyncOperator(SyncRunWaitingMixin, BaseOperator):
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
    :param cancel_on_kill: cancel the run when the task is killed (on the worker, and while
        deferred on Airflow 3.3 and later).
    :param reattach_on_retry: on a task retry (after a worker crash, say), wait for the sync's
        run still in progress instead of triggering a second concurrent run.
    :param on_skipped: when Census skips the run because an earlier run of the sync is still
        going: ``fail`` (default), ``succeed``, or ``wait`` for that earlier run.
    :param max_rejected_records: fail a completed run that rejected more records than this.
    :param max_rejected_share: fail a completed run that rejected more than this share (0-1)
        of the records it processed.
    :param max_poll_failures: failed polls in a row tolerated before the wait gives up.
    :param unknown_state_timeout: seconds a run may stay in a state the provider does not know.
    """

    template_fields: Sequence[str] = ("sync_id", "census_conn_id")
    operator_extra_links = (CensusSyncRunLink(),)
    ui_color = "#c9f0e4"

    def __init__(
        self,
        *,
        sync_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        force_full_sync: bool = False,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        reattach_on_retry: bool = True,
        on_skipped: str = "fail",
        max_rejected_records: int | None = None,
        max_rejected_share: float | None = None,
        max_poll_failures: int = 5,
        unknown_state_timeout: float = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.setup_waiting(
            census_conn_id=census_conn_id,
            deferrable=deferrable,
            on_skipped=on_skipped,
            max_rejected_records=max_rejected_records,
            max_rejected_share=max_rejected_share,
            max_poll_failures=max_poll_failures,
            unknown_state_timeout=unknown_state_timeout,
        )
        self.sync_id = sync_id
        self.force_full_sync = force_full_sync
        self.wait_for_completion = wait_for_completion
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.timeout = positive_seconds(timeout, "timeout")
        self.cancel_on_kill = cancel_on_kill
        self.reattach_on_retry = reattach_on_retry
        self._sync_run_id: int | None = None

    @property
    def wait_poll_interval(self) -> float:
        return self.poll_interval

    @property
    def wait_cancels_on_kill(self) -> bool:
        return self.cancel_on_kill

    def execute(self, context: Context) -> int:
        sync_id = census_id(self.sync_id, "sync_id")
        run_id = self._attach_or_trigger(context, sync_id)
        self.waiter.publish(context, sync_id, run_id)
        if not self.wait_for_completion:
            return run_id
        return self._wait(context, run_id, Deadlines.for_task(context, self.timeout, self.execution_timeout))

    def _attach_or_trigger(self, context: Context, sync_id: int) -> int:
        """Trigger once; on a retry, wait for the run an earlier try left going instead."""
        if self.reattach_on_retry and context["ti"].try_number > 1:
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
        run_id = self.hook.trigger_sync_run(sync_id, force_full_sync=self.force_full_sync)
        self.log.info("Triggered Census sync %s: run %s", sync_id, run_id)
        return run_id

    def _wait(self, context: Context, run_id: int, deadlines: Deadlines) -> int:
        """Check once, then defer or poll here; the run's end decides the task's."""
        self._sync_run_id = run_id
        first = self.waiter.first_look(run_id)
        if first is not None and RunOutcome(first["outcome"]).is_terminal:
            return self._settle(context, first, deadlines)
        trigger = self.waiter.trigger(run_id, deadlines)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", timeout=None)
        return self._on_event(context, self.waiter.wait_in_worker(trigger), deadlines)

    def execute_complete(self, context: Context, event: object = None) -> int:
        """Resume after the trigger's event; a missing or malformed event fails the task clearly."""
        parsed = self.waiter.read_event(event)
        return self._on_event(context, parsed, Deadlines(parsed.wait_deadline, parsed.cancel_deadline))

    def _on_event(self, context: Context, event: RunEvent, deadlines: Deadlines) -> int:
        if event.status == "finished" and event.summary is not None:
            return self._settle(context, event.summary, deadlines)
        summary = event.summary or {"sync_run_id": event.sync_run_id}
        self._sync_run_id = None if event.canceled_run else self._sync_run_id
        if event.status == "timeout":
            raise CensusRunTimeoutError(f"{event.message} {describe_run(summary)}", summary)
        raise CensusPollingError(event.message, summary)

    def _settle(self, context: Context, summary: dict[str, Any], deadlines: Deadlines) -> int:
        earlier = self.waiter.earlier_run_to_wait_for(summary)
        if earlier is not None:
            self.waiter.publish(context, earlier.sync_id, earlier.id)
            return self._wait(context, earlier.id, deadlines)
        self._sync_run_id = None
        return self.waiter.finish(context, summary)

    def on_kill(self) -> None:
        """Cancel the run this task is waiting for, unless it already ended."""
        if self.cancel_on_kill and self._sync_run_id is not None:
            self.hook.cancel_sync_run(self._sync_run_id)
            self.log.info("Canceled Census sync run %s because the task was killed", self._sync_run_id)


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
