"""What the operators that trigger syncs share: their parameters, and what a retry finds of an earlier try.

Private (not part of the provider's API); the parameters are documented on
:class:`~airflow_provider_census.operators.census.CensusTriggerSyncOperator`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.errors import CensusInputError
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.schedule import ScheduledPolls, schedule_for
from airflow_provider_census.hooks.triggering import recent_runs_if_listed
from airflow_provider_census.operators.base import SyncRunTask, positive_seconds, task_deadlines

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.hooks.triggering import StartedRun
    from airflow_provider_census.runs import RunExpectations, RunSummary
    from airflow_provider_census.version_compat import Context

DEFAULT_TIMEOUT = timedelta(hours=24)
POLLING_MODES = ("adaptive", "fixed")


class SyncTriggeringTask(SyncRunTask):
    """Private base of the operators that trigger syncs: their parameters, and what a retry finds.

    The parameters are documented on :class:`~airflow_provider_census.operators.census.CensusTriggerSyncOperator`.
    """

    triggers_after_skips = True

    def __init__(
        self,
        *,
        force_full_sync: bool = False,
        wait_for_completion: bool = True,
        poll_interval: float = 10.0,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        reattach_on_retry: bool = True,
        polling: str = "adaptive",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if polling not in POLLING_MODES:
            raise CensusInputError(
                f"polling must be one of {', '.join(map(repr, POLLING_MODES))}, got {polling!r}: 'adaptive' places "
                "the polls of a run by how long the sync's recent runs took, 'fixed' polls every poll_interval."
            )
        self.polling = polling
        self.force_full_sync = force_full_sync
        self.wait_for_completion = wait_for_completion
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.timeout = positive_seconds(timeout, "timeout")
        self.cancel_on_kill = cancel_on_kill
        self.reattach_on_retry = reattach_on_retry

    @property
    def poll_seconds(self) -> float:
        return self.poll_interval

    @property
    def cancels_on_kill(self) -> bool:
        return self.cancel_on_kill

    def schedule_of(self, started: StartedRun) -> ScheduledPolls | None:
        """Where the new run's polls go: by its sync's history when ``polling="adaptive"``; None: every interval."""
        if self.polling != "adaptive":
            return None
        schedule = schedule_for(started.runs_before, self.poll_interval, started.started_at)
        if schedule is not None:
            plan = schedule.plan
            self.log.info(
                "Run %s: the sync's recent runs ended %.0f-%.0f s after their trigger; polling at %.0f s, then "
                "every %.1f s from %.0f s to %.0f s, then every %.0f s (polling='fixed' polls every %.0f s).",
                started.run_id,
                plan.window_start,
                plan.window_end,
                plan.early,
                plan.window_gap,
                plan.window_start,
                plan.window_end,
                plan.poll_interval,
                plan.poll_interval,
            )
        return schedule

    def deadlines(self, context: Context) -> dict[str, float | None]:
        return task_deadlines(context, self.timeout, self.execution_timeout)

    def newest_run_going(self, context: Context, sync_id: int) -> int | None:
        """Before Airflow 3.3 (no ``task_state_store``), on a retry: the sync's newest run, if still going.

        It is most likely the earlier try's, and waiting for it beats starting a second run.
        """
        if not self.reattach_on_retry or context["ti"].try_number <= 1:
            return None
        newest = recent_runs_if_listed(self.hook, sync_id, "reattach")
        latest = newest[0] if newest else None
        if latest is None or latest.outcome is not RunOutcome.IN_PROGRESS:
            return None
        self.log.warning(
            "Try %s: sync %s already has run %s in progress (most likely from an earlier try); "
            "waiting for it instead of starting a second run (reattach_on_retry=False turns this off).",
            context["ti"].try_number,
            sync_id,
            latest.id,
        )
        return latest.id

    def kept_run_verdict(self, context: Context, run: SyncRun, sync_id: int) -> str:
        """What a run an earlier try kept is to this try: ``wait`` for it, take it as the ``result``, or ``fresh``.

        A completed run is the result only if it passes this task's checks and whether it was
        canceled can be read; a run of another sync (the DAG changed) or any other end is triggered afresh.
        """
        try_number = context["ti"].try_number
        if run.sync_id != sync_id:
            return "fresh"
        if run.outcome is RunOutcome.IN_PROGRESS:
            self.log.warning("Try %s: run %s of an earlier try is still going; waiting for it.", try_number, run.id)
            return "wait"
        summary = self.summary_of(run)
        if run.outcome is RunOutcome.SUCCEEDED and self.expectations.accept(summary) and run.canceled is not None:
            self.log.warning("Try %s: run %s of an earlier try completed; it is the result.", try_number, run.id)
            return "result"
        self.log.warning(
            "Try %s: run %s of an earlier try ended %s%s; triggering afresh.",
            try_number,
            run.id,
            run.status,
            _why_not_the_result(run, summary, self.expectations),
        )
        return "fresh"


def _why_not_the_result(run: SyncRun, summary: RunSummary, expectations: RunExpectations) -> str:
    """Why a completed run of an earlier try is not taken as this try's result ('' when it did not complete)."""
    if run.outcome is not RunOutcome.SUCCEEDED:
        return ""
    if not expectations.accept(summary):
        return " but failed this task's checks"
    return (
        " but whether it was canceled cannot be read (the route that read it does not carry 'canceled'; "
        "a kill of the earlier try cancels its run)"
    )
