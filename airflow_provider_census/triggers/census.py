"""The wait loop of the provider and the triggers that run it, for one run and for many.

``CensusSyncRunTrigger`` (the operator's and the sensor's) polls one sync run until it ends
and yields exactly one event (schema below). ``CensusSyncRunsTrigger`` (the many-syncs
operator's) runs the same loop once per run in one trigger, so 100 syncs are one deferral and
one pooled client, not 100. Each trigger's ``watch`` also serves the non-deferrable wait, so
deadlines, cancellation and failure tolerance are written once, in :class:`_RunWatch`.

Event schema, version 1 (JSON primitives only)::

    {"schema_version": 1, "status": "finished" | "timeout" | "error" | "stopped",
     "sync_run_id": int, "summary": {...run summary...} | None, "message": str,
     "canceled_run": bool, "wait_deadline": float | None, "cancel_deadline": float | None}

``stopped`` ends the wait for one run of many when another failed and ``fail_fast`` is set.
The many-runs event is ``{"schema_version": 1, "runs": [one event per run, as above]}``.

The deadlines travel with the event so that a task that waits again (for the earlier run
of a skipped one) keeps the deadlines it started with.

``CensusTrigger``, the trigger of provider 2.1, is kept under its class path so that the
trigger rows 2.1 wrote before an upgrade run on in this loop. Its event wears 2.1's shape
(``sync_run_id``, ``status`` ``completed`` or ``failed``, ``error_message``) with this one
under ``census_event``, so code written against 2.1's event reads it too::

    {"sync_run_id": int, "status": "completed" | "failed", "error_message": str | None,
     "census_event": {...the event above...}}
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_census.api.errors import CensusApiError, CensusError, is_error_name, rebuild_error
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.models import SyncRun, optional_int
from airflow_provider_census.api.retry import ONE_TRY, RetryPolicy, is_transient, retry_after_of
from airflow_provider_census.api.states import RunOutcome, is_retired_state
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.runs import RunExpectations, RunSummary, describe
from airflow_provider_census.version_compat import atask_instance_state

EVENT_SCHEMA_VERSION = 1
EVENT_STATUSES = ("finished", "timeout", "error", "stopped")
PROVIDER_21_SUCCESS = "completed"
PROVIDER_21_FAILURE = "failed"
"""The two statuses 2.1's trigger yielded; 2.1's sensor took the first as success and failed on any other."""
NESTED_EVENT_KEY = "census_event"
"""Where the 2.1-shaped event of :class:`CensusTrigger` carries this provider's event."""
PROGRESS_HEARTBEAT_SECONDS = 300.0
MAX_BACKOFF_INTERVALS = 8.0
"""After failed polls in a row, the wait before the next one grows to at most this many intervals."""
MAX_RETRY_AFTER_SECONDS = 300.0
"""A ``Retry-After`` longer than this is not waited for in full: the poll comes after this long."""
CANCEL_RETRIES = RetryPolicy(max_attempts=4, budget_seconds=5.0, initial_wait=0.25, max_wait=2.0, max_retry_after=2.0)
"""A cancel is the trigger's last word and safe to repeat: a passing fault must not leave the run going.
The waits between tries add up to a few seconds, well inside the triggerer's 30 s ``on_kill`` timeout."""


