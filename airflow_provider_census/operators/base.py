"""The base classes of the operators and the sensor: waiting parameters, the wait's driver, the finish.

:class:`SyncRunTask` is their private base class (not part of the provider's API). It holds
the parameters all take, publishes a run's id and link before any wait, and drives a task's wait
for one run: a first look, then the one trigger every task defers to, or the same decisions in
the worker (:func:`~airflow_provider_census.watch.wait_in_worker`); what a run's end leads to
(finish, wait for a blocking run, trigger afresh) is :mod:`~airflow_provider_census.core.steps`'s
to decide. The task's :class:`~airflow_provider_census.core.steps.WaitState` crosses each
deferral in the trigger's ``task_state``. A run id only goes down from here: to the hook, to the trigger.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.errors import CensusError, CensusInputError, CensusRunTimeoutError
from airflow_provider_census.api.retry import ONE_TRY
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.assets.census import record_run_in_outlets
from airflow_provider_census.core.events import RunEvent
from airflow_provider_census.core.steps import (
    Blocker,
    Done,
    FindBlocker,
    SkipPolicy,
    TooLate,
    TriggerFresh,
    WaitState,
    Watch,
    after_blocker,
    after_end,
)
from airflow_provider_census.core.wait import (
    Poll,
    PollFailed,
    PollState,
    Seen,
    WaitRules,
    after_look,
)
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.hooks.triggering import recent_runs_if_listed
from airflow_provider_census.links.census import CensusSyncRunLink
from airflow_provider_census.runs import (
    XCOM_SYNC_RUN,
    XCOM_SYNC_RUN_ID,
    XCOM_SYNC_RUN_URL,
    RunExpectations,
    RunSummary,
    run_url,
)
from airflow_provider_census.triggers.sync_run import CensusSyncRunTrigger
from airflow_provider_census.version_compat import (
    BaseOperator,
    BaseOperatorLink,
    default_deferrable,
)
from airflow_provider_census.worker_wait import WorkerWatch, wait_in_worker

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.version_compat import Context


def positive_seconds(value: float | timedelta, name: str) -> float:
    """Seconds from a number or a timedelta, checked when the DAG is parsed."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise CensusInputError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(seconds)


def positive_count(value: int, name: str) -> int:
    """A whole number from 1, checked when the DAG is parsed rather than when the trigger starts."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CensusInputError(f"{name} must be a whole number from 1, got {value!r}")
    return value


def execution_timeout_margin(execution_timeout: float) -> float:
    """How long before ``execution_timeout`` to cancel the run, so that Airflow's own kill comes after.

    Airflow kills a task at its ``execution_timeout`` without any chance to cancel: in the
    worker, and on Airflow 2 also in the triggerer (Airflow 2 times a deferred trigger out at
    that moment). Tasks therefore defer with ``timeout=None`` and the trigger cancels the run
    this margin before the kill.
    """
    return min(30.0, execution_timeout / 10)


def task_deadlines(
    context: Context, timeout: float | None, execution_timeout: timedelta | None
) -> dict[str, float | None]:
    """A task's deadlines in epoch seconds: stop waiting after ``timeout``; cancel before ``execution_timeout``."""
    now = time.time()
    cancel = None
    if execution_timeout is not None:
        start = context["ti"].start_date
        started = start.timestamp() if start is not None else now
        total = execution_timeout.total_seconds()
        cancel = started + total - execution_timeout_margin(total)
    return {"wait_deadline": now + timeout if timeout else None, "cancel_deadline": cancel}


