"""The fault matrix: every fault the emulator injects, with every way a run ends, in both waiting modes.

Up to 30% of all requests (seeded, so a failure replays the same way) get the profile's
fault, and the trigger POST gets it for certain. Whatever the faults, the task must end as
the run ended, carry Census's error fields, start exactly one run per try, and wait as long
as each 429's ``Retry-After`` asked. The waits are checked on the emulator's own request
timestamps, not on how long the test took.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pytest

from airflow_provider_census.api.errors import (
    CensusRunCanceledError,
    CensusRunError,
    CensusRunFailedError,
    CensusRunSkippedError,
    CensusTriggerUnconfirmedError,
)
from airflow_provider_census.operators.census import CensusTriggerSyncOperator
from airflow_provider_census.testing import RUN_READS, CensusEmulator, FaultProfile, RecordedRequest, RunScript
from tests.conftest import QUICK_RETRIES
from tests.test_operator import MODES, operator, run_task

pytestmark = pytest.mark.v2_routes

FAULT_RATE = 0.3
FAULT_SEED = 20261123
RETRY_AFTER = 0.2
LATENCY_SPIKE = 0.1
CLOCK_TOLERANCE = 0.001
PATIENCE = 8
"""Tries per call and failed polls in a row allowed: at a 30% fault rate, 8 faults in a row are 1 in 15,000."""
PATIENT_RETRIES = replace(QUICK_RETRIES, max_attempts=PATIENCE)
FAULTS_AFTER_ACTING = frozenset({None, "latency", "drop_after"})
"""Faults with which the emulator still handled the request; every other fault refuses it untouched."""


@dataclass(frozen=True)
class Outcome:
    """A way a run ends: the script that makes the emulator end it so, and what the task must raise."""

    script: RunScript
    error: type[CensusRunError] | None


FAILED = RunScript(
    outcome="failed",
    error_code="MATRIX_ROWS_REJECTED",
    error_message="the destination refused the batch",
    error_detail="column email is null in 3 rows",
)
OUTCOMES = [
    pytest.param(Outcome(RunScript(outcome="completed"), None), id="completed"),
    pytest.param(Outcome(FAILED, CensusRunFailedError), id="failed"),
    pytest.param(Outcome(RunScript(outcome="skipped"), CensusRunSkippedError), id="skipped"),
    pytest.param(Outcome(RunScript(outcome="canceled"), CensusRunCanceledError), id="canceled"),
]
FAULT_KINDS = [
    pytest.param(("429",), id="429-retry-after"),
    pytest.param(("500", "502", "503"), id="5xx-burst"),
    pytest.param(("html",), id="html-error-page"),
    pytest.param(("cut_json",), id="cut-off-json"),
    pytest.param(("empty",), id="empty-body"),
    pytest.param(("latency",), id="latency-spike"),
    pytest.param(("drop",), id="dropped-connection"),
    pytest.param(("drop_after",), id="answer-lost-after-acting"),
]


def inject_faults(census: CensusEmulator, kinds: tuple[str, ...], trigger_path: str) -> None:
    """Fault a seeded share of every request, and the trigger POST for certain, with each kind in turn."""
    # Without "latency" among the kinds, a profile's latency would slow every request, not a few.
    spike = LATENCY_SPIKE if "latency" in kinds else 0.0
    profile = FaultProfile(rate=FAULT_RATE, kinds=kinds, retry_after=RETRY_AFTER, latency=spike, seed=FAULT_SEED)
    census.set_faults(profile)
    for kind in kinds:
        census.fail_next(kind, method="POST", path_prefix=trigger_path, retry_after=RETRY_AFTER, latency=LATENCY_SPIKE)


def patient_operator(sync_id: int, deferrable: bool) -> CensusTriggerSyncOperator:
    """The operator of the operator tests, made patient enough that a seeded streak of faults cannot exhaust it."""
    task = operator(sync_id, deferrable=deferrable, max_poll_failures=PATIENCE)
    task.hook.retry_policy = PATIENT_RETRIES
    return task


def run_outcome(census: CensusEmulator, sync_id: int, deferrable: bool, error: type[CensusRunError] | None) -> int:
    """Run the operator once and return the id of the run it ended with (returned, or named by its error)."""
    if error is None:
        result, _ = run_task(patient_operator(sync_id, deferrable))
        return int(result)
    with pytest.raises(error) as raised:
        run_task(patient_operator(sync_id, deferrable))
    message = str(raised.value)
    assert census.token not in message
    if error is CensusRunFailedError and raised.value.summary.get("error_code") is not None:
        for field in (FAILED.error_code, FAILED.error_message, FAILED.error_detail):
            assert str(field) in message
    return int(raised.value.summary["sync_run_id"])


def acted_on(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    """The requests that the emulator handled, whether or not their answer got back."""
    return [request for request in requests if request.fault in FAULTS_AFTER_ACTING]


def assert_waits_honour_retry_after(requests: list[RecordedRequest]) -> None:
    """Each request after a 429 started no earlier than ``Retry-After`` after that 429 was answered."""
    for refused, following in itertools.pairwise(requests):
        if refused.status == 429:
            waited = following.started_at - refused.finished_at
            assert waited >= RETRY_AFTER - CLOCK_TOLERANCE, (refused, following)


@pytest.mark.parametrize("deferrable", MODES)
@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("kinds", FAULT_KINDS)
def test_task_ends_as_its_run_did_whatever_the_faults(
    census_conn: CensusEmulator, census_v2_routes: str, kinds: tuple[str, ...], outcome: Outcome, deferrable: bool
) -> None:
    sync_id = census_conn.add_sync(outcome.script)
    trigger_path = f"/syncs/{sync_id}/trigger"
    inject_faults(census_conn, kinds, trigger_path)
    documented_only = census_v2_routes == "documented"
    if documented_only and not set(kinds) <= NEVER_ACTED:
        assert_sent_once_when_runs_cannot_be_listed(census_conn, sync_id, deferrable, kinds)
        return
    error = outcome.error
    if documented_only and error is CensusRunCanceledError:
        error = CensusRunFailedError  # read by test_status, which has no `canceled`: the run is its status

    run_id = run_outcome(census_conn, sync_id, deferrable, error)

    (run,) = census_conn.runs_of(sync_id)
    assert run_id == run["id"]
    triggers = census_conn.requests_for("POST", trigger_path)
    assert [request.fault for request in triggers[: len(kinds)]] == list(kinds)
    assert len(acted_on(triggers)) == 1
    if kinds == ("drop_after",):
        assert len(triggers) == 1, "a trigger whose answer was lost must be adopted, not sent again"
    assert_waits_honour_retry_after(census_conn.requests)


NEVER_ACTED = frozenset({"429", "latency"})
"""Trigger faults after which Census surely did not start a run (refused, or only slow): resent safely."""


def assert_sent_once_when_runs_cannot_be_listed(
    census: CensusEmulator, sync_id: int, deferrable: bool, kinds: tuple[str, ...]
) -> None:
    """A trigger that may have acted is never resent where a sync's runs cannot be listed (V2 as documented).

    Nothing could show whether it started a run, so the task fails asking to look in Census.
    """
    with pytest.raises(CensusTriggerUnconfirmedError, match="not sent again"):
        run_task(patient_operator(sync_id, deferrable))
    triggers = census.requests_for("POST", f"/syncs/{sync_id}/trigger")
    assert [request.fault for request in triggers] == [kinds[0]]
    assert len(census.runs_of(sync_id)) == len(acted_on(triggers))


@pytest.mark.parametrize("deferrable", MODES)
def test_first_poll_waits_out_the_rate_limit_that_ended_the_first_look(
    census_conn: CensusEmulator, deferrable: bool
) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed"))
    census_conn.fail_next(
        "429", count=QUICK_RETRIES.max_attempts, method="GET", path_prefix=RUN_READS, retry_after=RETRY_AFTER
    )
    result, _ = run_task(operator(sync_id, deferrable=deferrable))
    assert result == census_conn.runs_of(sync_id)[0]["id"]
    assert [request.status for request in census_conn.requests].count(429) == QUICK_RETRIES.max_attempts
    assert_waits_honour_retry_after(census_conn.requests)
