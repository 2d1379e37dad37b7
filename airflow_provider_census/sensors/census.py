"""``CensusSyncRunSensor``: wait for a given Census sync run, in poke, reschedule or deferrable mode.

``CensusSensor``, the name of provider 2.1, stays as a thin deprecated subclass so DAGs
written against 2.1 keep working unchanged.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from airflow_provider_census.api.errors import CensusPollingError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.links.census import CensusSyncRunLink
from airflow_provider_census.outcomes import describe_run
from airflow_provider_census.version_compat import (
    AirflowProviderDeprecationWarning,
    AirflowSensorTimeout,
    BaseSensorOperator,
)
from airflow_provider_census.waiting import Deadlines, SyncRunWaitingMixin

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.version_compat import Context

PROVIDER_21_EVENT_KEYS = frozenset({"sync_run_id", "status", "error_message"})
"""The event of provider 2.1's trigger. One may wait in a deferred task's ``next_kwargs`` across the upgrade."""


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
        return self._finish_or_defer(context, self._current_run(context, self._run_id()))

    def _finish_or_defer(self, context: Context, run: SyncRun) -> int:
        """Finish on a run that ended; else wait for it in the triggerer, for at most the sensor's timeout."""
        if run.outcome.is_terminal:
            return self._finish(context, run)
        deadlines = Deadlines(wait=time.time() + float(self.timeout), cancel=None)
        self.defer(
            trigger=self.waiter.trigger(run.id, deadlines),
            method_name="execute_complete",
            timeout=None,
        )

    def poke(self, context: Context) -> bool:
        run = self._current_run(context, self._run_id())
        if not run.outcome.is_terminal:
            self.log.info("Census sync run %s is %s; waiting", run.id, run.status)
            return False
        self._finish(context, run)
        return True

    def _run_id(self) -> int:
        return census_id(self.sync_run_id, "sync_run_id")

    def _current_run(self, context: Context, sync_run_id: int) -> SyncRun:
        """The run to watch: the given one, or the earlier run it was skipped for (on_skipped='wait')."""
        run = self.hook.get_sync_run(sync_run_id)
        earlier = self.waiter.earlier_run_to_wait_for(self.waiter.summary(run))
        if earlier is not None:
            run = self.hook.get_sync_run(earlier.id)
        self.waiter.publish(context, run.sync_id, run.id)
        return run

    def _finish(self, context: Context, run: SyncRun) -> int:
        return self.waiter.finish(context, self.waiter.summary(run))

    def execute_complete(self, context: Context, event: object = None) -> int:
        """Resume after the trigger's event, or after one 2.1's trigger left before the upgrade.

        A missing or malformed event fails the task clearly, never successfully.
        """
        if _is_provider_21_event(event):
            return self._resume_after_provider_21_event(context, event)
        parsed = self.waiter.read_event(event)
        summary = parsed.summary or {"sync_run_id": parsed.sync_run_id}
        if parsed.status == "timeout":
            raise AirflowSensorTimeout(f"{parsed.message} {describe_run(summary)}")
        if parsed.status != "finished" or parsed.summary is None:
            raise CensusPollingError(parsed.message, summary)
        if RunOutcome(parsed.summary["outcome"]) is RunOutcome.SKIPPED and self.expectations.waits_for_earlier_run:
            return int(self.execute(context))
        return self.waiter.finish(context, parsed.summary)

    def _resume_after_provider_21_event(self, context: Context, event: Mapping[str, Any]) -> int:
        """Judge the run a 2.1 trigger reported on by this provider's rules, not by the event.

        That trigger fired before the upgrade. Its event says only completed or failed, with no
        error code, no cancellation and no record counts, and it may be stale: so the run is
        read once more and finished like any other (or waited for again, should it not have ended).
        """
        run_id = census_id(event["sync_run_id"], "sync_run_id of the provider 2.1 trigger's event")
        self.log.info(
            "Resuming from an event of airflow-provider-census 2.1's trigger (status %r); reading Census "
            "sync run %s again to judge it by this provider's rules",
            event["status"],
            run_id,
        )
        return self._finish_or_defer(context, self._current_run(context, run_id))


def _is_provider_21_event(event: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(event, Mapping) and set(event) == PROVIDER_21_EVENT_KEYS


class CensusSensor(CensusSyncRunSensor):
    """Deprecated (provider 2.1): wait for a sync run; use :class:`CensusSyncRunSensor`.

    It is that sensor with 2.1's signature and ``deferrable`` defaulting to False, as in 2.1, so
    every state is read by this provider's rules: a failed run raises
    :class:`~airflow_provider_census.api.errors.CensusRunFailedError` with Census's error, and a
    skipped, canceled or unknown run never counts as success. Events of 2.1's trigger, and
    2.1's trigger rows, are taken over (see ``CensusSyncRunSensor.execute_complete``).

    ``sync_run_id`` and ``census_conn_id`` stay in this signature because Airflow fills in
    ``default_args`` only for the parameters a class's own ``__init__`` names.

    :param sync_run_id: the run to wait for (templated).
    :param census_conn_id: the Airflow connection to Census (templated).
    :param deferrable: wait in the triggerer (False by default, as in 2.1).
    """

    def __init__(
        self,
        *,
        sync_run_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        warnings.warn(
            "CensusSensor is the name of airflow-provider-census 2.1; use "
            "airflow_provider_census.sensors.census.CensusSyncRunSensor with the same arguments (its "
            "deferrable defaults to Airflow's [operators] default_deferrable instead of False).",
            AirflowProviderDeprecationWarning,
            stacklevel=2,
        )
        super().__init__(sync_run_id=sync_run_id, census_conn_id=census_conn_id, deferrable=deferrable, **kwargs)
