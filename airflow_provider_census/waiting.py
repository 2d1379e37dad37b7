"""What the operator and the sensor share: their waiting parameters, publishing a run, and the finish.

:class:`SyncRunTask` is their private base class (not part of the provider's API). It holds
the parameters both take, publishes a run's id and link before any wait, builds the one
trigger both defer to (whose loop the operator also runs in the worker), reads the trigger's
event and turns a finished run into the task's result or its exception. A run id only goes
down from here: to the hook, to the trigger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from airflow_provider_census.api.errors import CensusError, CensusInputError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.retry import is_transient, retry_after_of
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.assets.census import record_run_in_outlets
from airflow_provider_census.core.events import RunEvent
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
from airflow_provider_census.version_compat import (
    AIRFLOW_V_3_3_PLUS,
    BaseOperator,
    BaseOperatorLink,
    default_deferrable,
)

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.triggers.census import CensusSyncRunTrigger
    from airflow_provider_census.version_compat import Context

E = TypeVar("E")
DEFAULT_TIMEOUT = timedelta(hours=24)


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


@dataclass(frozen=True)
class Deadlines:
    """Epoch seconds: stop waiting at ``wait``; cancel the run and stop at ``cancel``."""

    wait: float | None
    cancel: float | None

    @classmethod
    def for_task(cls, context: Context, timeout: float | None, execution_timeout: timedelta | None) -> Deadlines:
        now = time.time()
        cancel = None
        if execution_timeout is not None:
            start = context["ti"].start_date
            started = start.timestamp() if start is not None else now
            total = execution_timeout.total_seconds()
            cancel = started + total - execution_timeout_margin(total)
        return cls(wait=now + timeout if timeout else None, cancel=cancel)

    @classmethod
    def of_event(cls, event: RunEvent) -> Deadlines:
        """The deadlines a task deferred with, which travel with the trigger's event."""
        return cls(event.wait_deadline, event.cancel_deadline)

    @property
    def for_watching(self) -> Deadlines:
        """For a run the task only watches: stop at the earlier deadline, and never cancel."""
        return Deadlines(wait=min((d for d in (self.wait, self.cancel) if d is not None), default=None), cancel=None)

    @property
    def passed(self) -> bool:
        now = time.time()
        return any(deadline is not None and now >= deadline for deadline in (self.wait, self.cancel))


