"""The trigger both waiting tasks defer to: one Census sync run, polled until it ends.

:class:`WaitingTrigger` holds what every Census wait is told (connection, interval, deadlines,
tolerance, whether a kill cancels) and what every one does when Airflow stops it;
:class:`CensusSyncRunTrigger` drives one :class:`~airflow_provider_census.watch.RunWatch` and yields exactly one event
(its schema: :mod:`airflow_provider_census.core.events`).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_census.api.retry import ONE_TRY
from airflow_provider_census.core.events import RunEvent
from airflow_provider_census.core.schedule import ScheduledPolls
from airflow_provider_census.core.wait import PollState, WaitRules
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.hooks.census_async import CensusAsyncHook
from airflow_provider_census.version_compat import atask_instance_state
from airflow_provider_census.watch import RunWatch, cancel_run

PUBLIC_MODULE = "airflow_provider_census.triggers.census"
"""The module the triggers are serialized under, whichever module defines them: stored rows name it."""


class WaitingTrigger(BaseTrigger):
    """What every Census wait takes: how to poll, when to stop, whether a kill cancels, and the task's state.

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
    :param task_state: JSON the task gets back in the event, untouched: its record of the wait.
    :param poll_state: where the task's first look left the polls (failures in a row, since when
        the state is unknown, when to poll next), so that look counts like the trigger's own.
    :param poll_plan: where the run's polls go by its sync's history (``polling="adaptive"``):
        ``{"started_at": epoch, "plan": {...}}`` (:class:`~airflow_provider_census.core.schedule.ScheduledPolls`);
        None polls every ``poll_interval``.
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
        task_state: dict[str, Any] | None = None,
        poll_state: dict[str, Any] | None = None,
        poll_plan: dict[str, Any] | None = None,
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
        self.task_state = task_state
        self.poll_state = poll_state
        self.poll_plan = poll_plan

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
            "task_state": self.task_state,
            "poll_state": self.poll_state,
            "poll_plan": self.poll_plan,
        }

    def wait_rules(self, poll_plan: dict[str, Any] | None = None) -> WaitRules:
        """The rules a run of this trigger is waited for by, its polls placed by ``poll_plan`` if any."""
        return WaitRules(
            poll_interval=self.poll_interval,
            max_poll_failures=self.max_poll_failures,
            unknown_state_timeout=self.unknown_state_timeout,
            wait_deadline=self.wait_deadline,
            cancel_deadline=self.cancel_deadline,
            schedule=ScheduledPolls.from_json(poll_plan),
        )

    def _class_path(self) -> str:
        return f"{PUBLIC_MODULE}.{type(self).__qualname__}"

    def watch_of(
        self,
        sync_run_id: int,
        log: Any,
        *,
        sync_id: int | None,
        watch_only: bool = False,
        poll_plan: dict[str, Any] | None = None,
    ) -> RunWatch:
        """The driver of one run's wait, handed all it needs from this trigger."""
        return RunWatch(
            sync_run_id,
            self.wait_rules(poll_plan),
            CensusAsyncHook(self.census_conn_id, retry_policy=ONE_TRY),
            log,
            census_conn_id=self.census_conn_id,
            sync_id=sync_id,
            watch_only=watch_only,
            started_at=self.started_at,
            state=PollState.from_json(self.poll_state),
        )

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
        await cancel_run(self.census_conn_id, sync_run_id)

    def _first_poll_delay(self) -> float:
        """When the task's first look said, else up to one interval at random, so waits that start
        together do not poll together."""
        poll_at = PollState.from_json(self.poll_state).poll_at
        if poll_at is not None:
            return max(0.0, poll_at - time.time())
        return random.uniform(0, self.poll_interval)  # noqa: S311


class CensusSyncRunTrigger(WaitingTrigger):
    """Wait for a Census sync run to end, without holding a worker slot.

    :param sync_run_id: the run to wait for.
    :param sync_id: the sync it belongs to, when known: a V2 Census that does not serve
        ``GET /sync_runs/{id}`` is then asked for the sync's run list before ``test_status``.

    The other parameters (connection, interval, deadlines, tolerance, cancel on kill, the task's
    state) are those of every Census wait, documented on the base class :class:`WaitingTrigger`.
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

    async def watch(self, log: Any, first_poll_delay: float = 0.0) -> RunEvent:
        """Poll the run until it ends or a deadline passes; the event, carrying the task's state back."""
        watch = self.watch_of(self.sync_run_id, log, sync_id=self.sync_id, poll_plan=self.poll_plan)
        try:
            event = await watch.until_done(first_poll_delay)
        finally:
            await watch.hook.aclose()
        return replace(event, task_state=self.task_state)
