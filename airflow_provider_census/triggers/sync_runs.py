"""The many-syncs operator's trigger: many Census sync runs in one deferral, one pooled client.

It runs one :class:`~airflow_provider_census.watch.RunWatch` per run, side by side, each exactly as
:class:`~.sync_run.CensusSyncRunTrigger` waits for one, and yields one event once every wait
has ended, so 100 syncs are one deferral, not 100.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_census.core.events import RunEvent, RunsEvent
from airflow_provider_census.runs import RunExpectations
from airflow_provider_census.triggers.sync_run import WaitingTrigger
from airflow_provider_census.watch import RunWatch, fail_fast_reason


class CensusSyncRunsTrigger(WaitingTrigger):
    """Wait for many Census sync runs in one trigger: one wait loop per run, one pooled client.

    Each run is waited for exactly as :class:`~.sync_run.CensusSyncRunTrigger` waits for one
    (same deadlines, tolerance, unknown-state limit), and the trigger yields one event once every
    wait has ended. With ``fail_fast``, the first run that does not succeed (by the task's own
    checks, passed in as ``on_skipped`` and the rejected-records limits) ends the others: the
    task's own runs still going are canceled, runs it only watches are left alone. The waiting
    parameters are those of :class:`~.sync_run.WaitingTrigger`.

    :param sync_run_ids: the task's own runs, canceled at ``cancel_deadline``, on kill and by ``fail_fast``.
    :param watched_run_ids: runs the task waits for but did not start (the earlier run that
        made Census skip one of the task's): never canceled, and their end fails nothing.
    :param sync_ids: the sync of each run, by run id as text (see ``CensusSyncRunTrigger``'s ``sync_id``).
    :param poll_plans: where each run's polls go by its sync's history, by run id as text (see
        ``CensusSyncRunTrigger``'s ``poll_plan``); a run without one is polled every ``poll_interval``.
    :param fail_fast: stop every other wait at the first run that does not succeed.
    :param on_skipped: the task's skipped policy: a skip counts as a failure unless it is
        ``succeed`` or ``wait`` (the task then handles the skip after the event).
    :param max_rejected_records: the task's limit on rejected records, for ``fail_fast``.
    :param max_rejected_share: the task's limit on the share of rejected records, for ``fail_fast``.
    """

    def __init__(
        self,
        sync_run_ids: list[int],
        *,
        watched_run_ids: list[int] | None = None,
        sync_ids: dict[str, int] | None = None,
        poll_plans: dict[str, dict[str, Any]] | None = None,
        fail_fast: bool = False,
        on_skipped: str = "fail",
        max_rejected_records: int | None = None,
        max_rejected_share: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sync_run_ids = [int(run_id) for run_id in sync_run_ids]
        self.watched_run_ids = [int(run_id) for run_id in watched_run_ids or ()]
        self.sync_ids = {str(run_id): int(sync_id) for run_id, sync_id in (sync_ids or {}).items()}
        self.poll_plans = {str(run_id): plan for run_id, plan in (poll_plans or {}).items()}
        self.fail_fast = bool(fail_fast)
        self.expectations = RunExpectations(on_skipped, max_rejected_records, max_rejected_share)
        self._open_runs: set[int] = set(self.sync_run_ids)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        expectations = self.expectations
        return self._class_path(), {
            "sync_run_ids": self.sync_run_ids,
            "watched_run_ids": self.watched_run_ids,
            "sync_ids": self.sync_ids,
            "poll_plans": self.poll_plans,
            "fail_fast": self.fail_fast,
            "on_skipped": expectations.on_skipped,
            "max_rejected_records": expectations.max_rejected_records,
            "max_rejected_share": expectations.max_rejected_share,
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
        """A :class:`~airflow_provider_census.watch.RunWatch` per run, side by side; one event once all ended."""
        watched = set(self.watched_run_ids)
        watches = {
            run_id: self.watch_of(
                run_id,
                log,
                sync_id=self.sync_ids.get(str(run_id)),
                watch_only=run_id in watched,
                poll_plan=self.poll_plans.get(str(run_id)),
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
        return RunsEvent(tuple(events[run_id] for run_id in watches), self.task_state)

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
            if failed is None and event.fails(self.expectations, watched_only=event.sync_run_id in watched):
                failed = event
        return failed

    async def _stop_the_rest(
        self,
        pending: set[asyncio.Task[RunEvent]],
        tasks: dict[asyncio.Task[RunEvent], int],
        watches: dict[int, RunWatch],
        events: dict[int, RunEvent],
        failed: RunEvent,
    ) -> None:
        """``fail_fast``: end the other waits, canceling the task's own runs among them."""
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        stopped = [watches[tasks[task]] for task in pending]
        for event in await asyncio.gather(*(watch.stop(fail_fast_reason(failed)) for watch in stopped)):
            events[event.sync_run_id] = event
            self._open_runs.discard(event.sync_run_id)
