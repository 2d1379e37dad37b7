"""``CensusSyncRunSensor``: wait for a given Census sync run, in poke, reschedule or deferrable mode.

``CensusSensor``, the name of provider 2.1, stays as a thin deprecated subclass so DAGs
written against 2.1 keep working unchanged.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeGuard

from airflow_provider_census.api.errors import CensusError, rebuild_error
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.retry import is_transient
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.wait import Poll, PollFailed, Seen, WaitRules, WaitState, after_look
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.version_compat import (
    AirflowProviderDeprecationWarning,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)
from airflow_provider_census.waiting import Deadlines, SyncRunTask

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.core.events import RunEvent
    from airflow_provider_census.runs import RunSummary
    from airflow_provider_census.version_compat import Context

PROVIDER_21_EVENT_KEYS = frozenset({"sync_run_id", "status", "error_message"})
"""The event of provider 2.1's trigger. One may wait in a deferred task's ``next_kwargs`` across the upgrade."""


class CensusSyncRunSensor(SyncRunTask, BaseSensorOperator):
    """Wait until a Census sync run ends; fail with Census's error if it did not succeed.

    It reads runs exactly as :class:`~airflow_provider_census.operators.census.CensusTriggerSyncOperator`
    does (the same code), so states, the rejected-records gate and error messages behave the
    same. It returns the run id (XCom ``return_value``) in every mode. It never cancels the run:
    it only watches it, and so it never triggers one either: with ``on_skipped="wait"`` it
    follows the earlier run that made Census skip this one, and that run decides the task.

    :param sync_run_id: the run to wait for (templated), e.g. ``"{{ ti.xcom_pull('trigger') }}"``.
    :param sync_id: the sync the run belongs to (templated; optional). On a V2 Census that serves
        only what its reference documents, the run is read by ``GET /syncs/test_status``, which
        does not say its sync: with ``sync_id`` the run's link and XCom name it, and the run is
        looked for in the sync's run list first (every field, where that list is served).
    :param census_conn_id: the Airflow connection to Census (templated).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param on_skipped: ``fail`` (default), ``succeed``, or ``wait`` for the earlier run that
        made Census skip this one.
    :param max_rejected_records: fail a completed run that rejected more records than this.
    :param max_rejected_share: fail a completed run that rejected more than this share (0-1).
    :param max_poll_failures: failed polls in a row tolerated, in every mode.
    :param unknown_state_timeout: seconds a run may stay in a state the provider does not know,
        in every mode (in reschedule mode each poke counts afresh, so the sensor's ``timeout``
        bounds it there).

    ``poke_interval`` is the poll interval in every mode; ``timeout`` bounds the wait.
    """

    template_fields: Sequence[str] = ("sync_run_id", "sync_id", "census_conn_id")

    def __init__(self, *, sync_run_id: int | str, sync_id: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_run_id = sync_run_id
        self.sync_id = sync_id
        self._wait_state = WaitState()

    @property
    def poll_seconds(self) -> float:
        return float(self.poke_interval)

    @property
    def cancels_on_kill(self) -> bool:
        """A sensor only watches a run that something else started, so it never cancels it."""
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        run_id = self._run_id()
        try:
            run = self._current_run(context, run_id)
        except CensusError as exc:
            if not is_transient(exc):
                raise
            # The trigger's polls bear passing failures (max_poll_failures), as poking does.
            self.log.warning("Could not read Census sync run %s yet (%s); waiting for it anyway", run_id, exc)
            self.publish(context, self._given_sync_id(), run_id)
            self._defer(run_id, self._given_sync_id())
        return self._finish_or_defer(context, run)

    def _finish_or_defer(self, context: Context, run: SyncRun) -> int:
        """Finish on a run that ended; else wait for it in the triggerer, for at most the sensor's timeout."""
        if run.outcome.is_terminal:
            return self.finish(context, self.summary_of(run))
        self._defer(run.id, run.sync_id)

    def _defer(self, run_id: int, sync_id: int | None) -> NoReturn:
        deadlines = Deadlines(wait=time.time() + float(self.timeout), cancel=None)
        trigger = self.make_trigger(run_id, deadlines, sync_id)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=None)

    def poke(self, context: Context) -> PokeReturnValue:
        """One look, judged by the rules of every wait (:mod:`..core.wait`), as the deferred wait judges its polls.

        Passing failures are borne up to ``max_poll_failures`` in a row, an unknown state up to
        ``unknown_state_timeout``; a finished run ends the wait with its id as the task's XCom.
        The count lives on the sensor, so it spans the pokes of one try in poke mode; in
        reschedule mode each poke starts afresh, and the sensor's ``timeout`` bounds the wait.
        """
        began, run_id = time.time(), self._run_id()
        run: SyncRun | None = None
        try:
            run = self._current_run(context, run_id)
        except CensusError as exc:
            failure = PollFailed.of(run_id, exc)
            if not failure.transient:
                raise
            look: Seen | PollFailed = failure
        else:
            look = Seen(run.id, run.status, run.outcome)
        self._wait_state, decision = after_look(self._poke_rules, self._wait_state, look, began=began, now=time.time())
        if isinstance(decision, Poll):
            self.log.info("Census sync run %s is %s; waiting", run_id, run.status if run else "not read this time")
            return PokeReturnValue(is_done=False)
        if run is None or decision.status == "error":
            raise rebuild_error(decision.error or "CensusPollingError", decision.message, decision.http_status)
        return PokeReturnValue(is_done=True, xcom_value=self.finish(context, self.summary_of(run)))

    @property
    def _poke_rules(self) -> WaitRules:
        return WaitRules(float(self.poke_interval), self.max_poll_failures, self.unknown_state_timeout)

    def _run_id(self) -> int:
        return census_id(self.sync_run_id, "sync_run_id")

    def _given_sync_id(self) -> int | None:
        return None if self.sync_id in (None, "") else census_id(self.sync_id, "sync_id")

    def _current_run(self, context: Context, sync_run_id: int) -> SyncRun:
        """The run to watch: the given one, or the earlier run it was skipped for (on_skipped='wait')."""
        run = self.hook.get_sync_run(sync_run_id, sync_id=self._given_sync_id())
        if self.expectations.waits_out_skips and run.outcome is RunOutcome.SKIPPED and run.sync_id is not None:
            earlier = self.earlier_run(self.summary_of(run), run.sync_id)
            if earlier is not None:
                self.log.info("Census skipped run %s for run %s; following run %s", run.id, earlier.id, earlier.id)
                run = self.hook.get_sync_run(earlier.id, sync_id=run.sync_id)
        self.publish(context, run.sync_id, run.id)
        return run

    def execute_complete(self, context: Context, event: object = None) -> int:
        """Resume after the trigger's event, or after one 2.1's trigger left before the upgrade.

        A missing or malformed event fails the task clearly, never successfully.
        """
        if _is_provider_21_event(event):
            return self._resume_after_provider_21_event(context, event)
        parsed = self.read_event(event)
        if parsed.status != "finished" or parsed.summary is None:
            self.raise_for_unfinished(parsed)
        if self._follows_earlier_run(parsed.summary):
            return int(self.execute(context))
        return self.finish(context, parsed.summary)

    def _follows_earlier_run(self, summary: RunSummary) -> bool:
        return self.expectations.waits_out_skips and summary.outcome is RunOutcome.SKIPPED

    def timeout_error(self, event: RunEvent) -> Exception:
        return AirflowSensorTimeout(event.described())

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