class SyncRunTask(BaseOperator):
    """Private base of the operator and the sensor; see the module's docstring.

    A subclass says how often it polls (:attr:`poll_seconds`) and whether killing the task
    cancels the run (:attr:`cancels_on_kill`). Its parameters are documented on the operator
    and the sensor. They sit in this ``__init__`` and Airflow fills in ``default_args`` for
    them here, as for any operator's own.
    """

    template_fields: Sequence[str] = ("census_conn_id",)
    operator_extra_links: tuple[BaseOperatorLink, ...] = (CensusSyncRunLink(),)
    ui_color = "#c9f0e4"

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

    @property
    def poll_seconds(self) -> float:
        raise NotImplementedError

    @property
    def cancels_on_kill(self) -> bool:
        raise NotImplementedError

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

    def first_look(self, sync_run_id: int, sync_id: int | None) -> RunSummary | None:
        """The run's summary before waiting, or None if Census could not be read just now.

        The run exists by then, so a passing fault must not fail the task: the wait that
        follows tolerates ``max_poll_failures`` failed polls in a row. A rate limit is waited
        out here (capped as between retries), since the wait polls at once.
        """
        try:
            return self.summary_of(self.hook.get_sync_run(sync_run_id, sync_id=sync_id))
        except CensusError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Could not read Census sync run %s yet (%s); waiting for it anyway", sync_run_id, exc)
            retry_after = retry_after_of(exc)
            if retry_after:
                time.sleep(min(retry_after, self.hook.retry_policy.max_retry_after))
            return None

    def make_trigger(self, sync_run_id: int, deadlines: Deadlines, sync_id: int | None) -> CensusSyncRunTrigger:
        from airflow_provider_census.triggers.census import CensusSyncRunTrigger

        return CensusSyncRunTrigger(sync_run_id=sync_run_id, sync_id=sync_id, **self.waiting_kwargs(deadlines))

    def waiting_kwargs(self, deadlines: Deadlines) -> dict[str, Any]:
        """What every trigger of this task is told about waiting: connection, interval, tolerance, deadlines."""
        return {
            "census_conn_id": self.census_conn_id,
            "poll_interval": self.poll_seconds,
            "max_poll_failures": self.max_poll_failures,
            "unknown_state_timeout": self.unknown_state_timeout,
            "cancel_on_kill": self.cancels_on_kill,
            "wait_deadline": deadlines.wait,
            "cancel_deadline": deadlines.cancel,
        }

    @staticmethod
    def wait_in_worker(watch: Coroutine[Any, Any, E]) -> E:
        """A trigger's own loop (its ``watch``), run here: the non-deferrable wait is the deferred one's code."""
        return asyncio.run(watch)

    @staticmethod
    def read_event(event: object) -> RunEvent:
        return RunEvent.from_dict(event)

    def raise_for_unfinished(self, event: RunEvent) -> NoReturn:
        """A wait that ended without the run's end: a deadline (:meth:`timeout_error`) or an error of its own class."""
        if event.status == "timeout":
            raise self.timeout_error(event)
        raise event.error_to_raise()

    def timeout_error(self, event: RunEvent) -> Exception:
        raise NotImplementedError

    def finish(self, context: Context, summary: RunSummary) -> int:
        """Publish the summary, log it, and return the run id (the run recorded in the outlets' events) or raise."""
        if summary.sync_run_id in self.canceled_runs:
            summary = summary.canceled_by_task()
        context["ti"].xcom_push(key=XCOM_SYNC_RUN, value=summary.to_json())
        self.log.info("%s", summary.describe())
        self.expectations.check(summary)
        record_run_in_outlets(list(self.outlets), context, summary)
        return summary.sync_run_id

    def earlier_run(self, summary: RunSummary, sync_id: int) -> SyncRun | None:
        """The run that made Census skip this one: the newest earlier run of the sync not skipped itself.

        None when there is none among the sync's 100 newest runs, or its runs cannot be listed.
        """
        for run in recent_runs_if_listed(self.hook, sync_id, "earlier_run", per_page=100) or ():
            if run.id < summary.sync_run_id and run.outcome is not RunOutcome.SKIPPED:
                return run
        return None


class SyncTriggeringTask(SyncRunTask):
    """Private base of the operators that trigger syncs: their parameters, and what a retry finds.

    The parameters are documented on :class:`~airflow_provider_census.operators.census.CensusTriggerSyncOperator`.
    """

    def __init__(
        self,
        *,
        force_full_sync: bool = False,
        wait_for_completion: bool = True,
        poll_interval: float = 10.0,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        cancel_on_kill: bool = True,
        reattach_on_retry: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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

    def deadlines(self, context: Context) -> Deadlines:
        return Deadlines.for_task(context, self.timeout, self.execution_timeout)

    def earlier_try_run(self, context: Context, sync_id: int, kept: object) -> int | RunSummary | None:
        """On a retry, what an earlier try left of a sync: a run to wait for (its id), a result (its summary), or None.

        ``kept`` is the run id that try kept in the ``task_state_store`` (Airflow 3.3+), if any.
        """
        if not self.reattach_on_retry or context["ti"].try_number <= 1:
            return None
        if task_state_store(context) is not None:
            return self._run_kept_by_earlier_try(context, kept, sync_id)
        newest = recent_runs_if_listed(self.hook, sync_id, "reattach")
        latest = newest[0] if newest else None
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
        run = self.hook.get_sync_run(census_id(kept, "the sync_run_id kept by an earlier try"), sync_id=sync_id)
        try_number = context["ti"].try_number
        if run.sync_id != sync_id:
            return None
        if run.outcome is RunOutcome.IN_PROGRESS:
            self.log.warning("Try %s: run %s of an earlier try is still going; waiting for it.", try_number, run.id)
            return run.id
        summary = self.summary_of(run)
        if run.outcome is RunOutcome.SUCCEEDED and self.expectations.accept(summary) and run.canceled is not None:
            self.log.warning("Try %s: run %s of an earlier try completed; it is the result.", try_number, run.id)
            return summary
        self.log.warning(
            "Try %s: run %s of an earlier try ended %s%s; triggering afresh.",
            try_number,
            run.id,
            run.status,
            _why_not_the_result(run, summary, self.expectations),
        )
        return None


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


def task_state_store(context: Context) -> Any:
    """The task's ``task_state_store`` on Airflow 3.3 and later, else None (older Airflow has none)."""
    return context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None
