"""``CensusSyncRunSensor``: wait for a given Census sync run, in poke, reschedule or deferrable mode.

Deferred, it waits as the operators do (:class:`~airflow_provider_census.operators.base.SyncRunTask`);
poking, each ``poke`` is one step of the same rules (:mod:`~airflow_provider_census.core.wait` between
looks, :mod:`~airflow_provider_census.core.steps` at a run's end).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from airflow_provider_census.api.errors import rebuild_error
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.core.steps import FindBlocker, WaitState, Watch, after_blocker, after_end
from airflow_provider_census.core.wait import Poll, PollState, after_look
from airflow_provider_census.operators.base import SyncRunTask
from airflow_provider_census.version_compat import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    task_state_store,
)

if TYPE_CHECKING:
    from airflow_provider_census.core.events import RunEvent
    from airflow_provider_census.version_compat import Context

POKE_STATE_KEY = "census_poke_state"
"""Where a rescheduled sensor keeps its failed polls in a row and since when the state is unknown (Airflow 3.3+)."""
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
        self._poll_state = PollState()

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
        return self._follow_from(context, self._given_state())

    def _follow_from(self, context: Context, state: WaitState) -> int:
        """Look at the run once, then finish on its end or defer for it (its sync id as Census says)."""
        polls, run = self.first_look(state)
        if run is not None:
            state = WaitState(run.id, run.sync_id, wait_deadline=state.wait_deadline)
        self.publish(context, state.sync_id, state.run_id)
        if run is not None and run.outcome.is_terminal:
            return self.follow(context, state, self.summary_of(run))
        self.waiting = state
        self.defer(trigger=self.trigger_for(state, polls), method_name="execute_complete", timeout=None)

    def _given_state(self) -> WaitState:
        """The run to wait for, for at most the sensor's timeout (a sensor never cancels)."""
        return WaitState(self._run_id(), self._given_sync_id(), wait_deadline=time.time() + float(self.timeout))

    def publish_followed(self, context: Context, state: WaitState) -> None:
        """The run that made Census skip the given one decides the sensor: its link and id are the sensor's now."""
        self.publish(context, state.sync_id, state.run_id)

    def poke(self, context: Context) -> PokeReturnValue:
        """One look, judged by the rules of every wait, as the deferred wait judges its polls.

        Passing failures are borne up to ``max_poll_failures`` in a row, an unknown state up to
        ``unknown_state_timeout``; a finished run ends the wait with its id as the task's XCom,
        unless it was skipped and ``on_skipped="wait"``: then the run it yielded to is followed,
        at once. The count spans the pokes of one try: on the sensor in poke mode, in the task's
        ``task_state_store`` in reschedule mode (Airflow 3.3+; before, each poke starts afresh and
        the sensor's ``timeout`` bounds the wait).
        """
        state = self._given_state()
        self._poll_state = self._polls_kept(context)
        while True:
            began = time.time()
            look, run = self.look_at(state)
            if run is not None:
                state = WaitState(run.id, run.sync_id, state.watching, state.skips, state.wait_deadline)
                self.publish(context, state.sync_id, state.run_id)
            rules = self.rules(None, None)
            self._poll_state, decision = after_look(rules, self._poll_state, look, began=began, now=time.time())
            if isinstance(decision, Poll):
                self.log.info(
                    "Census sync run %s is %s; waiting", state.run_id, run.status if run else "not read this time"
                )
                self._keep_polls(context)
                return PokeReturnValue(is_done=False)
            if run is None or decision.status == "error":
                raise rebuild_error(decision.error or "CensusPollingError", decision.message, decision.http_status)
            summary = self.summary_of(run)
            state, step = after_end(state, summary.outcome, self.skip_policy, time.time())
            if isinstance(step, FindBlocker):
                state, step = after_blocker(
                    state, self.blocker_of(summary, state.sync_id), self.skip_policy, time.time()
                )
            if isinstance(step, Watch):
                self.log.info("Census skipped run %s for run %s; following run %s", run.id, step.run_id, step.run_id)
                continue
            return PokeReturnValue(is_done=True, xcom_value=self.finish(context, summary))

    def _polls_kept(self, context: Context) -> PollState:
        """The poll state so far: the sensor's own in poke mode; in reschedule mode, what this try's
        last poke kept in the store (a new try starts afresh, as a poking sensor does)."""
        store = task_state_store(context) if self.reschedule else None
        if store is None:
            return self._poll_state
        kept = store.get(POKE_STATE_KEY)
        if not isinstance(kept, dict) or kept.get("try_number") != context["ti"].try_number:
            return PollState()
        return PollState.from_json(kept)

    def _keep_polls(self, context: Context) -> None:
        store = task_state_store(context) if self.reschedule else None
        if store is not None:
            store.set(POKE_STATE_KEY, {**self._poll_state.to_json(), "try_number": context["ti"].try_number})

    def _run_id(self) -> int:
        return census_id(self.sync_run_id, "sync_run_id")

    def _given_sync_id(self) -> int | None:
        return None if self.sync_id in (None, "") else census_id(self.sync_id, "sync_id")

    def execute_complete(self, context: Context, event: object = None) -> int:
        """Resume after the trigger's event, or after one 2.1's trigger left before the upgrade.

        A missing or malformed event fails the task clearly, never successfully.
        """
        if _is_provider_21_event(event):
            return self._resume_after_provider_21_event(context, event)
        return int(super().execute_complete(context, event))

    def restored_state(self, event: RunEvent) -> WaitState:
        """The state the trigger handed back; from a row 2.1 wrote, none: then the sensor's own."""
        if event.task_state is None:
            return WaitState(event.sync_run_id, self._given_sync_id(), wait_deadline=time.time() + float(self.timeout))
        return super().restored_state(event)

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
        return self._follow_from(context, WaitState(run_id, wait_deadline=time.time() + float(self.timeout)))


def _is_provider_21_event(event: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(event, Mapping) and set(event) == PROVIDER_21_EVENT_KEYS
