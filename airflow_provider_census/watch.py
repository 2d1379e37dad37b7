"""The drivers of one run's wait: look at the run, let :mod:`.core.wait` decide, act.

Two drivers share the decisions and the event (:class:`Watch`): :class:`RunWatch` here, in a
trigger (asyncio, the pooled client; polls wake on a shared grid of slots, :func:`sleep_to_slot`,
so a triggerer holding a thousand waits wakes once per slot, not once per wait), and
:class:`~airflow_provider_census.worker_wait.WorkerWatch` for a task that does not defer
(blocking reads, no event loop). Each is handed all it needs (the run, the rules, a hook, the
connection to cancel through) and hands back a :class:`~.core.events.RunEvent`; neither reads
the task or the trigger that made it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import replace
from typing import Any, Protocol

from airflow_provider_census.api.errors import CensusError
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.api.states import is_retired_state
from airflow_provider_census.core.events import RunEvent
from airflow_provider_census.core.wait import (
    Finish,
    Poll,
    PollFailed,
    PollState,
    Seen,
    WaitRules,
    after_look,
    deadline_due,
)
from airflow_provider_census.hooks.census_async import CensusAsyncHook
from airflow_provider_census.runs import RunSummary

PROGRESS_HEARTBEAT_SECONDS = 300.0
CANCEL_RETRIES = RetryPolicy(max_attempts=4, budget_seconds=5.0, initial_wait=0.25, max_wait=2.0, max_retry_after=2.0)
"""A cancel is the wait's last word and safe to repeat: a passing fault must not leave the run going.
The waits between tries add up to a few seconds, well inside the triggerer's 30 s ``on_kill`` timeout."""
POLL_SLOT_SECONDS = 0.25
"""Polls wake on a shared grid of quarter seconds: the triggerer's event loop then wakes once for
every poll due in that quarter, not once per trigger (half the CPU per poll with 1,000 triggers).
Short poll intervals get a finer grid, so that rounding up never adds more than 2.5% to a wait."""
SLOTS_PER_INTERVAL = 40


async def cancel_run(census_conn_id: str, sync_run_id: int) -> None:
    """Cancel a run, retrying passing faults (unlike polls, a cancel has no next interval)."""
    async with CensusAsyncHook(census_conn_id, retry_policy=CANCEL_RETRIES) as hook:
        await hook.acancel_sync_run(sync_run_id)


async def sleep_to_slot(delay: float, poll_interval: float) -> None:
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


class _ReadsRuns(Protocol):
    """What a watch needs of its hook beyond the reads its driver makes: where the run's page is."""

    @property
    def base_url(self) -> str: ...


class Watch:
    """What both drivers of one run's wait share: the rules, the decisions on a look, and the event.

    It keeps what a driver needs beyond the decisions: the last run seen (for the event) and the
    progress line last logged. A run the task only watches (``watch_only``) is never canceled:
    at the cancel deadline its wait simply ends, as at the wait deadline. Subclasses only move
    bytes: read the run, cancel it, sleep.
    """

    def __init__(
        self,
        sync_run_id: int,
        rules: WaitRules,
        hook: _ReadsRuns,
        log: logging.Logger | Any,
        *,
        census_conn_id: str,
        sync_id: int | None = None,
        watch_only: bool = False,
        started_at: float | None = None,
        state: PollState | None = None,
    ) -> None:
        self.sync_run_id = sync_run_id
        self.sync_id = sync_id
        self.rules = rules.watching_only() if watch_only else rules
        self.hook = hook
        self.log = log
        self.census_conn_id = census_conn_id
        self.watch_only = watch_only
        self.started_at = time.time() if started_at is None else started_at
        self.state = state or PollState()
        self.last_run: SyncRun | None = None
        self.last_progress: tuple[Any, ...] | None = None
        self.last_progress_at = 0.0

    def _decide(self, read: SyncRun | CensusError, began: float) -> Poll | Finish:
        """The decision on one read of the run (begun at ``began``), logged as it changes."""
        if isinstance(read, CensusError):
            look: Seen | PollFailed = PollFailed.of(self.sync_run_id, read)
        else:
            self.last_run = read
            self._log_progress(read)
            look = Seen(read.id, read.status, read.outcome)
        jitter = random.uniform(0, self.rules.poll_interval / 10)  # noqa: S311
        before = self.state
        self.state, decision = after_look(self.rules, before, look, began=began, now=time.time(), jitter=jitter)
        log_change(self.log, self.rules, before, self.state, look)
        return decision

    def _at_deadline(self, due: str, last_look: Poll | Finish) -> RunEvent | None:
        """The event at a deadline, after a last look; None when the run must be canceled first."""
        if isinstance(last_look, Finish) and last_look.status == "finished":
            return self._finished(last_look)
        if due == "cancel":
            return None
        return self._event(
            "timeout",
            f"Census sync run {self.sync_run_id} did not finish in time; it is still going in Census.",
        )

    def _finished(self, decision: Finish) -> RunEvent:
        return replace(
            self._event(decision.status, decision.message), error=decision.error, http_status=decision.http_status
        )

    def _after_cancel(self, status: str, reason: str, failed: CensusError | None) -> RunEvent:
        run_id = self.sync_run_id
        if failed is not None:
            return self._event(status, f"{reason}; canceling Census sync run {run_id} failed: {failed}")
        return self._event(status, f"{reason}; Census sync run {run_id} was canceled.", canceled=True)

    def _left_going(self, reason: str) -> RunEvent:
        return self._event("stopped", f"{reason}; stopped waiting for Census sync run {self.sync_run_id} (left going).")

    def _event(self, status: str, message: str, canceled: bool = False) -> RunEvent:
        summary = None if self.last_run is None else RunSummary.of(self.last_run, self.hook.base_url)
        return RunEvent(status, self.sync_run_id, summary, message, canceled_run=canceled)

    def _log_progress(self, run: SyncRun) -> None:
        """Log a line when the state, step or count changes, and a heartbeat otherwise."""
        progress = (run.status, run.current_step, run.records_processed)
        now = time.time()
        if progress == self.last_progress and now - self.last_progress_at < PROGRESS_HEARTBEAT_SECONDS:
            return
        self.last_progress, self.last_progress_at = progress, now
        log_progress(self.log, run, now - self.started_at)


