"""The request budget wired in (issue 21): one per token and process, spent by tasks and triggers alike.

Through the public surface (the hooks, the triggers' ``run()``) over real HTTP to emulators the
tests start on 127.0.0.1. What went where is read back from the emulator, which counts every
request in its one-second windows (``busiest_second``, ``rate_limited``), and from the gate's own
state and counters; no test asserts how fast anything went.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from airflow_provider_census.api import budget_gate
from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api.budget import Priority
from airflow_provider_census.api.budget_gate import BudgetGate
from airflow_provider_census.api.errors import CensusConfigurationError, CensusRateLimitError
from airflow_provider_census.api.retry import ONE_TRY, RetryPolicy
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.hooks.census_async import CensusAsyncHook
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.testing.ratelimit import busiest_window
from airflow_provider_census.triggers.census import CensusSyncRunTrigger

VERSION = "v2"
WAITS = 50
QUICK_POLL = 0.05
NEVER_ENDS = RunScript(outcome="never")
GUARD_SECONDS = 60.0
"""How long a condition may take before the test gives up on it: a safety net, not an assertion."""


def connect(
    monkeypatch: pytest.MonkeyPatch,
    emulator: CensusEmulator,
    conn_id: str = "census_default",
    token: str | None = None,
    **extra: Any,
) -> None:
    """Point Airflow connection ``conn_id`` at the emulator's V2, with these extras."""
    extra = {"base_url": emulator.api_base_url(VERSION), "api_version": VERSION, **extra}
    conn = {"conn_type": "census", "password": token or emulator.token_for(VERSION), "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def only_gate() -> BudgetGate:
    """The one gate the test's requests made (one token, one base URL)."""
    gates = budget_gate.gates()
    assert len(gates) == 1, gates
    return gates[0]


async def wait_until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (a safety net gives up after a minute)."""
    give_up_at = time.monotonic() + GUARD_SECONDS
    while not condition():
        assert time.monotonic() < give_up_at, "the condition never came true"
        await asyncio.sleep(0.01)


def paths_of(emulator: CensusEmulator, since: int = 0) -> list[str]:
    return [f"{request.method} {request.api_path}" for request in emulator.requests[since:]]


@asynccontextmanager
async def waiting(runs: list[int]) -> AsyncIterator[list[asyncio.Future[Any]]]:
    """A trigger per run, each running in this event loop as a triggerer runs it, stopped at the end."""
    triggers = [
        CensusSyncRunTrigger(
            run, poll_interval=QUICK_POLL, max_poll_failures=10**6, wait_deadline=time.time() + 2 * GUARD_SECONDS
        )
        for run in runs
    ]
    tasks = [asyncio.ensure_future(trigger.run().__anext__()) for trigger in triggers]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def never_ending_runs(emulator: CensusEmulator, count: int) -> list[int]:
    return [emulator.trigger(emulator.add_sync(NEVER_ENDS)) for _ in range(count)]


# -- nothing limits: no budget cost ------------------------------------------------------------


async def test_without_a_limit_every_request_takes_its_slot_at_once(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 triggers in one loop and a task's read, no 429 ever: every slot was taken the moment it was asked for."""
    connect(monkeypatch, census_emulator)
    runs = [census_emulator.trigger(census_emulator.add_sync()) for _ in range(WAITS)]
    async with waiting(runs) as tasks:
        events = await asyncio.gather(*tasks)
    assert [event.payload["status"] for event in events] == ["finished"] * WAITS
    await asyncio.to_thread(CensusHook().get_sync_run, runs[0])

    gate = only_gate()
    sent = len(census_emulator.requests)
    assert sent > WAITS
    assert (gate.taken_at_once, gate.taken_after_waiting, gate.waiting) == (sent, 0, 0)
    assert gate.budget.rate is None
    assert gate.budget.next_at == gate.budget.paused_until == -math.inf


def test_request_budget_off_sends_without_any_gate(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, census_emulator, request_budget="off")
    sync_id = census_emulator.add_sync()
    census_emulator.fail_next("429", count=1, method="GET", path_prefix=f"/syncs/{sync_id}", retry_after=0.01)
    hook = CensusHook(retry_policy=RetryPolicy(max_attempts=2))
    assert hook.get_sync(sync_id).id == sync_id
    assert [request.status for request in census_emulator.requests] == [429, 200]
    assert budget_gate.gates() == []


# -- an explicit cap ---------------------------------------------------------------------------------


async def test_an_explicit_cap_holds_in_every_second_for_tasks_and_triggers_together(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads from worker threads and from an event loop at once: one budget, never more than the cap a second."""
    cap = 10
    connect(monkeypatch, census_emulator, max_requests_per_second=cap)
    sync_id = census_emulator.add_sync()
    hook = CensusHook()
    assert hook.client.settings.request_cap == cap  # read before the threads share the hook
    async with CensusAsyncHook() as async_hook:
        in_threads = [asyncio.to_thread(hook.get_sync, sync_id) for _ in range(12)]
        in_loop = [async_hook.arun(ep.GET_SYNC, sync_id=sync_id) for _ in range(12)]
        answers = await asyncio.gather(*in_threads, *in_loop)

    assert [sync.id for sync in answers] == [sync_id] * 24
    assert len(census_emulator.requests) == 24
    assert census_emulator.busiest_second() <= cap
    gate = only_gate()
    assert gate.budget.rate == cap
    assert gate.taken_after_waiting > 0


# -- a 429 slows every wait on the token -------------------------------------------------------------


async def test_a_429_to_one_wait_holds_every_wait_on_the_token(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One wait of 50 is refused once: the other 49, which were not, line up at the gate for its Retry-After.

    The pause is long (the test ends as soon as the 49 wait; it waits the pause out only if they never
    do): each of 50 waits reaches the gate at its next poll, which on a busy machine can take seconds.
    """
    connect(monkeypatch, census_emulator)
    runs = never_ending_runs(census_emulator, WAITS)
    async with waiting(runs):
        await wait_until(lambda: all(census_emulator.reads_of(run) for run in runs))
        gate = only_gate()
        assert gate.budget.rate is None
        census_emulator.fail_next(
            "429", count=1, method="GET", path_prefix=f"/sync_runs/{runs[0]}", retry_after=GUARD_SECONDS / 2
        )
        await wait_until(lambda: gate.budget.lesson is not None)
        await wait_until(lambda: gate.waiting >= WAITS - 1 or time.monotonic() >= gate.budget.paused_until)
        held = gate.waiting
        refused = [request for request in census_emulator.requests if request.status == 429]

    assert held >= WAITS - 1, "every wait's next poll waits out the pause, not only the refused one's"
    assert len(refused) == 1


@pytest.mark.parametrize("census_rate_limit", [5])
async def test_after_the_first_429s_every_wait_keeps_to_the_limit_census_taught(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch, census_rate_limit: int
) -> None:
    """50 waits polling far faster than Census allows: once the budget learned, no more refusals, and no excess."""
    connect(monkeypatch, census_emulator)
    runs = never_ending_runs(census_emulator, WAITS)
    async with waiting(runs):
        await wait_until(lambda: census_emulator.rate_limited > 0)
        gate = only_gate()

        def learned() -> bool:
            return gate.budget.lesson is not None and time.monotonic() > gate.budget.paused_until

        await wait_until(learned)
        refused, seen = census_emulator.rate_limited, len(census_emulator.requests)
        await wait_until(lambda: len(census_emulator.requests) >= seen + 3 * census_rate_limit)
        after = census_emulator.requests[seen:]

    assert census_emulator.rate_limited == refused, "refusals stopped growing"
    assert busiest_window(request.started_at for request in after) <= census_rate_limit
    assert {request.status for request in after} == {200}


# -- priorities ---------------------------------------------------------------------------------------


def test_each_request_takes_its_place_in_line(census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triggers, the looks at the sync's runs before them, cancels and a run's final read are urgent; polls routine."""
    connect(monkeypatch, census_emulator)
    taken: list[Priority] = []
    slot = BudgetGate.slot

    def recording(gate: BudgetGate, priority: Priority = Priority.ROUTINE) -> budget_gate.Slot:
        taken.append(priority)
        return slot(gate, priority)

    monkeypatch.setattr(BudgetGate, "slot", recording)
    sync_id = census_emulator.add_sync(NEVER_ENDS)
    hook = CensusHook()
    run = hook.trigger_sync_run(sync_id)
    hook.get_sync_run(run)
    hook.get_sync_run(run, urgent=True)
    hook.cancel_sync_run(run)

    async def from_a_trigger() -> None:
        async with CensusAsyncHook() as async_hook:
            await async_hook.aget_sync_run(run)
            await async_hook.aget_sync_run(run, urgent=True)
            await async_hook.acancel_sync_run(run)

    asyncio.run(from_a_trigger())
    routine, urgent = Priority.ROUTINE, Priority.URGENT
    read, cancel = f"GET /sync_runs/{run}", f"POST /sync_runs/{run}/cancel"
    assert list(zip(paths_of(census_emulator), taken, strict=True)) == [
        (f"GET /syncs/{sync_id}/sync_runs", urgent),
        (f"POST /syncs/{sync_id}/trigger", urgent),
        (read, routine),
        (read, urgent),
        (cancel, urgent),
        (read, routine),
        (read, urgent),
        (cancel, urgent),
    ]


@pytest.mark.parametrize("urgent", ["cancel", "final read", "final read in a task"])
async def test_urgent_requests_pass_the_polls_waiting_at_the_gate(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch, urgent: str
) -> None:
    """While a 429's pause holds, polls line up; an urgent request asked for after them goes first."""
    connect(monkeypatch, census_emulator)
    sync_id = census_emulator.add_sync(NEVER_ENDS)
    run = census_emulator.trigger(sync_id)
    census_emulator.fail_next("429", count=1, method="GET", path_prefix=f"/syncs/{sync_id}", retry_after=2)
    async with CensusAsyncHook(retry_policy=ONE_TRY) as async_hook:
        with pytest.raises(CensusRateLimitError):
            await async_hook.arun(ep.GET_SYNC, sync_id=sync_id)
        gate, since = only_gate(), len(census_emulator.requests)
        polls = [asyncio.ensure_future(async_hook.aget_sync_run(run)) for _ in range(3)]
        await wait_until(lambda: gate.waiting == len(polls))
        calls: dict[str, Callable[[], Any]] = {
            "cancel": lambda: async_hook.acancel_sync_run(run),
            "final read": lambda: async_hook.aget_sync_run(run, urgent=True),
            "final read in a task": lambda: asyncio.to_thread(CensusHook().get_sync_run, run, urgent=True),
        }
        await calls[urgent]()
        first_after_the_pause = paths_of(census_emulator, since)
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)

    expected = f"POST /sync_runs/{run}/cancel" if urgent == "cancel" else f"GET /sync_runs/{run}"
    assert first_after_the_pause == [expected]
    assert gate.waiting == 0


# -- retries and the never-twice trigger ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_429_retried_by_the_policy_waits_out_its_retry_after_once_at_the_gate(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    connect(monkeypatch, census_emulator)
    sync_id = census_emulator.add_sync()
    census_emulator.fail_next("429", count=1, method="GET", path_prefix=f"/syncs/{sync_id}", retry_after=0.5)
    policy = RetryPolicy(max_attempts=3)

    async def in_a_loop() -> Any:
        async with CensusAsyncHook(retry_policy=policy) as async_hook:
            return await async_hook.arun(ep.GET_SYNC, sync_id=sync_id)

    with caplog.at_level(logging.INFO, logger="airflow_provider_census"):
        sync = CensusHook(retry_policy=policy).get_sync(sync_id) if transport == "sync" else asyncio.run(in_a_loop())

    assert sync.id == sync_id
    limited, answered = census_emulator.requests
    assert (limited.status, answered.status) == (429, 200)
    assert answered.started_at >= limited.finished_at + 0.5  # the gate held the retry for Retry-After...
    assert "once the request budget's pause ends" in caplog.text  # ...and the policy itself did not wait too
    gate = only_gate()
    assert (gate.taken_at_once, gate.taken_after_waiting) == (1, 1)


def test_a_trigger_refused_with_429_is_resent_through_the_gate_and_starts_one_run(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, census_emulator)
    sync_id = census_emulator.add_sync(NEVER_ENDS)
    trigger = f"/syncs/{sync_id}/trigger"
    census_emulator.fail_next("429", count=1, method="POST", path_prefix=trigger, retry_after=0.2)
    run = CensusHook().trigger_sync_run(sync_id)
    assert [post.status for post in census_emulator.requests_for("POST", trigger)] == [429, 200]
    assert [found["id"] for found in census_emulator.runs_of(sync_id)] == [run]
    gate = only_gate()
    assert gate.budget.lesson is not None
    assert gate.taken_after_waiting == 1  # the resent trigger waited its turn


# -- tokens --------------------------------------------------------------------------------------------


async def test_two_tokens_have_budgets_of_their_own_and_neither_is_ever_shown(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = census_emulator.token_for(VERSION), "pat-of-another-team-0123456789"
    connect(monkeypatch, census_emulator, "census_a")
    connect(monkeypatch, census_emulator, "census_b", token=second)
    sync_id = census_emulator.add_sync()
    census_emulator.fail_next("429", count=1, method="GET", path_prefix=f"/syncs/{sync_id}", retry_after=0.2)
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_census"):
        with pytest.raises(CensusRateLimitError) as refused:
            await asyncio.to_thread(CensusHook("census_a", retry_policy=ONE_TRY).get_sync, sync_id)
        census_emulator.rotate_token(VERSION, second)
        async with CensusAsyncHook("census_b") as other:
            await asyncio.gather(*[other.arun(ep.GET_SYNC, sync_id=sync_id) for _ in range(10)])

    base_url = census_emulator.api_base_url(VERSION)
    gates = {gate.key.token_fingerprint: gate for gate in budget_gate.gates()}
    limited, free = gates[budget_gate.token_fingerprint(first)], gates[budget_gate.token_fingerprint(second)]
    assert len(gates) == 2
    assert limited.key.base_url == free.key.base_url == base_url
    assert limited.budget.lesson is not None
    assert free.budget.rate is None
    assert (free.taken_at_once, free.taken_after_waiting) == (10, 0)
    shown = [caplog.text, str(refused.value), repr(refused.value)]
    shown += [text for gate in gates.values() for text in (repr(gate), str(gate.key), repr(gate.key))]
    assert "answered 429" in caplog.text
    for token in (first, second):
        assert not [text for text in shown if token in text]


# -- the connection's extras ---------------------------------------------------------------------------


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    def read(**extra: Any) -> Any:
        conn = {"conn_type": "census", "password": "pat", "extra": {"api_version": "v2", **extra}}
        monkeypatch.setenv("AIRFLOW_CONN_CENSUS_DEFAULT", json.dumps(conn))
        return CensusHook().settings

    yield read


@pytest.mark.parametrize(
    ("extra", "budget", "cap"),
    [
        ({}, "learn", None),
        ({"request_budget": " Learn "}, "learn", None),
        ({"request_budget": "OFF"}, "off", None),
        ({"max_requests_per_second": 5}, "learn", 5.0),
        ({"max_requests_per_second": "2.5"}, "learn", 2.5),
        ({"max_requests_per_second": ""}, "learn", None),
        ({"extra__census__max_requests_per_second": "0.5"}, "learn", 0.5),
    ],
)
def test_the_extras_choose_the_budget(
    settings_of: Callable[..., Any], extra: dict[str, Any], budget: str, cap: float | None
) -> None:
    settings = settings_of(**extra)
    assert (settings.request_budget, settings.request_cap) == (budget, cap)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"max_requests_per_second": "fast"}, "max_requests_per_second 'fast'; put a positive number"),
        ({"max_requests_per_second": 0}, "max_requests_per_second 0; put a positive number"),
        ({"max_requests_per_second": -2}, "max_requests_per_second -2; put a positive number"),
        ({"max_requests_per_second": "inf"}, "max_requests_per_second 'inf'; put a positive number"),
        ({"max_requests_per_second": True}, "max_requests_per_second True; put a positive number"),
        ({"request_budget": "sometimes"}, "request_budget 'sometimes'; use learn"),
        ({"request_budget": "off", "max_requests_per_second": 3}, "a cap needs the budget"),
    ],
)
def test_bad_extras_say_what_to_put_there(settings_of: Callable[..., Any], extra: dict[str, Any], said: str) -> None:
    with pytest.raises(CensusConfigurationError, match="census_default") as refused:
        settings_of(**extra)
    assert said in str(refused.value)