@dataclass(frozen=True)
class RunEvent:
    """What the trigger reports, and what ``execute_complete`` checks before trusting it.

    ``error`` names the provider's exception class that ended a wait with status ``error``
    (``CensusAuthenticationError`` for a 401, ``CensusPollingError`` when polls kept failing),
    so a deferred task raises the class it would have raised in the worker.
    """

    status: str
    sync_run_id: int
    summary: RunSummary | None
    message: str
    canceled_run: bool = False
    wait_deadline: float | None = None
    cancel_deadline: float | None = None
    error: str | None = None
    http_status: int | None = None
    schema_version: int = EVENT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["summary"] = None if self.summary is None else self.summary.to_json()
        return data

    @classmethod
    def from_dict(cls, event: object) -> RunEvent:
        """The event, or an error that says it cannot be read (so the task fails loudly, never succeeds)."""
        try:
            return cls._read(event)
        except (KeyError, TypeError, ValueError) as exc:
            raise CensusError(
                f"The Census trigger's event cannot be read ({exc}): {event!r:.300}. "
                "The run's outcome is unknown; check it in Census, then clear the task to wait again."
            ) from None

    @classmethod
    def _read(cls, event: object) -> RunEvent:
        if isinstance(event, Mapping) and NESTED_EVENT_KEY in event:
            event = event[NESTED_EVENT_KEY]
        if not isinstance(event, Mapping):
            raise TypeError(f"expected a mapping, got {type(event).__name__}")
        if event.get("schema_version") != EVENT_SCHEMA_VERSION:
            raise ValueError(f"schema_version {event.get('schema_version')!r}, expected {EVENT_SCHEMA_VERSION}")
        if event.get("status") not in EVENT_STATUSES:
            raise ValueError(f"unknown status {event.get('status')!r}")
        run_id = event.get("sync_run_id")
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise ValueError("no integer sync_run_id")
        raw_summary = event.get("summary")
        if raw_summary is None and event["status"] == "finished":
            raise ValueError("a finished run without its summary")
        error = event.get("error")
        if error is not None and not is_error_name(error):
            raise ValueError(f"unknown error {error!r}")
        return cls(
            status=event["status"],
            sync_run_id=run_id,
            summary=None if raw_summary is None else RunSummary.from_json(raw_summary),
            message=str(event.get("message", "")),
            canceled_run=bool(event.get("canceled_run")),
            wait_deadline=_optional_float(event.get("wait_deadline")),
            cancel_deadline=_optional_float(event.get("cancel_deadline")),
            error=error,
            http_status=optional_int(event.get("http_status")),
        )

    def described(self) -> str:
        """The event's message with the run's paragraph."""
        return f"{self.message} {describe(self.summary, self.sync_run_id)}"

    def error_to_raise(self) -> CensusError:
        """The exception a wait that ended with ``error`` stands for, of the class the worker path raises."""
        return rebuild_error(self.error or "CensusPollingError", self.message, self.http_status, self.summary_json())

    def summary_json(self) -> dict[str, Any]:
        return {} if self.summary is None else self.summary.to_json()

    def in_provider_21_shape(self) -> dict[str, Any]:
        """This event inside the shape 2.1's trigger yielded, for readers written against 2.1.

        Only a run that succeeded says ``completed``; every other end (failed, canceled,
        skipped, an unknown state, a deadline, an error) says ``failed``, the one other value
        2.1 yielded, so a reader that checks for either never takes it as success.
        ``error_message`` holds what 2.1 put there (Census's error message or detail) when
        Census gave one, else this event's account of the end.
        """
        summary = self.summary
        succeeded = self.status == "finished" and summary is not None and summary.outcome is RunOutcome.SUCCEEDED
        census_error = None if summary is None else summary.error_message or summary.error_detail
        return {
            "sync_run_id": self.sync_run_id,
            "status": PROVIDER_21_SUCCESS if succeeded else PROVIDER_21_FAILURE,
            "error_message": census_error if succeeded else census_error or self.described(),
            NESTED_EVENT_KEY: self.to_dict(),
        }


