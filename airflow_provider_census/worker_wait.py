"""The wait of a task that does not defer: the same decisions as the trigger's, blocking reads, no event loop.

:class:`WorkerWatch` is one run's wait (:class:`~airflow_provider_census.watch.Watch` does the
deciding and the event); :func:`wait_in_worker` waits for one run or many in the worker's thread,
reading the runs due together a few at a time.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from airflow_provider_census.api.errors import CensusError
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.core.events import RunEvent
from airflow_provider_census.core.wait import Finish, Poll, deadline_due
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.watch import CANCEL_RETRIES, Watch, fail_fast_reason


class WorkerWatch(Watch):
    """One run's wait in the worker (no event loop): the same decisions, blocking reads, one step per wake-up."""

    hook: CensusHook

    event: RunEvent | None = None

    @property
    def poll_at(self) -> float:
        return self.state.poll_at or 0.0

    def wake_at(self) -> float:
        return self.rules.wake_at(self.poll_at)

    def step(self) -> None:
        """At or after :meth:`wake_at`: act on a deadline, or look once and decide; ``event`` is set at the end."""
        due = deadline_due(self.rules, time.time())
        if due is not None:
            self.event = self._at_deadline(due, self._look()) or self._cancel(
                "timeout", "The task's execution_timeout passed"
            )
            return
        decision = self._look()
        if isinstance(decision, Finish):
            self.event = self._finished(decision)
        else:
            self.state = replace(self.state, poll_at=decision.at)

    def _look(self) -> Poll | Finish:
        began = time.time()
        try:
            read: SyncRun | CensusError = self.hook.get_sync_run(self.sync_run_id, sync_id=self.sync_id)
        except CensusError as exc:
            read = exc
        return self._decide(read, began)

    def stop(self, reason: str) -> RunEvent:
        """End this wait early because of another run (``fail_fast``): cancel the run unless only watched."""
        self.event = self._left_going(reason) if self.watch_only else self._cancel("stopped", reason)
        return self.event

    def _cancel(self, status: str, reason: str) -> RunEvent:
        try:
            self.hook.with_retry_policy(CANCEL_RETRIES).cancel_sync_run(self.sync_run_id)
        except CensusError as exc:
            return self._after_cancel(status, reason, exc)
        return self._after_cancel(status, reason, None)


def wait_in_worker(
    watches: Sequence[WorkerWatch],
    *,
    fails: Callable[[RunEvent, WorkerWatch], bool] | None = None,
    max_concurrent_reads: int = 8,
) -> list[RunEvent]:
    """Wait for every run in this thread, reading the runs due together a few at a time; their events, in order.

    The non-deferrable task's wait: the decisions are those of the deferred wait (:mod:`.core.wait`),
    with no event loop of its own. With ``fails`` (``fail_fast``), the first wait that ends in a
    failure stops the others (their runs canceled unless only watched).
    """
    pending = list(watches)
    workers = max(1, min(max_concurrent_reads, len(pending)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="census-poll") as pool:
        while pending:
            time.sleep(max(0.0, min(watch.wake_at() for watch in pending) - time.time()))
            due = [watch for watch in pending if watch.wake_at() <= time.time()]
            list(pool.map(WorkerWatch.step, due))
            pending = [watch for watch in pending if watch.event is None]
            failed = _first_failure(due, fails) if fails is not None else None
            if failed is not None and pending:
                reason = fail_fast_reason(failed)
                list(pool.map(functools.partial(_stop, reason=reason), pending))
                pending = []
    return [watch.event for watch in watches if watch.event is not None]


def _first_failure(ended: Sequence[WorkerWatch], fails: Callable[[RunEvent, WorkerWatch], bool]) -> RunEvent | None:
    return next((w.event for w in ended if w.event is not None and fails(w.event, w)), None)


def _stop(watch: WorkerWatch, reason: str) -> RunEvent:
    return watch.stop(reason)
