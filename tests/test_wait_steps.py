"""What a task does when the run it waits for ends (``core.steps``), table by table: no I/O, no clock."""

from __future__ import annotations

import json

import pytest

from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.steps import (
    MAX_RETRIGGERS_AFTER_SKIPS,
    Blocker,
    Done,
    FindBlocker,
    SkipPolicy,
    Step,
    TooLate,
    TriggerFresh,
    WaitState,
    Watch,
    after_blocker,
    after_end,
)

NOW = 1_000.0
OPERATOR_WAITS = SkipPolicy(waits_out=True, triggers=True)
OPERATOR_FAILS = SkipPolicy(waits_out=False, triggers=True)
SENSOR_WAITS = SkipPolicy(waits_out=True, triggers=False)
OWN = WaitState(run_id=20, sync_id=7, wait_deadline=2_000.0)
WATCHING = WaitState(run_id=19, sync_id=7, watching=True, skips=1, wait_deadline=2_000.0)
LATE = WaitState(run_id=19, sync_id=7, watching=True, skips=1, wait_deadline=NOW)


@pytest.mark.parametrize(
    ("state", "outcome", "policy", "after", "step"),
    [
        # a run that did not skip decides, whatever the policy
        (OWN, RunOutcome.SUCCEEDED, OPERATOR_WAITS, OWN, Done()),
        (OWN, RunOutcome.FAILED, OPERATOR_WAITS, OWN, Done()),
        (OWN, RunOutcome.UNKNOWN, SENSOR_WAITS, OWN, Done()),
        # a skip decides unless the task waits skips out
        (OWN, RunOutcome.SKIPPED, OPERATOR_FAILS, OWN, Done()),
        (OWN, RunOutcome.SKIPPED, OPERATOR_WAITS, WaitState(20, 7, skips=1, wait_deadline=2_000.0), FindBlocker()),
        (OWN, RunOutcome.SKIPPED, SENSOR_WAITS, WaitState(20, 7, skips=1, wait_deadline=2_000.0), FindBlocker()),
        # the operator gives up after three fresh runs skipped in a row; the skip then decides
        (
            WaitState(20, 7, skips=MAX_RETRIGGERS_AFTER_SKIPS),
            RunOutcome.SKIPPED,
            OPERATOR_WAITS,
            WaitState(20, 7, skips=MAX_RETRIGGERS_AFTER_SKIPS),
            Done(gave_up=True),
        ),
        # the run the operator watched ended, however it ended: a fresh run, unless too late
        (WATCHING, RunOutcome.FAILED, OPERATOR_WAITS, WATCHING, TriggerFresh()),
        (WATCHING, RunOutcome.SUCCEEDED, OPERATOR_WAITS, WATCHING, TriggerFresh()),
        (LATE, RunOutcome.SUCCEEDED, OPERATOR_WAITS, LATE, TooLate()),
    ],
)
def test_after_end(state: WaitState, outcome: RunOutcome, policy: SkipPolicy, after: WaitState, step: Step) -> None:
    assert after_end(state, outcome, policy, NOW) == (after, step)


SKIPPED = WaitState(20, 7, skips=1, wait_deadline=2_000.0)


@pytest.mark.parametrize(
    ("state", "blocker", "policy", "after", "step"),
    [
        # a blocker still going is waited for: watched by the operator, followed by the sensor
        (SKIPPED, Blocker(19), OPERATOR_WAITS, WaitState(19, 7, True, 1, 2_000.0), Watch(19)),
        (SKIPPED, Blocker(19), SENSOR_WAITS, WaitState(19, 7, False, 1, 2_000.0), Watch(19)),
        # a blocker that has ended: the operator triggers at once; the sensor follows it (it decides)
        (SKIPPED, Blocker(19, ended=True), OPERATOR_WAITS, SKIPPED, TriggerFresh()),
        (SKIPPED, Blocker(19, ended=True), SENSOR_WAITS, WaitState(19, 7, False, 1, 2_000.0), Watch(19)),
        # no earlier run: the operator triggers afresh, the sensor keeps the skip
        (SKIPPED, Blocker(None), OPERATOR_WAITS, SKIPPED, TriggerFresh()),
        (SKIPPED, Blocker(None), SENSOR_WAITS, SKIPPED, Done()),
        # Census does not list the sync's runs: the skip stands, for both
        (SKIPPED, Blocker(None, listed=False), OPERATOR_WAITS, SKIPPED, Done()),
        (SKIPPED, Blocker(None, listed=False), SENSOR_WAITS, SKIPPED, Done()),
        # a deadline that passed: no fresh run
        (WaitState(20, 7, skips=1, cancel_deadline=NOW), Blocker(None), OPERATOR_WAITS, None, TooLate()),
    ],
)
def test_after_blocker(
    state: WaitState, blocker: Blocker, policy: SkipPolicy, after: WaitState | None, step: Step
) -> None:
    assert after_blocker(state, blocker, policy, NOW) == (after or state, step)


@pytest.mark.parametrize(
    ("state", "own_run"),
    [(OWN, 20), (WATCHING, None), (WaitState(5), 5)],
)
def test_only_the_tasks_own_run_is_ever_canceled(state: WaitState, own_run: int | None) -> None:
    assert state.own_run == own_run


def test_a_state_crosses_a_deferral_as_json_unchanged() -> None:
    state = WaitState(20, 7, watching=True, skips=2, wait_deadline=1_800_000_000.25, cancel_deadline=None)
    assert WaitState.from_json(json.loads(json.dumps(state.to_json()))) == state


@pytest.mark.parametrize(
    "data",
    [None, [], {}, {"run_id": "x"}, {"run_id": 1, "wait_deadline": "soon"}, {"run_id": 1, "skips": None}],
)
def test_an_unreadable_state_is_a_value_error_that_says_so(data: object) -> None:
    with pytest.raises(ValueError, match="wait state"):
        WaitState.from_json(data)
