"""The wait for one run, as pure decisions: what follows each look at it, and what a deadline does.

No I/O, no clock and no Airflow here. A driver (the trigger's loop, which the worker also runs)
looks at the run, hands :func:`after_look` what it saw and the time, and carries out the
decision: poll again at a time, or finish with an outcome. At each wake-up it asks
:func:`deadline_due` whether a deadline has come. So the rules of a wait (the interval, the
backoff after failed polls, the cap on ``Retry-After``, the limit on failures in a row, how
long an unknown state is borne, the deadlines of a run the task only watches) are written
once, here, and are tested table by table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from airflow_provider_census.api.errors import CensusApiError, CensusError
from airflow_provider_census.api.retry import is_transient, retry_after_of
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.schedule import ScheduledPolls

MAX_BACKOFF_INTERVALS = 8.0
"""After failed polls in a row, the wait before the next one grows to at most this many intervals."""
MAX_RETRY_AFTER_SECONDS = 300.0
"""A ``Retry-After`` longer than this is not waited for in full: the poll comes after this long."""
POLLING_ERROR = "CensusPollingError"


@dataclass(frozen=True)
class WaitRules:
    """What the task asked of the wait; epoch seconds for the deadlines.

    :param poll_interval: seconds between polls (counted from when a poll began).
    :param max_poll_failures: failed polls in a row borne before the wait ends with an error.
    :param unknown_state_timeout: seconds a run may stay in a state the provider does not know.
    :param wait_deadline: stop waiting then (the run goes on).
    :param cancel_deadline: cancel the run then, and stop.
    :param schedule: where a run's history places its polls (:mod:`.schedule`); None: every interval.
    """

    poll_interval: float
    max_poll_failures: int = 5
    unknown_state_timeout: float = 600.0
    wait_deadline: float | None = None
    cancel_deadline: float | None = None
    schedule: ScheduledPolls | None = None

    def next_poll(self, began: float) -> float:
        """When to look again at a run still going, after a look that began at ``began``: where the
        run's history places it (``polling="adaptive"``), else one interval later."""
        return began + self.poll_interval if self.schedule is None else self.schedule.next_poll(began)

    def watching_only(self) -> WaitRules:
        """For a run the task only watches: stop at the earlier deadline, and never cancel it."""
        deadlines = [deadline for deadline in (self.wait_deadline, self.cancel_deadline) if deadline]
        return replace(self, wait_deadline=min(deadlines, default=None), cancel_deadline=None, schedule=None)

    def wake_at(self, poll_at: float) -> float:
        """When the driver wakes next: the next poll, or a deadline if one comes first."""
        deadlines = [deadline for deadline in (self.wait_deadline, self.cancel_deadline) if deadline]
        return min([poll_at, *deadlines])


@dataclass(frozen=True)
class PollState:
    """What a wait remembers between looks: failed polls in a row, since when the state is unknown,
    and when to look next (epoch seconds; None: at once, or as the driver spreads its first polls).

    A task's first look is the first poll of its wait: the state after it travels with the wait
    (into the trigger's kwargs, or the worker's loop), so every look counts the same.
    """

    failures: int = 0
    unknown_since: float | None = None
    poll_at: float | None = None

    def to_json(self) -> dict[str, int | float | None]:
        return {"failures": self.failures, "unknown_since": self.unknown_since, "poll_at": self.poll_at}

    @classmethod
    def from_json(cls, data: Mapping[str, object] | None) -> PollState:
        if not data:
            return cls()
        failures, unknown_since, poll_at = data.get("failures"), data.get("unknown_since"), data.get("poll_at")
        return cls(int(json_number(failures) or 0), json_number(unknown_since), json_number(poll_at))


def json_number(value: object) -> float | None:
    """A number from JSON, or None; a TypeError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Seen:
    """A look that read the run."""

    run_id: int
    status: str
    outcome: RunOutcome


@dataclass(frozen=True)
class PollFailed:
    """A look that failed: ``transient`` failures (timeouts, 5xx, 429, unreadable answers) may pass."""

    run_id: int
    error: str
    description: str
    transient: bool
    http_status: int | None = None
    retry_after: float | None = None

    @classmethod
    def of(cls, run_id: int, exc: CensusError) -> PollFailed:
        """What a failed read of the run tells the rules: its class, whether it may pass, Census's wish."""
        return cls(
            run_id=run_id,
            error=type(exc).__name__,
            description=str(exc),
            transient=is_transient(exc),
            http_status=exc.http_status if isinstance(exc, CensusApiError) else None,
            retry_after=retry_after_of(exc),
        )