def _optional_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class RunsEvent:
    """What the many-runs trigger reports: one :class:`RunEvent` per run, in the order it was given them.

    ``task_state`` is what the task handed the trigger to get back with the event, and the
    deadlines are the trigger's: both travel in the event rather than in the deferral's kwargs,
    which Airflow 3's ``dag.test()`` drops when a trigger fires.
    """

    runs: tuple[RunEvent, ...]
    task_state: dict[str, Any] | None = None
    wait_deadline: float | None = None
    cancel_deadline: float | None = None
    schema_version: int = EVENT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "runs": [event.to_dict() for event in self.runs],
            "task_state": self.task_state,
            "wait_deadline": self.wait_deadline,
            "cancel_deadline": self.cancel_deadline,
        }

    @classmethod
    def from_dict(cls, event: object) -> RunsEvent:
        """The events, or an error that says they cannot be read (so the task fails loudly, never succeeds)."""
        try:
            if not isinstance(event, Mapping) or event.get("schema_version") != EVENT_SCHEMA_VERSION:
                raise ValueError("not a many-runs event of schema version 1")
            runs, task_state = event.get("runs"), event.get("task_state")
            if not isinstance(runs, list):
                raise TypeError("no list of runs")
            if task_state is not None and not isinstance(task_state, dict):
                raise TypeError("task_state is not a mapping")
            return cls(
                tuple(RunEvent._read(run) for run in runs),
                task_state,
                _optional_float(event.get("wait_deadline")),
                _optional_float(event.get("cancel_deadline")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CensusError(
                f"The Census trigger's event cannot be read ({exc}): {event!r:.300}. "
                "The runs' outcomes are unknown; check them in Census, then clear the task to wait again."
            ) from None


class _WaitingTrigger(BaseTrigger):
    """What both triggers take and share: how to poll, when to stop, and how to cancel a run.

    :param census_conn_id: the Airflow connection to Census.
    :param poll_interval: seconds between polls of each run.
    :param wait_deadline: epoch seconds after which to stop waiting (the runs go on).
    :param cancel_deadline: epoch seconds after which to cancel the runs and stop.
    :param max_poll_failures: consecutive failed polls of a run (timeouts, 5xx, 429, unreadable
        answers) tolerated before giving up on it with an ``error`` event.
    :param unknown_state_timeout: seconds a run may stay in a state this provider does not
        know before its wait ends (it is then reported, never taken as success).
    :param cancel_on_kill: cancel the runs when a user kills or clears the deferred task
        (Airflow 3.3 and later call ``on_kill`` on triggers).
    :param started_at: epoch seconds when the wait began, for progress messages.
    """

    def __init__(
        self,
        *,
        census_conn_id: str = CensusHook.default_conn_name,
        poll_interval: float = 10.0,
        wait_deadline: float | None = None,
        cancel_deadline: float | None = None,
        max_poll_failures: int = 5,
        unknown_state_timeout: float = 600.0,
        cancel_on_kill: bool = True,
        started_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.census_conn_id = census_conn_id
        self.poll_interval = float(poll_interval)
        self.wait_deadline = wait_deadline
        self.cancel_deadline = cancel_deadline
        self.max_poll_failures = int(max_poll_failures)
        self.unknown_state_timeout = float(unknown_state_timeout)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.started_at = time.time() if started_at is None else float(started_at)

    def _waiting_kwargs(self) -> dict[str, Any]:
        return {
            "census_conn_id": self.census_conn_id,
            "poll_interval": self.poll_interval,
            "wait_deadline": self.wait_deadline,
            "cancel_deadline": self.cancel_deadline,
            "max_poll_failures": self.max_poll_failures,
            "unknown_state_timeout": self.unknown_state_timeout,
            "cancel_on_kill": self.cancel_on_kill,
            "started_at": self.started_at,
        }

    def _class_path(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    async def handed_over(self) -> bool:
        """Whether the task is still deferred, so that ``on_kill`` means this trigger moved, not a kill.

        Airflow 3.3's triggerer calls ``on_kill`` on each trigger it stops running because the
        database no longer gives it to this triggerer, as it does for a user's kill: a
        triggerer that missed heartbeats for a while sees its triggers taken over by another,
        and would cancel runs that the other triggerer is now waiting for. After a kill or a
        clear, the task is no longer deferred. When its state cannot be read, a kill is assumed.
        """
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return False
        try:
            state = await atask_instance_state(ti)
        except Exception as exc:  # the promise on a kill is to cancel: keep it when in doubt
            self.log.warning("Could not read the task's state (%s); canceling its Census runs as for a kill", exc)
            return False
        if state != "deferred":
            return False
        self.log.info("The task is still deferred: another triggerer took this trigger over; its runs go on")
        return True

    async def cancel_run(self, sync_run_id: int) -> None:
        """Cancel a run, retrying passing faults (unlike polls, a cancel has no next interval)."""
        hook = CensusHook(self.census_conn_id, retry_policy=CANCEL_RETRIES)
        try:
            await hook.acancel_sync_run(sync_run_id)
        finally:
            await hook.aclose()

    def _make_hook(self) -> CensusHook:
        return CensusHook(self.census_conn_id, retry_policy=ONE_TRY)

    def _first_poll_delay(self) -> float:
        """Up to one interval at random, so waits that start together do not poll together."""
        return random.uniform(0, self.poll_interval)  # noqa: S311


class CensusSyncRunTrigger(_WaitingTrigger):
    """Wait for a Census sync run to end, without holding a worker slot.

    :param sync_run_id: the run to wait for.
    :param sync_id: the sync it belongs to, when known: a V2 Census that does not serve
        ``GET /sync_runs/{id}`` is then asked for the sync's run list before ``test_status``.

    The other parameters (connection, interval, deadlines, tolerance, cancel on kill) are
    those of every Census wait, documented on the base class :class:`_WaitingTrigger`.
    """

    def __init__(self, sync_run_id: int, sync_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_run_id = int(sync_run_id)
        self.sync_id = None if sync_id is None else int(sync_id)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._class_path(), {
            "sync_run_id": self.sync_run_id,
            "sync_id": self.sync_id,
            **self._waiting_kwargs(),
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self.watch(self.log, first_poll_delay=self._first_poll_delay())
        yield TriggerEvent(event.to_dict())  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """Cancel the run when a user kills or clears the deferred task (Airflow 3.3+)."""
        if not self.cancel_on_kill or await self.handed_over():
            return
        await self.cancel_run(self.sync_run_id)
        self.log.info("Canceled Census sync run %s because its task was killed", self.sync_run_id)

    async def watch(self, log: logging.Logger | Any, first_poll_delay: float = 0.0) -> RunEvent:
        """Poll the run until it ends or a deadline passes; the one wait loop of the provider."""
        hook = self._make_hook()
        try:
            return await _RunWatch(self, self.sync_run_id, hook, log, sync_id=self.sync_id).until_done(first_poll_delay)
        finally:
            await hook.aclose()


class CensusSyncRunsTrigger(_WaitingTrigger):
    """Wait for many Census sync runs in one trigger: one wait loop per run, one pooled client.

    Each run is waited for exactly as :class:`CensusSyncRunTrigger` waits for one (same
    deadlines, tolerance, unknown-state limit), and the trigger yields one event once every
    wait has ended. With ``fail_fast``, the first run that does not succeed (by the task's own
    checks, passed in as ``on_skipped`` and the rejected-records limits) ends the others: the
    task's own runs still going are canceled, runs it only watches are left alone. The waiting
    parameters are those of :class:`CensusSyncRunTrigger`.

    :param sync_run_ids: the task's own runs, canceled at ``cancel_deadline``, on kill and by ``fail_fast``.
    :param watched_run_ids: runs the task waits for but did not start (the earlier run that
        made Census skip one of the task's): never canceled, and their end fails nothing.
    :param sync_ids: the sync of each run, by run id as text (see ``CensusSyncRunTrigger``'s ``sync_id``).
    :param fail_fast: stop every other wait at the first run that does not succeed.
    :param on_skipped: the task's skipped policy: a skip counts as a failure unless it is
        ``succeed`` or ``wait`` (the task then handles the skip after the event).
    :param max_rejected_records: the task's limit on rejected records, for ``fail_fast``.
    :param max_rejected_share: the task's limit on the share of rejected records, for ``fail_fast``.
    :param task_state: JSON the task gets back in the event, untouched (where its syncs stand).
    """

    def __init__(
        self,
        sync_run_ids: list[int],
        *,
        watched_run_ids: list[int] | None = None,
        sync_ids: dict[str, int] | None = None,
        fail_fast: bool = False,
        on_skipped: str = "fail",
        max_rejected_records: int | None = None,
        max_rejected_share: float | None = None,
        task_state: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.task_state = task_state
        self.sync_run_ids = [int(run_id) for run_id in sync_run_ids]
        self.watched_run_ids = [int(run_id) for run_id in watched_run_ids or ()]
        self.sync_ids = {str(run_id): int(sync_id) for run_id, sync_id in (sync_ids or {}).items()}
        self.fail_fast = bool(fail_fast)
        self.expectations = RunExpectations(on_skipped, max_rejected_records, max_rejected_share)
        self._open_runs: set[int] = set(self.sync_run_ids)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        expectations = self.expectations
        return self._class_path(), {
            "sync_run_ids": self.sync_run_ids,
            "watched_run_ids": self.watched_run_ids,
            "sync_ids": self.sync_ids,
            "fail_fast": self.fail_fast,
            "on_skipped": expectations.on_skipped,
            "max_rejected_records": expectations.max_rejected_records,
            "max_rejected_share": expectations.max_rejected_share,
            "task_state": self.task_state,
            **self._waiting_kwargs(),
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self.watch(self.log, spread_first_polls=True)
        yield TriggerEvent(event.to_dict())  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """Cancel the task's own runs still going when a user kills or clears the task (Airflow 3.3+)."""
        if not self.cancel_on_kill or not self._open_runs or await self.handed_over():
            return
        open_runs = sorted(self._open_runs)
        await asyncio.gather(*(self.cancel_run(run_id) for run_id in open_runs), return_exceptions=True)
        self.log.info("Canceled Census sync runs %s because their task was killed", open_runs)

    async def watch(self, log: logging.Logger | Any, spread_first_polls: bool = False) -> RunsEvent:
        """One :class:`_RunWatch` per run, side by side; the event once all have ended (or fail_fast stopped them)."""
        watched = set(self.watched_run_ids)
        # A hook per run, as one trigger per run would have: each binds its poll's request once
        # (the hook keeps the last one), and all of them borrow the loop's one pooled client.
        watches = {
            run_id: _RunWatch(
                self,
                run_id,
                self._make_hook(),
                log,
                watch_only=run_id in watched,
                sync_id=self.sync_ids.get(str(run_id)),
            )
            for run_id in [*self.sync_run_ids, *self.watched_run_ids]
        }
        tasks = {
            asyncio.create_task(watch.until_done(self._first_poll_delay() if spread_first_polls else 0.0)): run_id
            for run_id, watch in watches.items()
        }
        events: dict[int, RunEvent] = {}
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                failed = self._record_ended(done, tasks, events, watched)
                if failed is not None and self.fail_fast and pending:
                    await self._stop_the_rest(pending, tasks, watches, events, failed)
                    pending = set()
        finally:
            for task in tasks:
                task.cancel()
            for watch in watches.values():
                await watch.hook.aclose()
        runs = tuple(events[run_id] for run_id in watches)
        return RunsEvent(runs, self.task_state, self.wait_deadline, self.cancel_deadline)

    def _record_ended(
        self,
        done: set[asyncio.Task[RunEvent]],
        tasks: dict[asyncio.Task[RunEvent], int],
        events: dict[int, RunEvent],
        watched: set[int],
    ) -> RunEvent | None:
        """Keep the ended waits' events; return the first that counts as a failure for ``fail_fast``."""
        failed = None
        for task in done:
            event = task.result()
            events[tasks[task]] = event
            self._open_runs.discard(event.sync_run_id)
            if failed is None and self._is_failure(event, watched_only=event.sync_run_id in watched):
                failed = event
        return failed

    def _is_failure(self, event: RunEvent, *, watched_only: bool) -> bool:
        if event.status != "finished" or event.summary is None:
            return True
        if watched_only:
            return False
        summary = event.summary
        skip_left_to_task = summary.outcome is RunOutcome.SKIPPED and self.expectations.waits_out_skips
        return not skip_left_to_task and not self.expectations.accept(summary)

    async def _stop_the_rest(
        self,
        pending: set[asyncio.Task[RunEvent]],
        tasks: dict[asyncio.Task[RunEvent], int],
        watches: dict[int, _RunWatch],
        events: dict[int, RunEvent],
        failed: RunEvent,
    ) -> None:
        """``fail_fast``: end the other waits, canceling the task's own runs among them."""
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        reason = f"fail_fast: Census sync run {failed.sync_run_id} did not succeed"
        stopped = [watches[tasks[task]] for task in pending]
        for event in await asyncio.gather(*(watch.stop(reason) for watch in stopped)):
            events[event.sync_run_id] = event
            self._open_runs.discard(event.sync_run_id)


class CensusTrigger(CensusSyncRunTrigger):
    """Provider 2.1's trigger, so that the trigger rows it wrote still run after the upgrade.

    A row holds this class path and exactly these three kwargs; ``sync_run_id`` is often text
    (2.1's sensor rendered it from a template). The wait is this provider's loop and the event
    is this provider's inside 2.1's shape (the module's docstring), which every sensor's
    ``execute_complete`` reads, and so does code written against 2.1. Only 2.1's sensor
    deferred to this trigger, and a sensor only watches a run, so killing the task never
    cancels the run (as in 2.1). As in 2.1 it has no deadline of its own; a trigger timeout
    Airflow stored with the row still applies. Use :class:`CensusSyncRunTrigger` in new code.

    :param sync_run_id: the run to wait for, an integer or a string of digits.
    :param census_conn_id: the Airflow connection to Census.
    :param poll_interval: seconds between polls.
    """

    def __init__(
        self,
        sync_run_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__(
            census_id(sync_run_id, "sync_run_id"),
            census_conn_id=census_conn_id,
            poll_interval=poll_interval,
            cancel_on_kill=False,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """2.1's class path and kwargs, nothing more, so the row stays readable by either version."""
        return (
            "airflow_provider_census.triggers.census.CensusTrigger",
            {
                "sync_run_id": self.sync_run_id,
                "census_conn_id": self.census_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info(
            "Resuming a wait of airflow-provider-census 2.1 for Census sync run %s with this provider's trigger",
            self.sync_run_id,
        )
        event = await self.watch(self.log, first_poll_delay=self._first_poll_delay())
        yield TriggerEvent(event.in_provider_21_shape())  # type: ignore[no-untyped-call]


POLL_SLOT_SECONDS = 0.25
"""Polls wake on a shared grid of quarter seconds: the triggerer's event loop then wakes once for
every poll due in that quarter, not once per trigger (half the CPU per poll with 1,000 triggers).
Short poll intervals get a finer grid, so that rounding up never adds more than 2.5% to a wait."""
SLOTS_PER_INTERVAL = 40


async def _sleep_to_slot(delay: float, poll_interval: float) -> None:
    """Sleep ``delay`` seconds, rounded up to the next slot boundary of the loop's clock."""
    slot = min(POLL_SLOT_SECONDS, poll_interval / SLOTS_PER_INTERVAL)
    loop = asyncio.get_running_loop()
    wake_at = math.ceil((loop.time() + delay) / slot) * slot
    woken: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(wake_at, _wake, woken)
    try:
        await woken
    finally:
        handle.cancel()


def _wake(woken: asyncio.Future[None]) -> None:
    """Fire a slot, unless its sleeper was cancelled as it came due (a cancelled future takes no result)."""
    if not woken.done():
        woken.set_result(None)


class _RunWatch:
    """The state of one run's wait: failures in a row, the last run seen, when an unknown state began.

    A run the task only watches (``watch_only``) is never canceled: at the cancel deadline
    its wait simply ends, as at the wait deadline.
    """

    def __init__(
        self,
        trigger: _WaitingTrigger,
        sync_run_id: int,
        hook: CensusHook,
        log: logging.Logger | Any,
        *,
        watch_only: bool = False,
        sync_id: int | None = None,
    ) -> None:
        self.trigger = trigger
        self.sync_run_id = sync_run_id
        self.sync_id = sync_id
        self.hook = hook
        self.log = log
        self.failures = 0
        self.last_run: SyncRun | None = None
        deadlines = [d for d in (trigger.wait_deadline, trigger.cancel_deadline) if d]
        self.wait_deadline = min(deadlines, default=None) if watch_only else trigger.wait_deadline
        self.cancel_deadline = None if watch_only else trigger.cancel_deadline
        self.watch_only = watch_only
        self.next_deadline = min(deadlines, default=None)
        self.unknown_since: float | None = None
        self.last_progress: tuple[Any, ...] | None = None
        self.last_progress_at = 0.0

    async def until_done(self, first_poll_delay: float) -> RunEvent:
        delay = first_poll_delay
        while True:
            deadline_event = await self._sleep_until_next_poll(delay)
            if deadline_event is not None:
                return deadline_event
            event, next_poll_at = await self._poll_once()
            if event is not None:
                return event
            delay = next_poll_at - time.monotonic()

    async def _sleep_until_next_poll(self, delay: float) -> RunEvent | None:
        """Sleep ``delay`` seconds, or less if a deadline comes first; then act on that deadline."""
        if self.next_deadline is not None:
            delay = min(delay, max(0.0, self.next_deadline - time.time()))
        if delay > 0:
            await _sleep_to_slot(delay, self.trigger.poll_interval)
        now = time.time()
        cancel_due = self.cancel_deadline is not None and now >= self.cancel_deadline
        wait_due = self.wait_deadline is not None and now >= self.wait_deadline
        if not (cancel_due or wait_due):
            return None
        ended = await self._last_look()
        if ended is not None:
            return ended
        if cancel_due:
            return await self._cancel_at_deadline()
        return self._event(
            "timeout",
            f"Census sync run {self.sync_run_id} did not finish in time; it is still going in Census.",
        )

    async def _last_look(self) -> RunEvent | None:
        """At a deadline, the run's end if it ended since the last poll: it is then neither going nor to cancel."""
        event, _ = await self._poll_once()
        return event if event is not None and event.status == "finished" else None

    async def _poll_once(self) -> tuple[RunEvent | None, float]:
        """One GET of the run: an event if the wait is over, and if not, when to poll next (monotonic).

        The interval counts from when this poll began, so polls keep their rate however long
        Census takes to answer. After a failed poll the next one waits longer (see
        :meth:`_after_failure`).
        """
        began = time.monotonic()
        try:
            run = await self.hook.aget_sync_run(self.sync_run_id, sync_id=self.sync_id)
        except CensusError as exc:
            return self._after_failure(exc, began)
        self.failures = 0
        self.last_run = run
        self._log_progress(run)
        if run.outcome.is_terminal:
            return self._event("finished", f"Census sync run {run.id} ended: {run.status}"), 0
        if run.outcome is RunOutcome.UNKNOWN and self._unknown_for_too_long():
            return self._event(
                "finished",
                f"Census sync run {run.id} stayed in the unknown state {run.status!r} for "
                f"{self.trigger.unknown_state_timeout:.0f} s",
            ), 0
        if run.outcome is RunOutcome.IN_PROGRESS:
            self.unknown_since = None
        return None, began + self.trigger.poll_interval

    def _after_failure(self, exc: CensusError, began: float) -> tuple[RunEvent | None, float]:
        """End the wait on a failure that will not pass (with its own class), or poll again later.

        Failed polls in a row back off (the interval doubled per failure, up to
        :data:`MAX_BACKOFF_INTERVALS` intervals, plus up to a tenth of it at random, so waits
        that failed together do not retry together), and never come sooner than Census's
        ``Retry-After``, capped at :data:`MAX_RETRY_AFTER_SECONDS`.
        """
        run_id = self.sync_run_id
        if not is_transient(exc):
            return self._error(f"Polling Census sync run {run_id} failed: {exc}", exc), 0
        self.failures += 1
        self.log.warning(
            "Polling Census sync run %s failed (%d of %d in a row): %s",
            run_id,
            self.failures,
            self.trigger.max_poll_failures,
            exc,
        )
        if self.failures >= self.trigger.max_poll_failures:
            message = f"Polling Census sync run {run_id} failed {self.failures} times in a row; last error: {exc}"
            return self._error(message, None), 0
        interval = self.trigger.poll_interval
        backoff = interval * min(2.0 ** (self.failures - 1), MAX_BACKOFF_INTERVALS)
        backoff += random.uniform(0, interval / 10)  # noqa: S311
        retry_after = min(retry_after_of(exc) or 0.0, MAX_RETRY_AFTER_SECONDS)
        return None, max(began + backoff, time.monotonic() + retry_after)

    def _unknown_for_too_long(self) -> bool:
        now = time.time()
        if self.unknown_since is None:
            self.unknown_since = now
            self.log.warning(
                "Census reports the unknown state %r for sync run %s; waiting up to %.0f s for a known one",
                self.last_run.status if self.last_run else None,
                self.sync_run_id,
                self.trigger.unknown_state_timeout,
            )
        return now - self.unknown_since >= self.trigger.unknown_state_timeout

    async def stop(self, reason: str) -> RunEvent:
        """End this wait early because of another run (``fail_fast``): cancel the run unless only watched."""
        run_id = self.sync_run_id
        if self.watch_only:
            return self._event("stopped", f"{reason}; stopped waiting for Census sync run {run_id} (left going).")
        try:
            await self.trigger.cancel_run(run_id)
        except CensusError as exc:
            return self._event("stopped", f"{reason}; canceling Census sync run {run_id} failed: {exc}")
        return self._event("stopped", f"{reason}; Census sync run {run_id} was canceled.", canceled=True)

    async def _cancel_at_deadline(self) -> RunEvent:
        run_id = self.sync_run_id
        try:
            await self.trigger.cancel_run(run_id)
        except CensusError as exc:
            return self._event(
                "timeout", f"The task's execution_timeout passed; canceling Census sync run {run_id} failed: {exc}"
            )
        return self._event(
            "timeout", f"The task's execution_timeout passed; Census sync run {run_id} was canceled.", canceled=True
        )

    def _event(self, status: str, message: str, canceled: bool = False) -> RunEvent:
        return RunEvent(
            status,
            self.sync_run_id,
            None if self.last_run is None else RunSummary.of(self.last_run, self.hook.base_url),
            message,
            canceled_run=canceled,
            wait_deadline=self.trigger.wait_deadline,
            cancel_deadline=self.trigger.cancel_deadline,
        )

    def _error(self, message: str, exc: CensusError | None) -> RunEvent:
        """An ``error`` event naming the class to raise: the failure's own, or CensusPollingError."""
        event = self._event("error", message)
        if exc is None:
            return replace(event, error="CensusPollingError")
        status = exc.http_status if isinstance(exc, CensusApiError) else None
        return replace(event, error=type(exc).__name__, http_status=status)

    def _log_progress(self, run: SyncRun) -> None:
        """Log a line when the state, step or count changes, and a heartbeat otherwise."""
        progress = (run.status, run.current_step, run.records_processed)
        now = time.time()
        if progress == self.last_progress and now - self.last_progress_at < PROGRESS_HEARTBEAT_SECONDS:
            return
        self.last_progress, self.last_progress_at = progress, now
        if is_retired_state(run.status):
            self.log.info("Census reports the retired state %r; reading it as in progress", run.status)
        self.log.info(
            "Census sync %s run %s: %s%s, records processed: %s, %.0f s elapsed%s",
            "?" if run.sync_id is None else run.sync_id,
            run.id,
            run.status,
            f" ({run.current_step})" if run.current_step else "",
            run.records_processed if run.records_processed is not None else "-",
            now - self.trigger.started_at,
            "" if run.outcome.is_terminal else "; still waiting",
        )
