from __future__ import annotations

import pytest

from airflow_provider_census.api.states import RunOutcome, classify_run, is_retired_state


@pytest.mark.parametrize(
    ("status", "canceled", "expected"),
    [
        ("queued", False, RunOutcome.IN_PROGRESS),
        ("working", False, RunOutcome.IN_PROGRESS),
        ("completed", False, RunOutcome.SUCCEEDED),
        ("failed", False, RunOutcome.FAILED),
        ("skipped", False, RunOutcome.SKIPPED),
        (" Completed ", False, RunOutcome.SUCCEEDED),
        ("preparing", False, RunOutcome.IN_PROGRESS),
        ("new", False, RunOutcome.IN_PROGRESS),
        ("retrying", False, RunOutcome.IN_PROGRESS),
        ("completed", True, RunOutcome.CANCELED),
        ("working", True, RunOutcome.CANCELED),
        ("failed", True, RunOutcome.CANCELED),
        ("exploded", False, RunOutcome.UNKNOWN),
        ("succeeded", False, RunOutcome.UNKNOWN),
        ("", False, RunOutcome.UNKNOWN),
        (None, False, RunOutcome.UNKNOWN),
        (3, False, RunOutcome.UNKNOWN),
        ("completed", "true", RunOutcome.SUCCEEDED),
        ("completed", None, RunOutcome.SUCCEEDED),
    ],
)
def test_classify_run(status: object, canceled: object, expected: RunOutcome) -> None:
    assert classify_run(status, canceled) is expected


def test_only_finished_outcomes_are_terminal() -> None:
    terminal = {outcome for outcome in RunOutcome if outcome.is_terminal}
    assert terminal == {RunOutcome.SUCCEEDED, RunOutcome.FAILED, RunOutcome.SKIPPED, RunOutcome.CANCELED}


def test_unknown_state_is_never_success() -> None:
    for status in ("complete", "success", "done", "finished", "ok"):
        assert classify_run(status) is not RunOutcome.SUCCEEDED


def test_retired_states_are_recognised() -> None:
    assert is_retired_state("Preparing")
    assert not is_retired_state("working")
