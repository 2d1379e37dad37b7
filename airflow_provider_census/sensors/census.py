"""``CensusSyncRunSensor``: wait for a given Census sync run, in poke, reschedule or deferrable mode."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.errors import CensusPollingError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.links.census import CensusSyncRunLink
from airflow_provider_census.outcomes import describe_run
from airflow_provider_census.version_compat import AirflowSensorTimeout, BaseSensorOperator
from airflow_provider_census.waiting import Deadlines, SyncRunWaitingMixin

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.version_compat import Context


class CensusSyncRunSensor(SyncRunWaitingMixin, BaseSensorOperator):
    """Wait until a Census sync run ends; fail with Census's error if it did not succeed.

    It reads runs exactly as :class:`~airflow_provider_census.operators.census.CensusTriggerSyncOperator`
    does (the same code), so states, skipped runs, the rejected-records gate and error
    messages behave the same. It never cancels the run: it only watches it.

    :param sync_run_id: the run to wait for (templated), e.g. ``"{{ ti.xcom_pull('trigger') }}"``.
    :param census_conn_id: the Airflow connection to Census (templated).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param on_skipped: ``fail`` (default), ``succeed``, or ``wait`` for the earlier run that
        made Census skip this one.
    :param max_rejected_records: fail a completed run that rejected more records than this.
    :param max_rejected_share: fail a completed run that rejected more than this share (0-1).
    :param max_poll_failures: failed polls in a row tolerated while deferred.
    :param unknown_state_timeout: seconds a run may stay in a state the provider does not know
        while deferred (in poke and reschedule modes the sensor's ``timeout`` bounds it).

    ``poke_interval`` is the poll interval in every mode; ``timeout`` bounds the wait.
    """

    template_fields: Sequence[str] = ("sync_run_id", "census_conn_id")
    operator_extra_links = (CensusSyncRunLink(),)
    ui_color = "#c9f0e4"

    def __init__(
        self,
        *,
        sync_run_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        deferrable: bool | None = None,
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
        self.sync_run_id = sync_run_id

    @property
    def wait_poll_interval(self) -> float:
        return float(self.poke_interval)

    @property
    def wait_cancels_on_kill(self) -> bool:
        """A sensor only watches a run that something else started, so it never cancels it."""
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        run = self._current_run(context)
        if run.outcome.is_terminal:
            return self._finish(context, run)
        deadlines = Deadlines(wait=time.time() + float(self.timeout), cancel=None)
        self.defer(
            trigger=self.waiter.trigger(run.id, deadlines),
            method_name="execute_complete",
            timeout=None,
        )
        return None

    def poke(self, context: Context) -> bool:
        run = self._current_run(context)
        if not run.outcome.is_terminal:
            self.log.info("Census sync run %s is %s; waiting", run.id, run.status)
            return False
        self._finish(context, run)
        return True

    def _current_run(self, context: Context) -> SyncRun:
        """The run to watch: the given one, or the earlier run it was skipped for (on_skipped='wait')."""
        run = self.hook.get_sync_run(census_id(self.sync_run_id, "sync_run_id"))
        earlier = self.waiter.earlier_run_to_wait_for(self.waiter.summary(run))
        if earlier is not None:
            run = self.hook.get_sync_run(earlier.id)
        self.waiter.publish(context, run.sync_id, run.id)
        return run

    def _finish(self, context: Context, run: SyncRun) -> int:
        return self.waiter.finish(context, self.waiter.summary(run))

    def execute_complete(self, context: Context, event: object = None) -> int:
        """Resume after the trigger's event; a missing or malformed event fails the task clearly."""
        parsed = self.waiter.read_event(event)
        summary = parsed.summary or {"sync_run_id": parsed.sync_run_id}
        if parsed.status == "timeout":
            raise AirflowSensorTimeout(f"{parsed.message} {describe_run(summary)}")
        if parsed.status != "finished" or parsed.summary is None:
            raise CensusPollingError(parsed.message, summary)
        if RunOutcome(parsed.summary["outcome"]) is RunOutcome.SKIPPED and self.expectations.waits_for_earlier_run:
            return int(self.execute(context))
        return self.waiter.finish(context, parsed.summary)
