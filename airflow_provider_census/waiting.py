"""Waiting for a sync run from a task: shared by the operator and the sensor.

A :class:`SyncRunWaiter` publishes the run (XCom and link), builds the trigger, waits in
the worker when the task is not deferrable, reads the trigger's event, follows a skipped run
to the earlier run it yielded to, and finishes through :func:`..outcomes.read_finished_run`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.errors import CensusError, CensusInputError
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.retry import is_transient, retry_after_of
from airflow_provider_census.api.settings import sync_run_app_url
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.links.census import SYNC_RUN_URL_KEY
from airflow_provider_census.outcomes import RunExpectations, describe_run, read_finished_run, summarize_run

if TYPE_CHECKING:
    import logging

    from airflow_provider_census.triggers.census import CensusSyncRunTrigger, RunEvent
    from airflow_provider_census.version_compat import Context

SYNC_RUN_ID_KEY = "sync_run_id"
SYNC_RUN_SUMMARY_KEY = "sync_run"


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

    def as_kwargs(self) -> dict[str, float | None]:
        return {"wait_deadline": self.wait, "cancel_deadline": self.cancel}


@dataclass(frozen=True)
class WaitSettings:
    """How the trigger polls; JSON primitives, as trigger kwargs must be."""

    census_conn_id: str
    poll_interval: float
    max_poll_failures: int
    unknown_state_timeout: float
    cancel_on_kill: bool


class SyncRunWaiter:
    """One task's wait for a run, whether it polls in the worker or defers."""

    def __init__(
        self, hook: CensusHook, expectations: RunExpectations, settings: WaitSettings, log: logging.Logger | Any
    ) -> None:
        self.hook = hook
        self.expectations = expectations
        self.settings = settings
        self.log = log

    def publish(self, context: Context, sync_id: int, sync_run_id: int) -> None:
        """Push the run's id and URL before waiting, so the link works while the task is deferred."""
        url = sync_run_app_url(self.hook.base_url, sync_id, sync_run_id)
        context["ti"].xcom_push(key=SYNC_RUN_ID_KEY, value=sync_run_id)
        context["ti"].xcom_push(key=SYNC_RUN_URL_KEY, value=url)
        self.log.info("Census sync %s run %s: %s", sync_id, sync_run_id, url)

    def summary(self, run: SyncRun) -> dict[str, Any]:
        return summarize_run(run, self.hook.base_url)

    def first_look(self, sync_run_id: int) -> dict[str, Any] | None:
        """The run's summary before waiting, or None if Census could not be read just now.

        The run exists by then, so a passing fault must not fail the task: the wait that
        follows tolerates ``max_poll_failures`` failed polls in a row.
        """
        try:
            return self.summary(self.hook.get_sync_run(sync_run_id))
        except CensusError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Could not read Census sync run %s yet (%s); waiting for it anyway", sync_run_id, exc)
            self.wait_out_rate_limit(exc)
            return None

    def wait_out_rate_limit(self, exc: CensusError) -> None:
        """Sleep the ``Retry-After`` of a rate limit that ended the first look, capped as between retries.

        The wait that follows polls at once (or within one poll interval when deferred), which
        would be sooner than Census asked for.
        """
        retry_after = retry_after_of(exc)
        if retry_after:
            time.sleep(min(retry_after, self.hook.retry_policy.max_retry_after))

    def trigger(self, sync_run_id: int, deadlines: Deadlines) -> CensusSyncRunTrigger:
        from airflow_provider_census.triggers.census import CensusSyncRunTrigger

        return CensusSyncRunTrigger(
            sync_run_id=sync_run_id,
            census_conn_id=self.settings.census_conn_id,
            poll_interval=self.settings.poll_interval,
            max_poll_failures=self.settings.max_poll_failures,
            unknown_state_timeout=self.settings.unknown_state_timeout,
            cancel_on_kill=self.settings.cancel_on_kill,
            **deadlines.as_kwargs(),
        )

    def wait_in_worker(self, trigger: CensusSyncRunTrigger) -> RunEvent:
        """The trigger's own loop, run here: the non-deferrable wait is the same code as the deferred one."""
        return asyncio.run(trigger.watch(self.log))

    @staticmethod
    def read_event(event: object) -> RunEvent:
        from airflow_provider_census.triggers.census import RunEvent

        return RunEvent.from_dict(event)

    def earlier_run_to_wait_for(self, summary: dict[str, Any]) -> SyncRun | None:
        """For a skipped run with ``on_skipped='wait'``: the earlier run it yielded to, if any."""
        if not self.expectations.waits_for_earlier_run or summary.get("outcome") != RunOutcome.SKIPPED.value:
            return None
        for run in self.hook.iter_sync_runs(summary["sync_id"], per_page=25):
            if run.id < summary["sync_run_id"] and run.outcome is not RunOutcome.SKIPPED:
                self.log.info(
                    "Census skipped run %s because run %s was going; waiting for run %s instead",
                    summary["sync_run_id"],
                    run.id,
                    run.id,
                )
                return run
        return None

    def finish(self, context: Context, summary: dict[str, Any]) -> int:
        """Publish the summary, log it, and return the run id or raise the run's error."""
        context["ti"].xcom_push(key=SYNC_RUN_SUMMARY_KEY, value=summary)
        self.log.info("%s", describe_run(summary))
        read_finished_run(summary, self.expectations)
        return int(summary["sync_run_id"])


class SyncRunWaitingMixin:
    """The settings and helpers that the operator and the sensor share, defined once.

    A task class sets them up with :meth:`setup_waiting` and says how often it polls and
    whether a kill cancels the run through ``wait_poll_interval`` and ``wait_cancels_on_kill``.
    """

    census_conn_id: str
    log: Any

    def setup_waiting(
        self,
        *,
        census_conn_id: str,
        deferrable: bool | None,
        on_skipped: str,
        max_rejected_records: int | None,
        max_rejected_share: float | None,
        max_poll_failures: int,
        unknown_state_timeout: float,
    ) -> None:
        from airflow_provider_census.version_compat import default_deferrable

        self.census_conn_id = census_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_poll_failures = positive_count(max_poll_failures, "max_poll_failures")
        self.unknown_state_timeout = positive_seconds(unknown_state_timeout, "unknown_state_timeout")
        self.expectations = RunExpectations(on_skipped, max_rejected_records, max_rejected_share)

    @property
    def wait_poll_interval(self) -> float:
        raise NotImplementedError

    @property
    def wait_cancels_on_kill(self) -> bool:
        raise NotImplementedError

    @cached_property
    def hook(self) -> CensusHook:
        return CensusHook(self.census_conn_id)

    @cached_property
    def waiter(self) -> SyncRunWaiter:
        settings = WaitSettings(
            self.census_conn_id,
            self.wait_poll_interval,
            self.max_poll_failures,
            self.unknown_state_timeout,
            self.wait_cancels_on_kill,
        )
        return SyncRunWaiter(self.hook, self.expectations, settings, self.log)