class RunWatch(Watch):
    """One run's wait in a trigger (asyncio): sleeps on the shared slot grid, reads through the pooled client."""

    hook: CensusAsyncHook

    async def until_done(self, first_poll_delay: float) -> RunEvent:
        poll_at = time.time() + first_poll_delay
        while True:
            delay = self.rules.wake_at(poll_at) - time.time()
            if delay > 0:
                await sleep_to_slot(delay, self.rules.poll_interval)
            due = deadline_due(self.rules, time.time())
            if due is not None:
                event = self._at_deadline(due, await self._look())
                return event or await self._cancel("timeout", "The task's execution_timeout passed")
            decision = await self._look()
            if isinstance(decision, Finish):
                return self._finished(decision)
            poll_at = decision.at

    async def _look(self) -> Poll | Finish:
        began = time.time()
        try:
            read: SyncRun | CensusError = await self.hook.aget_sync_run(self.sync_run_id, sync_id=self.sync_id)
        except CensusError as exc:
            read = exc
        return self._decide(read, began)

    async def stop(self, reason: str) -> RunEvent:
        """End this wait early because of another run (``fail_fast``): cancel the run unless only watched."""
        return self._left_going(reason) if self.watch_only else await self._cancel("stopped", reason)

    async def _cancel(self, status: str, reason: str) -> RunEvent:
        try:
            await cancel_run(self.census_conn_id, self.sync_run_id)
        except CensusError as exc:
            return self._after_cancel(status, reason, exc)
        return self._after_cancel(status, reason, None)


def fail_fast_reason(failed: RunEvent) -> str:
    return f"fail_fast: Census sync run {failed.sync_run_id} did not succeed"


def log_progress(log: logging.Logger | Any, run: SyncRun, elapsed: float) -> None:
    """The progress line of a wait (and a note when Census reports a retired state)."""
    if is_retired_state(run.status):
        log.info("Census reports the retired state %r; reading it as in progress", run.status)
    log.info(
        "Census sync %s run %s: %s%s, records processed: %s, %.0f s elapsed%s",
        "?" if run.sync_id is None else run.sync_id,
        run.id,
        run.status,
        f" ({run.current_step})" if run.current_step else "",
        run.records_processed if run.records_processed is not None else "-",
        elapsed,
        "" if run.outcome.is_terminal else "; still waiting",
    )


def log_change(
    log: logging.Logger | Any, rules: WaitRules, before: PollState, after: PollState, look: Seen | PollFailed
) -> None:
    """Say when a poll failed (and how many in a row), or when the run entered a state nobody knows."""
    if isinstance(look, PollFailed) and look.transient:
        log.warning(
            "Polling Census sync run %s failed (%d of %d in a row): %s",
            look.run_id,
            after.failures,
            rules.max_poll_failures,
            look.description,
        )
    elif before.unknown_since is None and after.unknown_since is not None and isinstance(look, Seen):
        log.warning(
            "Census reports the unknown state %r for sync run %s; waiting up to %.0f s for a known one",
            look.status,
            look.run_id,
            rules.unknown_state_timeout,
        )