class SyncRunTask(BaseOperator):
    """Private base of the operators and the sensor; see the module's docstring.

    A subclass says how often it polls (:attr:`poll_seconds`), whether killing the task cancels
    the run (:attr:`cancels_on_kill`) and whether it may trigger a fresh run after a skip
    (:meth:`trigger_fresh`). Its parameters are documented on the operator and the sensor. They
    sit in this ``__init__`` and Airflow fills in ``default_args`` for them here, as for any
    operator's own.
    """

    template_fields: Sequence[str] = ("census_conn_id",)
    operator_extra_links: tuple[BaseOperatorLink, ...] = (CensusSyncRunLink(),)
    ui_color = "#c9f0e4"
    triggers_after_skips = False
    """Whether the task triggers a fresh run after waiting out a skip (the operators), or follows the run it found."""

    def __init__(
        self,
        *,
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
        self.census_conn_id = census_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_poll_failures = positive_count(max_poll_failures, "max_poll_failures")
        self.unknown_state_timeout = positive_seconds(unknown_state_timeout, "unknown_state_timeout")
        self.expectations = RunExpectations(on_skipped, max_rejected_records, max_rejected_share)
        self.canceled_runs: set[int] = set()
        self.waiting: WaitState | None = None
        """The wait in progress (what ``on_kill`` cancels), None when the task waits for nothing."""

    @property
    def poll_seconds(self) -> float:
        raise NotImplementedError

    @property
    def cancels_on_kill(self) -> bool:
        raise NotImplementedError

    @property
    def skip_policy(self) -> SkipPolicy:
        return SkipPolicy(waits_out=self.expectations.waits_out_skips, triggers=self.triggers_after_skips)

    @cached_property
    def hook(self) -> CensusHook:
        return CensusHook(self.census_conn_id)

    def publish(self, context: Context, sync_id: int | None, sync_run_id: int) -> None:
        """Push the run's id and URL before waiting, so the link works while the task is deferred."""
        url = run_url(self.hook.base_url, sync_id, sync_run_id)
        context["ti"].xcom_push(key=XCOM_SYNC_RUN_ID, value=sync_run_id)
        context["ti"].xcom_push(key=XCOM_SYNC_RUN_URL, value=url)
        self.log.info("Census sync %s run %s: %s", "?" if sync_id is None else sync_id, sync_run_id, url)

    def summary_of(self, run: SyncRun) -> RunSummary:
        return RunSummary.of(run, self.hook.base_url)

    # -- the wait for one run: carried out here, decided in core.steps --

    def follow(self, context: Context, state: WaitState, ended: RunSummary | None = None) -> int:
        """Wait for the state's run and carry out what its end decides, until the task has its result."""
        while True:
            self.waiting = state
            summary = ended if ended is not None else self.wait_for_end(context, state)
            ended = None
            state, step = after_end(state, summary.outcome, self.skip_policy, time.time())
            if isinstance(step, FindBlocker):
                state, step = after_blocker(
                    state, self.blocker_of(summary, state.sync_id), self.skip_policy, time.time()
                )
            if isinstance(step, Done):
                self.waiting = None
                if step.gave_up:
                    self.log.warning(
                        "Census skipped %d fresh runs of sync %s in a row; giving up.", state.skips, state.sync_id
                    )
                return self.finish(context, summary)
            if isinstance(step, TooLate):
                raise too_late(state)
            if isinstance(step, Watch):
                self.log.info(
                    "Census skipped run %s; waiting for run %s, which it yielded to.", summary.sync_run_id, step.run_id
                )
                self.publish_followed(context, state)
            elif isinstance(step, TriggerFresh):
                state = self.trigger_fresh(context, state)

    def publish_followed(self, context: Context, state: WaitState) -> None:
        """A run the task now follows instead of the skipped one: the sensor's result, so its link points there."""

    def trigger_fresh(self, context: Context, state: WaitState) -> WaitState:
        """Trigger a fresh run of the state's sync after a skip, and wait for it; only the operators do."""
        raise NotImplementedError

    def blocker_of(self, skipped: RunSummary, sync_id: int | None) -> Blocker:
        """The run that made Census skip this one: the newest earlier run of the sync not skipped itself."""
        if sync_id is None:
            return Blocker(None, listed=False)
        runs = recent_runs_if_listed(self.hook, sync_id, "earlier_run", per_page=100)
        if runs is None:
            return Blocker(None, listed=False)
        for run in runs:
            if run.id < skipped.sync_run_id and run.outcome is not RunOutcome.SKIPPED:
                return Blocker(run.id, ended=run.outcome.is_terminal)
        return Blocker(None)

    def wait_for_end(self, context: Context, state: WaitState) -> RunSummary:
        """The run's summary once it ended: a first look, then the trigger (deferred) or the worker's wait."""
        polls, run = self.first_look(state)
        if run is not None and run.outcome.is_terminal:
            return self.summary_of(run)
        if self.deferrable:
            self.defer(trigger=self.trigger_for(state, polls), method_name="execute_complete", timeout=None)
        watch = WorkerWatch(
            state.run_id,
            self.rules_for(state),
            self.poll_hook,
            self.log,
            census_conn_id=self.census_conn_id,
            sync_id=state.sync_id,
            watch_only=state.own_run is None,
            state=polls,
        )
        (event,) = wait_in_worker([watch])
        return self.ended(event, state)

    def execute_complete(self, context: Context, event: object = None) -> Any:
        """Resume after the trigger's event, with the wait's state it carried back; a bad event fails clearly."""
        parsed = RunEvent.from_dict(event)
        state = self.restored_state(parsed)
        return self.follow(context, state, self.ended(parsed, state))

    def restored_state(self, event: RunEvent) -> WaitState:
        """The wait's state the trigger handed back; an error that says so when it cannot be read."""
        try:
            return WaitState.from_json(event.task_state)
        except ValueError as exc:
            raise CensusError(
                f"The task's record of its Census wait cannot be read ({exc}). Check run {event.sync_run_id} "
                "in Census, then clear the task."
            ) from None

    def first_look(self, state: WaitState) -> tuple[PollState, SyncRun | None]:
        """The wait's first poll, before any deferral: the run (None if it could not be read just now) and
        the poll state the wait goes on from, so that this look counts like every later one.

        The run exists by then, so a passing fault does not fail the task: it is one of the
        ``max_poll_failures`` failed polls in a row, and the next poll backs off (and honours
        ``Retry-After``) as every poll does. A failure that will not pass is raised as it is.
        """
        began = time.time()
        look, run = self.look_at(state)
        if isinstance(look, PollFailed):
            self.log.warning(
                "Could not read Census sync run %s yet (%s); waiting for it anyway", state.run_id, look.description
            )
        jitter = random.uniform(0, self.poll_seconds / 10)  # noqa: S311
        polls, decision = after_look(
            self.rules_for(state), PollState(), look, began=began, now=time.time(), jitter=jitter
        )
        return replace(polls, poll_at=decision.at if isinstance(decision, Poll) else None), run

    def look_at(self, state: WaitState) -> tuple[Seen | PollFailed, SyncRun | None]:
        """One read of the state's run (one try) as the rules see it; a failure that will not pass is raised."""
        try:
            run = self.poll_hook.get_sync_run(state.run_id, sync_id=state.sync_id)
        except CensusError as exc:
            failed = PollFailed.of(state.run_id, exc)
            if not failed.transient:
                raise
            return failed, None
        return Seen(run.id, run.status, run.outcome), run

    @cached_property
    def poll_hook(self) -> CensusHook:
        """The hook the wait polls through: one try per poll, as in the trigger (the wait's rules retry)."""
        return self.hook.with_retry_policy(ONE_TRY)

    def rules(self, wait_deadline: float | None, cancel_deadline: float | None) -> WaitRules:
        """The rules of this task's waits, with its deadlines."""
        return WaitRules(
            poll_interval=self.poll_seconds,
            max_poll_failures=self.max_poll_failures,
            unknown_state_timeout=self.unknown_state_timeout,
            wait_deadline=wait_deadline,
            cancel_deadline=cancel_deadline,
        )

    def rules_for(self, state: WaitState) -> WaitRules:
        """The rules of the wait for the state's run; a run the task only watches is never canceled."""
        rules = replace(self.rules(**state.deadlines), schedule=state.schedule)
        return rules if state.own_run is not None else rules.watching_only()

    def trigger_for(self, state: WaitState, polls: PollState) -> CensusSyncRunTrigger:
        """The trigger of the wait for the state's run, going on from the first look's ``polls``,
        and carrying the task's state to hand back with its event."""
        rules = self.rules_for(state)
        return CensusSyncRunTrigger(
            sync_run_id=state.run_id,
            sync_id=state.sync_id,
            task_state=state.to_json(),
            poll_state=polls.to_json(),
            poll_plan=None if rules.schedule is None else rules.schedule.to_json(),
            **self.waiting_kwargs(rules, cancel_on_kill=self.cancels_on_kill and state.own_run is not None),
        )

    def waiting_kwargs(self, rules: WaitRules, *, cancel_on_kill: bool) -> dict[str, Any]:
        """What every trigger of this task is told about waiting: connection, rules, whether a kill cancels."""
        return {
            "census_conn_id": self.census_conn_id,
            "poll_interval": rules.poll_interval,
            "max_poll_failures": rules.max_poll_failures,
            "unknown_state_timeout": rules.unknown_state_timeout,
            "cancel_on_kill": cancel_on_kill,
            "wait_deadline": rules.wait_deadline,
            "cancel_deadline": rules.cancel_deadline,
        }

    def ended(self, event: RunEvent, state: WaitState) -> RunSummary:
        """The summary of a run whose end the wait saw, or the exception its wait ended with."""
        if event.canceled_run:
            self.canceled_runs.add(event.sync_run_id)
        if event.status == "finished" and event.summary is not None:
            return event.summary
        self.waiting = None if event.canceled_run else self.waiting
        if event.status == "timeout":
            raise too_late(state) if state.watching else self.timeout_error(event)
        raise event.error_to_raise()

    def timeout_error(self, event: RunEvent) -> Exception:
        return CensusRunTimeoutError(event.described(), event.summary_json())

    def finish(self, context: Context, summary: RunSummary) -> int:
        """Publish the summary, log it, and return the run id (the run recorded in the outlets' events) or raise."""
        if summary.sync_run_id in self.canceled_runs:
            summary = summary.canceled_by_task()
        context["ti"].xcom_push(key=XCOM_SYNC_RUN, value=summary.to_json())
        self.log.info("%s", summary.describe())
        self.record_census_run(summary)
        self.expectations.check(summary)
        record_run_in_outlets(list(self.outlets), context, summary)
        return summary.sync_run_id

    def record_census_run(self, summary: RunSummary) -> None:
        """Keep a finished run for the task's lineage (the lineage mixin keeps it; nothing to keep otherwise)."""

    def on_kill(self) -> None:
        """Cancel the task's own run it is waiting for, unless disabled (never a run it only watches)."""
        run_id = None if self.waiting is None or not self.cancels_on_kill else self.waiting.own_run
        if run_id is not None:
            self.canceled_runs.add(run_id)
            self.hook.cancel_sync_run(run_id)
            self.log.info("Canceled Census sync run %s because the task was killed", run_id)


def too_late(state: WaitState) -> CensusRunTimeoutError:
    return CensusRunTimeoutError(
        f"The task's deadline passed while it waited for the run that made Census skip its own; "
        f"no fresh run of sync {state.sync_id} was triggered.",
        {},
    )
