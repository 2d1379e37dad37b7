"""The rules of a wait, decision by decision: the pure core every driver carries out (core/wait.py)."""

from __future__ import annotations

import pytest

from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.wait import (
    MAX_RETRY_AFTER_SECONDS,
    Finish,
    Poll,
    PollFailed,
    PollState,
    Seen,
    WaitRules,
    after_look,
    backoff,
    deadline_due,
)

RULES = WaitRules(poll_interval=10.0, max_poll_failures=3, unknown_state_timeout=60.0)
BEGAN, NOW = 1000.0, 1001.0


def seen(outcome: RunOutcome, status: str = "working") -> Seen:
    return Seen(run_id=7, status=status, outcome=outcome)


def ended(status: str) -> Finish:
    return Finish("finished", f"Census sync run 7 ended: {status}")


def failed(transient: bool = True, retry_after: float | None = None) -> PollFailed:
    return PollFailed(7, "CensusServerError", "HTTP 503", transient, http_status=503, retry_after=retry_after)


@pytest.mark.parametrize(
    ("state", "look", "expected_state", "decision"),
    [
        # a run going: poll one interval after the look began; failures and unknown time forgotten
        (PollState(2, 900.0), seen(RunOutcome.IN_PROGRESS), PollState(), Poll(BEGAN + 10.0)),
        # every end of a run finishes the wait, with the status Census gave
        (PollState(1), seen(RunOutcome.SUCCEEDED, "completed"), PollState(), ended("completed")),
        (PollState(), seen(RunOutcome.FAILED, "failed"), PollState(), ended("failed")),
        (PollState(), seen(RunOutcome.SKIPPED, "skipped"), PollState(), ended("skipped")),
        (PollState(), seen(RunOutcome.CANCELED, "failed"), PollState(), ended("failed")),
        # an unknown state is borne for unknown_state_timeout, counted from when it was first seen
        (PollState(), seen(RunOutcome.UNKNOWN, "exploded"), PollState(unknown_since=NOW), Poll(BEGAN + 10.0)),
        (PollState(unknown_since=NOW - 59), seen(RunOutcome.UNKNOWN, "x"), PollState(unknown_since=NOW - 59),
         Poll(BEGAN + 10.0)),
        (
            PollState(unknown_since=NOW - 60),
            seen(RunOutcome.UNKNOWN, "x"),
            PollState(unknown_since=NOW - 60),
            Finish("finished", "Census sync run 7 stayed in the unknown state 'x' for 60 s"),
        ),
        # failed polls back off: the interval doubled per failure in a row
        (PollState(), failed(), PollState(1), Poll(BEGAN + 10.0)),
        (PollState(1), failed(), PollState(2), Poll(BEGAN + 20.0)),
        # ...never sooner than Retry-After, which is honoured up to its cap
        (PollState(), failed(retry_after=30.0), PollState(1), Poll(NOW + 30.0)),
        (PollState(), failed(retry_after=10_000.0), PollState(1), Poll(NOW + MAX_RETRY_AFTER_SECONDS)),
        # too many in a row end the wait as a polling error
        (
            PollState(2),
            failed(),
            PollState(3),
            Finish("error", "Polling Census sync run 7 failed 3 times in a row; last error: HTTP 503",
                   "CensusPollingError"),
        ),
        # a failure that will not pass ends it at once, as its own class
        (
            PollState(1),
            failed(transient=False),
            PollState(1),
            Finish("error", "Polling Census sync run 7 failed: HTTP 503", "CensusServerError", 503),
        ),
    ],
)  # fmt: skip
def test_after_each_look(
    state: PollState, look: Seen | PollFailed, expected_state: PollState, decision: Poll | Finish
) -> None:
    assert after_look(RULES, state, look, began=BEGAN, now=NOW) == (expected_state, decision)


def test_jitter_spreads_only_the_retries() -> None:
    assert after_look(RULES, PollState(), failed(), began=BEGAN, now=NOW, jitter=0.5)[1] == Poll(BEGAN + 10.5)
    assert after_look(RULES, PollState(), seen(RunOutcome.IN_PROGRESS), began=BEGAN, now=NOW, jitter=0.5)[1] == Poll(
        BEGAN + 10.0
    )


@pytest.mark.parametrize(
    ("failures", "wait"), [(0, 10.0), (1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 80.0), (9, 80.0)]
)
def test_backoff_doubles_up_to_eight_intervals(failures: int, wait: float) -> None:
    assert backoff(10.0, failures) == wait


@pytest.mark.parametrize(
    ("wait_deadline", "cancel_deadline", "now", "due"),
    [
        (None, None, 5_000.0, None),
        (100.0, None, 99.0, None),
        (100.0, None, 100.0, "wait"),
        (None, 100.0, 100.0, "cancel"),
        (100.0, 100.0, 100.0, "cancel"),  # the cancel deadline wins: the run must not be left going
        (200.0, 100.0, 150.0, "cancel"),
        (100.0, 200.0, 150.0, "wait"),
    ],
)
def test_deadlines(wait_deadline: float | None, cancel_deadline: float | None, now: float, due: str | None) -> None:
    assert deadline_due(WaitRules(10.0, wait_deadline=wait_deadline, cancel_deadline=cancel_deadline), now) == due


@pytest.mark.parametrize(
    ("wait_deadline", "cancel_deadline", "watched"),
    [(100.0, 200.0, (100.0, None)), (200.0, 100.0, (100.0, None)), (None, 100.0, (100.0, None)),
     (None, None, (None, None))],
)  # fmt: skip
def test_a_run_only_watched_stops_at_the_earlier_deadline_and_is_never_canceled(
    wait_deadline: float | None, cancel_deadline: float | None, watched: tuple[float | None, None]
) -> None:
    rules = WaitRules(10.0, wait_deadline=wait_deadline, cancel_deadline=cancel_deadline).watching_only()
    assert (rules.wait_deadline, rules.cancel_deadline) == watched
    assert deadline_due(rules, 10_000.0) in (None, "wait")


def test_the_driver_wakes_for_a_deadline_before_the_next_poll() -> None:
    rules = WaitRules(10.0, wait_deadline=105.0, cancel_deadline=120.0)
    assert (rules.wake_at(103.0), rules.wake_at(110.0), WaitRules(10.0).wake_at(110.0)) == (103.0, 105.0, 110.0)