@dataclass(frozen=True)
class Poll:
    """Look again at ``at`` (epoch seconds)."""

    at: float


@dataclass(frozen=True)
class Finish:
    """End the wait: ``finished`` (the run ended, or its unknown state lasted too long) or ``error``.

    ``error`` names the exception class the task raises for an ``error`` end.
    """

    status: str
    message: str
    error: str | None = None
    http_status: int | None = None


Look = Seen | PollFailed
Decision = Poll | Finish


def after_look(
    rules: WaitRules, state: PollState, look: Look, *, began: float, now: float, jitter: float = 0.0
) -> tuple[PollState, Decision]:
    """The state after a look, and what to do next. ``began`` is when the look started; ``jitter``
    (0 to a tenth of the interval, drawn by the driver) spreads the retries of waits that failed together.
    """
    if isinstance(look, PollFailed):
        return _after_failure(rules, state, look, began=began, now=now, jitter=jitter)
    if look.outcome.is_terminal:
        return PollState(), Finish("finished", f"Census sync run {look.run_id} ended: {look.status}")
    if look.outcome is RunOutcome.UNKNOWN:
        since = now if state.unknown_since is None else state.unknown_since
        if now - since >= rules.unknown_state_timeout:
            message = (
                f"Census sync run {look.run_id} stayed in the unknown state {look.status!r} for "
                f"{rules.unknown_state_timeout:.0f} s"
            )
            return PollState(unknown_since=since), Finish("finished", message)
        return PollState(unknown_since=since), Poll(rules.next_poll(began))
    return PollState(), Poll(rules.next_poll(began))


def _after_failure(
    rules: WaitRules, state: PollState, failed: PollFailed, *, began: float, now: float, jitter: float
) -> tuple[PollState, Decision]:
    """End on a failure that will not pass, or when too many failed in a row; else poll later.

    Failed polls in a row back off (the interval doubled per failure, up to
    :data:`MAX_BACKOFF_INTERVALS` intervals, plus the jitter), and never come sooner than
    Census's ``Retry-After``, capped at :data:`MAX_RETRY_AFTER_SECONDS`.
    """
    if not failed.transient:
        message = f"Polling Census sync run {failed.run_id} failed: {failed.description}"
        return state, Finish("error", message, failed.error, failed.http_status)
    failures = state.failures + 1
    ahead = replace(state, failures=failures)
    if failures >= rules.max_poll_failures:
        message = (
            f"Polling Census sync run {failed.run_id} failed {failures} times in a row; "
            f"last error: {failed.description}"
        )
        return ahead, Finish("error", message, POLLING_ERROR)
    return ahead, Poll(max(began + backoff(rules.poll_interval, failures, jitter), now + honoured(failed.retry_after)))


def backoff(interval: float, failures: int, jitter: float = 0.0) -> float:
    """The wait after ``failures`` failed polls in a row: the interval doubled per failure, at most
    :data:`MAX_BACKOFF_INTERVALS` intervals, plus ``jitter``; the interval itself after none."""
    if failures < 1:
        return interval
    return interval * min(2.0 ** (failures - 1), MAX_BACKOFF_INTERVALS) + jitter


def honoured(retry_after: float | None) -> float:
    """How much of Census's ``Retry-After`` is waited for: all of it, up to :data:`MAX_RETRY_AFTER_SECONDS`."""
    return min(retry_after or 0.0, MAX_RETRY_AFTER_SECONDS)


def deadline_due(rules: WaitRules, now: float) -> str | None:
    """``"cancel"`` once the cancel deadline has come, ``"wait"`` once the wait deadline has, else None."""
    if rules.cancel_deadline is not None and now >= rules.cancel_deadline:
        return "cancel"
    if rules.wait_deadline is not None and now >= rules.wait_deadline:
        return "wait"
    return None
