"""A task's wait for a sync's run, step by step: one serialisable state, pure decisions.

:mod:`.wait` decides between two looks at one run. This module decides what a task does when
the run it waits for ends: finish with it, look for the run that made Census skip it
(``on_skipped="wait"``), wait for that run, trigger a fresh one, or give up because a deadline
passed. The operator, each sync of the many-syncs operator and the sensor carry these steps out;
only the operators trigger (``triggers=True``), so for the sensor the run it follows decides.

The task's :class:`WaitState` crosses each deferral in one channel: the trigger carries it as
``task_state`` and hands it back in its event, untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.schedule import ScheduledPolls
from airflow_provider_census.core.wait import json_number

MAX_RETRIGGERS_AFTER_SKIPS = 3
"""With ``on_skipped="wait"``, how many fresh runs one task triggers after skipped ones before it gives up."""


@dataclass(frozen=True)
class WaitState:
    """What a task knows of its wait for one sync: the run, whether it only watches it, skips, deadlines.

    ``watching`` marks a run that made Census skip the task's own: the task waits for it but
    never cancels it. ``skips`` counts the skipped runs this task waited out. The deadlines are
    epoch seconds: stop waiting at ``wait_deadline``; cancel the task's own run at ``cancel_deadline``.
    ``schedule`` places the polls of the task's own run by its sync's history (None: every interval).
    """

    run_id: int
    sync_id: int | None = None
    watching: bool = False
    skips: int = 0
    wait_deadline: float | None = None
    cancel_deadline: float | None = None
    schedule: ScheduledPolls | None = None

    @property
    def own_run(self) -> int | None:
        """The run a kill, a cancel deadline or ``fail_fast`` may cancel: the task's own, never a watched one."""
        return None if self.watching else self.run_id

    def deadline_passed(self, now: float) -> bool:
        return any(deadline is not None and now >= deadline for deadline in (self.wait_deadline, self.cancel_deadline))

    def with_deadlines(self, wait_deadline: float | None, cancel_deadline: float | None) -> WaitState:
        return replace(self, wait_deadline=wait_deadline, cancel_deadline=cancel_deadline)

    def waiting_for(self, run_id: int, schedule: ScheduledPolls | None = None) -> WaitState:
        """The task's own fresh run, triggered after a skip (polled as its sync's history says)."""
        return replace(self, run_id=run_id, watching=False, schedule=schedule)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "sync_id": self.sync_id,
            "watching": self.watching,
            "skips": self.skips,
            "wait_deadline": self.wait_deadline,
            "cancel_deadline": self.cancel_deadline,
            "schedule": None if self.schedule is None else self.schedule.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> WaitState:
        """The state back from a trigger's event; a ValueError says what is wrong with it."""
        if not isinstance(data, Mapping):
            raise ValueError(f"the task's wait state must be a mapping, got {type(data).__name__}")
        try:
            return cls(
                run_id=int(data["run_id"]),
                sync_id=None if data.get("sync_id") is None else int(data["sync_id"]),
                watching=bool(data.get("watching", False)),
                skips=int(data.get("skips", 0)),
                **read_deadlines(data),
                schedule=ScheduledPolls.from_json(data.get("schedule")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the task's wait state cannot be read ({exc!r})") from None

    @property
    def deadlines(self) -> dict[str, float | None]:
        return {"wait_deadline": self.wait_deadline, "cancel_deadline": self.cancel_deadline}


def read_deadlines(data: Mapping[str, Any]) -> dict[str, float | None]:
    """``wait_deadline`` and ``cancel_deadline`` from JSON; a TypeError names one that is not epoch seconds."""
    return {key: json_number(data.get(key)) for key in ("wait_deadline", "cancel_deadline")}


@dataclass(frozen=True)
class SkipPolicy:
    """How a task treats a run Census skipped: ``waits_out`` (``on_skipped="wait"``), and whether it ``triggers``."""

    waits_out: bool
    triggers: bool


@dataclass(frozen=True)
class Done:
    """Finish with the run at hand; ``gave_up`` when Census skipped too many fresh runs in a row."""

    gave_up: bool = False


@dataclass(frozen=True)
class FindBlocker:
    """Look for the run that made Census skip this one (the newest earlier run of the sync not skipped itself)."""


@dataclass(frozen=True)
class Watch:
    """Wait for ``run_id``, the run that made Census skip the task's own."""

    run_id: int


@dataclass(frozen=True)
class TriggerFresh:
    """Trigger a fresh run of the sync; its end decides."""


@dataclass(frozen=True)
class TooLate:
    """A deadline passed while the task waited out a skip: no fresh run is triggered."""


@dataclass(frozen=True)
class Blocker:
    """What the look for the blocking run found: ``run_id`` (None if no such run), whether it ``ended``,
    and whether Census ``listed`` the sync's runs at all (a V2 that does not serve the list)."""

    run_id: int | None
    ended: bool = False
    listed: bool = True


Step = Done | FindBlocker | Watch | TriggerFresh | TooLate


def after_end(state: WaitState, outcome: RunOutcome, policy: SkipPolicy, now: float) -> tuple[WaitState, Step]:
    """What follows the end of the run the task waits for."""
    if state.watching:
        return state, _fresh_or_too_late(state, now) if policy.triggers else Done()
    if outcome is not RunOutcome.SKIPPED or not policy.waits_out:
        return state, Done()
    if policy.triggers and state.skips >= MAX_RETRIGGERS_AFTER_SKIPS:
        return state, Done(gave_up=True)
    return replace(state, skips=state.skips + 1), FindBlocker()


def after_blocker(state: WaitState, blocker: Blocker, policy: SkipPolicy, now: float) -> tuple[WaitState, Step]:
    """What follows the look for the run that made Census skip the task's.

    The skip stands when Census does not list the sync's runs. An operator triggers afresh at once
    when no run blocks any more; a sensor, which never triggers, follows whatever run it found.
    """
    if blocker.run_id is None:
        if not blocker.listed or not policy.triggers:
            return state, Done()
        return state, _fresh_or_too_late(state, now)
    if blocker.ended and policy.triggers:
        return state, _fresh_or_too_late(state, now)
    return replace(state, run_id=blocker.run_id, watching=policy.triggers, schedule=None), Watch(blocker.run_id)


def _fresh_or_too_late(state: WaitState, now: float) -> Step:
    return TooLate() if state.deadline_passed(now) else TriggerFresh()
