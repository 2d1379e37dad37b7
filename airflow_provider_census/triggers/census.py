"""The wait loop of the provider and the triggers that run it, for one run and for many.

``CensusSyncRunTrigger`` (the operator's and the sensor's) polls one sync run until it ends
and yields exactly one event (its schema: :mod:`airflow_provider_census.core.events`).
``CensusSyncRunsTrigger`` (the many-syncs operator's) runs the same loop once per run in one
trigger, so 100 syncs are one deferral and one pooled client, not 100. Each trigger's ``watch``
also serves the non-deferrable wait, so deadlines, cancellation and failure tolerance are
written once, in :class:`_RunWatch`.

``CensusTrigger``, the trigger of provider 2.1, is kept under its class path so that the
trigger rows 2.1 wrote before an upgrade run on in this loop; its event wears 2.1's shape.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_census.api.errors import CensusError
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.retry import ONE_TRY, RetryPolicy
from airflow_provider_census.api.states import RunOutcome, is_retired_state
from airflow_provider_census.core.events import RunEvent, RunsEvent
from airflow_provider_census.core.wait import (
    Finish,
    Poll,
    PollFailed,
    Seen,
    WaitRules,
    WaitState,
    after_look,
    deadline_due,
)
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.runs import RunExpectations, RunSummary
from airflow_provider_census.version_compat import atask_instance_state

PROGRESS_HEARTBEAT_SECONDS = 300.0
CANCEL_RETRIES = RetryPolicy(max_attempts=4, budget_seconds=5.0, initial_wait=0.25, max_wait=2.0, max_retry_after=2.0)
"""A cancel is the trigger's last word and safe to repeat: a passing fault must not leave the run going.
The waits between tries add up to a few seconds, well inside the triggerer's 30 s ``on_kill`` timeout."""


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

    def wait_rules(self) -> WaitRules:
        """The rules every run of this trigger is waited for by."""
        return WaitRules(
            poll_interval=self.poll_interval,
            max_poll_failures=self.max_poll_failures,
            unknown_state_timeout=self.unknown_state_timeout,
            wait_deadline=self.wait_deadline,
            cancel_deadline=self.cancel_deadline,
        )

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
    """The driver of one run's wait: it looks at the run, and :mod:`..core.wait` decides what follows.

    It keeps what a driver needs beyond the decisions: the last run seen (for the event), the
    progress line last logged, and the hook. A run the task only watches (``watch_only``) is
    never canceled: at the cancel deadline its wait simply ends, as at the wait deadline.
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
        self.watch_only = watch_only
        rules = trigger.wait_rules()
        self.rules = rules.watching_only() if watch_only else rules
        self.state = WaitState()
        self.last_run: SyncRun | None = None
        self.last_progress: tuple[Any, ...] | None = None
        self.last_progress_at = 0.0

    async def until_done(self, first_poll_delay: float) -> RunEvent:
        poll_at = time.time() + first_poll_delay
        while True:
            delay = self.rules.wake_at(poll_at) - time.time()
            if delay > 0:
                await _sleep_to_slot(delay, self.rules.poll_interval)
            due = deadline_due(self.rules, time.time())
            if due is not None:
                return await self._at_deadline(due)
            decision = await self._look()
            if isinstance(decision, Finish):
                return self._finished(decision)
            poll_at = decision.at

    async def _at_deadline(self, due: str) -> RunEvent:
        """A last look first: a run that ended since the last poll is neither going nor to cancel."""
        decision = await self._look()
        if isinstance(decision, Finish) and decision.status == "finished":
            return self._finished(decision)
        if due == "cancel":
            return await self._cancel_at_deadline()
        return self._event(
            "timeout",
            f"Census sync run {self.sync_run_id} did not finish in time; it is still going in Census.",
        )

    async def _look(self) -> Poll | Finish:
        """One read of the run, and the decision on it; the interval counts from when the read began."""
        began = time.time()
        try:
            run = await self.hook.aget_sync_run(self.sync_run_id, sync_id=self.sync_id)
        except CensusError as exc:
            look: Seen | PollFailed = PollFailed.of(self.sync_run_id, exc)
        else:
            self.last_run = run
            self._log_progress(run)
            look = Seen(run.id, run.status, run.outcome)
        jitter = random.uniform(0, self.rules.poll_interval / 10)  # noqa: S311
        before = self.state
        self.state, decision = after_look(self.rules, before, look, began=began, now=time.time(), jitter=jitter)
        self._log_change(before, look)
        return decision

    def _log_change(self, before: WaitState, look: Seen | PollFailed) -> None:
        if isinstance(look, PollFailed) and look.transient:
            self.log.warning(
                "Polling Census sync run %s failed (%d of %d in a row): %s",
                self.sync_run_id,
                self.state.failures,
                self.rules.max_poll_failures,
                look.description,
            )
        elif before.unknown_since is None and self.state.unknown_since is not None:
            self.log.warning(
                "Census reports the unknown state %r for sync run %s; waiting up to %.0f s for a known one",
                look.status if isinstance(look, Seen) else None,
                self.sync_run_id,
                self.rules.unknown_state_timeout,
            )

    def _finished(self, decision: Finish) -> RunEvent:
        return replace(
            self._event(decision.status, decision.message), error=decision.error, http_status=decision.http_status
        )

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
