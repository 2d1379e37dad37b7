"""The emulator's request limit per token (issue 21): 429 with Retry-After beyond N a second, counted.

Over real HTTP on 127.0.0.1, against emulators the tests start. Nothing here depends on how fast
the machine is: the limit is checked as a table on its own clock, and over HTTP only what holds
at any speed (what was accepted never exceeds the limit; a client that waits for Retry-After is
accepted).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_census.testing import CensusEmulator
from airflow_provider_census.testing.ratelimit import RateLimit, busiest_window
from tests import emulator_cli

pytest_plugins = ["pytester"]

ENOUGH = 500
"""Requests sent at once until one is refused: far more than any limit a test sets gets through in a second."""


@pytest.fixture
def emu() -> Iterator[CensusEmulator]:
    with CensusEmulator(rate_limit=3) as emulator:
        yield emulator


def get(
    emu: CensusEmulator, path: str = "/syncs/60", version: str = "v1", token: str | None = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or emu.token_for(version)}"}
    return requests.get(emu.api_base_url(version) + path, headers=headers, timeout=10)


def until_refused(emu: CensusEmulator, version: str = "v1") -> requests.Response:
    """Requests one after another until the limit refuses one; that one."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {emu.token_for(version)}"
        for _ in range(ENOUGH):
            response = session.get(emu.api_base_url(version) + "/syncs/60", timeout=10)
            if response.status_code == 429:
                return response
    raise AssertionError(f"{ENOUGH} requests in a row were all accepted")


# -- the limit on its own clock ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrivals", "answers"),
    [
        # (token, seconds) -> None (accepted) or the Retry-After
        ([("a", 0.0), ("a", 0.1), ("a", 0.2)], [None, None, 1]),
        ([("a", 0.0), ("a", 0.1), ("a", 0.99), ("a", 1.0), ("a", 1.05)], [None, None, 1, None, 1]),
        ([("a", 0.0), ("a", 0.0), ("b", 0.0), ("b", 0.5)], [None, None, None, None]),  # per token
        ([("a", 0.0), ("a", 0.5), ("a", 0.6), ("a", 1.5), ("a", 1.6), ("a", 1.7)], [None, None, 1, None, None, 1]),
    ],
)
def test_the_limit_counts_accepted_requests_per_token_in_a_sliding_second(
    arrivals: list[tuple[str, float]], answers: list[int | None]
) -> None:
    limit = RateLimit(2)
    assert [limit.admit(token, moment) for token, moment in arrivals] == answers
    assert limit.refused == answers.count(1)


def test_retry_after_is_whole_seconds_until_a_place_frees() -> None:
    limit = RateLimit(1)
    assert limit.admit("a", 10.0) is None
    assert limit.admit("a", 10.0) == 1
    assert RateLimit(None).admit("a", 0.0) is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_a_limit_must_be_a_whole_number_of_requests(bad: Any) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        RateLimit(bad)
    with pytest.raises(ValueError, match="rate_limit"):
        CensusEmulator(rate_limit=bad)


@pytest.mark.parametrize(
    ("moments", "busiest"),
    [([], 0), ([0.0], 1), ([0.0, 0.5, 0.99], 3), ([0.0, 1.0], 1), ([1.4, 0.0, 1.0, 0.5], 3), ([5.0] * 4, 4)],
)
def test_busiest_window(moments: list[float], busiest: int) -> None:
    assert busiest_window(moments) == busiest


# -- over HTTP -----------------------------------------------------------------------------------


def test_beyond_the_limit_census_answers_429_with_retry_after_in_seconds(emu: CensusEmulator) -> None:
    refused = until_refused(emu)
    assert refused.json() == {"status": "error", "message": "Too many requests. Please retry later."}
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after >= 1
    answered = [request for request in emu.requests if request.status == 200]
    assert busiest_window(request.started_at for request in answered) <= 3
    limited = [request for request in emu.requests if request.fault == "rate_limit"]
    assert len(limited) == emu.rate_limited >= 1
    assert {request.status for request in limited} == {429}
    time.sleep(retry_after)  # a client that honours Retry-After is accepted
    assert get(emu).status_code == 200


def test_each_token_has_its_own_limit_and_a_wrong_token_never_counts(emu: CensusEmulator) -> None:
    for _ in range(5):
        assert get(emu, token="not-the-token").status_code == 401
    assert emu.rate_limited == 0
    until_refused(emu, "v1")
    assert get(emu, "/syncs/60", "v2").status_code == 200


def test_the_limit_can_change_while_serving(emu: CensusEmulator) -> None:
    until_refused(emu)
    emu.rate_limit = None
    assert emu.rate_limit is None
    refused = emu.rate_limited
    assert [get(emu).status_code for _ in range(10)] == [200] * 10
    assert emu.rate_limited == refused


def test_busiest_second_is_what_the_client_sent() -> None:
    with CensusEmulator() as emulator:
        for _ in range(4):
            assert get(emulator).status_code == 200
        assert 1 <= emulator.busiest_second("GET", "/syncs/60") <= 4
        assert emulator.busiest_second("POST") == 0
        assert emulator.rate_limited == 0


def test_command_line_rate_limit_and_history_runs() -> None:
    with emulator_cli.controlled("--rate-limit", "2") as emulator:
        headers = {"Authorization": f"Bearer {emulator.token}"}
        model = {"median": 30.0, "spread": 0.1, "seed": 3}
        sync_id = emulator.command({"call": "history_sync", "model": model, "history": 6})["sync_id"]
        started = emulator.command({"call": "trigger", "sync_id": sync_id})
        assert started["ends_at"] > time.time()
        with requests.Session() as session:
            statuses = [session.get(f"{emulator.base_url}/syncs/{sync_id}/sync_runs", headers=headers, timeout=10)
                        for _ in range(ENOUGH)]  # fmt: skip
            listed = statuses[0].json()["data"]
        assert listed[0]["id"] == started["run_id"]
        assert [run["status"] for run in listed[1:]] == ["completed"] * 6
        refused = sum(response.status_code == 429 for response in statuses)
        assert emulator.command({"call": "requests"})["rate_limited"] == refused >= 1


def test_command_line_refuses_a_limit_below_one() -> None:
    result = emulator_cli.refusal("--rate-limit", "0")
    assert result.returncode == 2
    assert "--rate-limit" in result.stderr


def test_pytest_fixture_sets_the_limit(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import requests


        @pytest.fixture
        def census_rate_limit():
            return 1


        def test_limited(census_emulator):
            assert census_emulator.rate_limit == 1
            headers = {"Authorization": f"Bearer {census_emulator.token}"}
            with requests.Session() as session:
                statuses = {session.get(census_emulator.base_url + "/syncs/60", headers=headers).status_code
                            for _ in range(500)}
            assert 429 in statuses
            assert census_emulator.rate_limited >= 1
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("-p", "airflow_provider_census.testing.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
