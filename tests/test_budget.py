"""The request budget: the pure state table by table (api/budget.py), and its gate (api/budget_gate.py).

The gate's tests run on a clock of their own: it stands still while requests line up, then
moves on, so the order in which they go is decided by the gate alone, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import threading
import time
from dataclasses import replace

import pytest
import requests

from airflow_provider_census.api.budget import BUCKET_SECONDS, WINDOW_SECONDS, Budget, BudgetRules, Priority
from airflow_provider_census.api.budget_gate import BudgetGate, GateKey, gate_for, token_fingerprint
from airflow_provider_census.api.errors import CensusRateLimitError, CensusServerError
from airflow_provider_census.core.wait import MAX_RETRY_AFTER_SECONDS

TOKEN = "secret-token:budget-test"


def sent_at(budget: Budget, *moments: float) -> Budget:
    for moment in moments:
        budget = budget.sent(moment)
    return budget


def ten_a_second() -> Budget:
    """A budget that sent ten requests in its first second; Census let six through, then answered 429, Retry-After 2."""
    busy = sent_at(Budget(), *(i / 10 for i in range(10)))
    for moment in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):
        busy = busy.on_ok(moment + 0.05, sent_at=moment)
    return busy.on_limited(1.0, 2.0, sent_at=0.9)


# -- the pure budget -------------------------------------------------------------------------


def test_no_limit_until_census_sets_one() -> None:
    budget = sent_at(Budget(), 0.0, 0.0, 0.0, 0.001)
    assert budget.rate is None
    assert budget.next_slot(0.001) == 0.001  # as many as asked, at once: polling as without a budget
    assert budget.sending_rate(0.5) == 4


@pytest.mark.parametrize(
    ("moments", "now", "next_slot"),
    [
        ([], 5.0, 5.0),
        ([0.0], 0.0, 0.25),  # one every quarter second
        ([0.0, 0.25], 0.3, 0.5),
        ([0.0, 0.0, 0.0], 0.0, 0.75),  # asked together, paced anyway: no burst
        ([0.0], 10.0, 10.0),  # after a quiet spell, at once
    ],
)
def test_an_explicit_cap_paces_requests(moments: list[float], now: float, next_slot: float) -> None:
    budget = sent_at(Budget(BudgetRules(cap=4.0, headroom=0.0)), *moments)
    assert budget.rate == 4.0
    assert budget.next_slot(now) == pytest.approx(next_slot)


def test_paced_requests_keep_a_headroom_so_jitter_cannot_bunch_one_too_many_into_a_second() -> None:
    budget = sent_at(Budget(BudgetRules(cap=4.0)), 0.0, 0.0, 0.0, 0.0)
    assert BudgetRules().headroom == 0.1
    assert budget.next_slot(0.0) == pytest.approx(4 * 1.1 / 4)  # the fifth: 1.1 s after the first


def test_a_429_sets_the_rate_to_what_census_let_through_in_the_second_before_and_pauses_everyone() -> None:
    budget = ten_a_second()
    assert (budget.rate, budget.admitted) == (6.0, 6)
    assert (budget.limited_at, budget.paused_until) == (1.0, 3.0)
    assert budget.next_slot(1.5) == 3.0
    assert budget.next_slot(3.0) == 3.0


def test_answers_that_come_after_the_429_to_requests_of_the_second_before_raise_its_lesson() -> None:
    """A 429 can come back before the answers to requests sent just ahead of it: they still count."""
    budget = ten_a_second().on_ok(1.2, sent_at=0.6).on_ok(1.3, sent_at=0.7)
    assert (budget.rate, budget.admitted) == (8.0, 8)
    assert budget.on_ok(1.4, sent_at=1.1).rate == 8.0  # a request sent after the 429: not of its second


def test_answers_are_counted_by_when_their_request_went_for_two_windows() -> None:
    budget = Budget()
    for moment in (0.5, 0.55, 0.9, 1.5, 2.4):
        budget = budget.on_ok(moment + 3.0, sent_at=moment)
    assert budget.let_through(0.5, 1.0) == 3
    assert budget.let_through(1.0, 2.3) == 1
    later = budget.on_ok(10.0, sent_at=3.0)
    assert later.let_through(0.5, 1.0) == 0  # more than two windows older than the newest: dropped
    assert later.let_through(1.5, 3.1) == 3


@pytest.mark.parametrize("lateness", [0.0, 0.3, 2.5], ids=["in-order", "a-little-late", "some-too-late"])
def test_answers_are_counted_as_a_tally_of_all_of_them_would(lateness: float) -> None:
    """The tally takes shortcuts for answers in the newest bucket; in any order it counts as a full tally."""
    chance = random.Random(21)
    budget, moments = Budget(), []
    for step in range(600):
        moment = max(0.0, step * 0.01 - chance.uniform(0.0, lateness))
        budget, moments = budget.on_ok(step * 0.01, sent_at=moment), [*moments, moment]
        newest = max(math.floor(m / BUCKET_SECONDS) for m in moments)
        kept = [m for m in moments if math.floor(m / BUCKET_SECONDS) > newest - 2 * WINDOW_SECONDS / BUCKET_SECONDS]
        start = chance.uniform(0.0, step * 0.01)
        first, last = math.floor(start / BUCKET_SECONDS), math.floor((start + 1.0) / BUCKET_SECONDS)
        expected = sum(first <= math.floor(m / BUCKET_SECONDS) <= last for m in kept)
        assert budget.let_through(start, start + 1.0) == expected


def test_retry_after_is_honoured_once_for_everyone() -> None:
    """The other 429s of requests sent before the first was acted on answer the same overload."""
    budget = ten_a_second()
    assert budget.on_limited(1.2, 60.0, sent_at=0.95) is budget
    again = budget.sent(3.0).on_limited(3.1, 1.0, sent_at=3.0)  # a request sent after it: a new overload
    assert again.rate == pytest.approx(3.0)  # half of the rate known
    assert again.paused_until == pytest.approx(4.1)


@pytest.mark.parametrize(
    ("retry_after", "paused_until"),
    [(None, 1.0), (0.0, 1.0), (2.5, 3.5), (10_000.0, 1.0 + MAX_RETRY_AFTER_SECONDS)],
)
def test_retry_after_pauses_up_to_the_cap_of_a_wait(retry_after: float | None, paused_until: float) -> None:
    budget = Budget().sent(0.5).on_limited(1.0, retry_after, sent_at=0.5)
    assert budget.paused_until == paused_until
    assert BudgetRules().max_pause == MAX_RETRY_AFTER_SECONDS


def hundred_a_second(rules: BudgetRules | None = None, let_through: int = 0) -> Budget:
    """A budget that sent 100 requests in its first second, ``let_through`` of them answered without a 429."""
    budget = sent_at(Budget(rules or BudgetRules()), *(i / 100 for i in range(100)))
    for i in range(let_through):
        budget = budget.on_ok(0.99, sent_at=i / 100)
    return budget


@pytest.mark.parametrize(
    ("budget", "expected_rate"),
    [
        (Budget(), 0.2),  # nothing sent, nothing let through: the floor
        (hundred_a_second(let_through=30), 30.0),  # what Census let through, however many went
        (hundred_a_second(), 50.0),  # none let through: this 429 measured nothing, half of what went
        (hundred_a_second(BudgetRules(cap=20.0)), 10.0),  # a rate known (the cap): at most halved
        (hundred_a_second(BudgetRules(cap=20.0), let_through=15), 15.0),
        (replace(hundred_a_second(let_through=30), learned=40.0), 30.0),
        (replace(hundred_a_second(let_through=5), learned=40.0), 20.0),  # few counted: half the rate known
        (sent_at(Budget(BudgetRules(floor=3.0)), 0.0), 3.0),
    ],
)
def test_the_rate_after_a_429(budget: Budget, expected_rate: float) -> None:
    assert budget.on_limited(1.0, None, sent_at=0.99).rate == pytest.approx(expected_rate)


def test_what_was_let_through_is_counted_in_the_second_before_the_refused_request_went() -> None:
    """Not before the 429 came back: a busy event loop may read it seconds after its request went."""
    budget = hundred_a_second(let_through=30)
    assert budget.on_limited(5.0, None, sent_at=0.99).rate == 30.0
    later = sent_at(budget, 4.8, 4.9).on_limited(5.0, None, sent_at=4.9)
    assert later.rate == 1.0  # none let through in the second before 4.9: half of the two that went


def test_a_429_just_after_the_pause_halves_the_rate_known_and_does_not_collapse_it() -> None:
    """The first request after a pause meets a 429 (answers of the burst before still fill Census's second):
    one request went in the second before it, none was let through; the rate halves, it does not drop to 0.5."""
    learned = hundred_a_second(let_through=50).on_limited(1.0, 1.0, sent_at=0.99)
    assert learned.rate == 50.0
    again = learned.sent(2.0).on_limited(2.3, 1.0, sent_at=2.0)
    assert again.rate == 25.0


def test_the_rate_stays_near_the_lesson_then_regrows_along_a_cube_and_is_lifted_when_nothing_waits() -> None:
    """While requests wait, a doubled rate starts a new curve from where it is: it keeps growing, never lets go."""
    budget = ten_a_second()  # 6 a second; the pause ends at 3.0
    assert budget.on_ok(2.0, sent_at=1.5).rate == 6.0  # no growth during the pause
    assert budget.on_ok(63.0, sent_at=62.0).rate == pytest.approx(6.0 * 1.008)  # a fifth of 300 s: +0.8 %
    assert budget.on_ok(153.0, sent_at=152.0).rate == pytest.approx(6.0 * 1.125)  # half: +12.5 %
    held = budget.on_ok(303.0, sent_at=302.0, held=True)
    assert held.rate == pytest.approx(12.0)  # doubled, but requests wait: kept, or they would all go at once
    assert held.on_ok(400.0, sent_at=399.0, held=True).rate == pytest.approx(12.0 * (1 + (97 / 300) ** 3))
    assert held.on_ok(304.0, sent_at=303.0).rate == pytest.approx(12.0, rel=1e-6)  # its new curve: flat at first
    lifted = held.on_ok(604.0, sent_at=603.0)  # doubled again, and nothing waits
    assert (lifted.rate, lifted.learned, lifted.lesson) == (None, None, None)
    assert Budget().on_ok(5.0, sent_at=4.0).learned is None


def test_a_cap_bounds_what_was_learned() -> None:
    capped = replace(ten_a_second(), rules=BudgetRules(cap=2.0))
    assert capped.rate == 2.0
    assert replace(capped, rules=BudgetRules(cap=8.0)).rate == 6.0


@pytest.mark.parametrize(
    "rules",
    [
        {"cap": 0.0},
        {"cap": -1.0},
        {"decrease": 1.0},
        {"decrease": 0.0},
        {"regrow_seconds": 0.0},
        {"release": 1.0},
        {"floor": 0.0},
        {"max_pause": -1.0},
        {"headroom": -0.1},
        {"headroom": 1.0},
    ],
)
def test_rules_that_cannot_work_are_refused(rules: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        BudgetRules(**rules)


def test_urgent_requests_come_first() -> None:
    assert sorted([Priority.ROUTINE, Priority.URGENT]) == [Priority.URGENT, Priority.ROUTINE]


# -- the gate ----------------------------------------------------------------------------------


class StandingClock:
    """A clock that stands still until :meth:`move_on`, then advances a little at every reading."""

    def __init__(self) -> None:
        self.now = 0.0
        self.moving = False
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            if self.moving:
                self.now += 0.05
            return self.now

    def move_on(self) -> None:
        self.moving = True


def paused_gate(clock: StandingClock) -> BudgetGate:
    """A gate that met a 429 (Retry-After 0.2 s of its clock): the next requests line up."""
    gate = BudgetGate(GateKey("http://127.0.0.1:1/api/v1", "f" * 12), BudgetRules(floor=50.0), clock=clock)
    with gate.slot() as slot:
        slot.answered(429, 0.2)
    assert gate.budget.paused_until == pytest.approx(0.2)
    return gate


def wait_until_lined_up(gate: BudgetGate, count: int) -> None:
    """Wait (on a thread's schedule, not a clock) until ``count`` requests wait at the gate."""
    while gate.waiting < count:
        time.sleep(0.001)


def test_gate_lets_urgent_requests_go_first_then_routine_in_order_threads() -> None:
    clock = StandingClock()
    gate = paused_gate(clock)
    went: list[tuple[str, float]] = []

    def request(name: str, priority: Priority) -> None:
        with gate.slot(priority) as slot:
            assert slot.sent_at is not None
            went.append((name, slot.sent_at))

    threads = []
    for name, priority in [("poll 1", Priority.ROUTINE), ("poll 2", Priority.ROUTINE), ("trigger", Priority.URGENT)]:
        threads.append(threading.Thread(target=request, args=(name, priority)))
        threads[-1].start()
        wait_until_lined_up(gate, len(threads))
    clock.move_on()
    for thread in threads:
        thread.join()
    assert [name for name, _ in went] == ["trigger", "poll 1", "poll 2"]
    moments = [moment for _, moment in went]
    assert moments[0] >= 0.2  # after the pause
    assert all(later - earlier >= 1 / 50 for earlier, later in itertools.pairwise(moments))


async def test_gate_lets_urgent_requests_go_first_then_routine_in_order_asyncio() -> None:
    clock = StandingClock()
    gate = paused_gate(clock)
    went: list[str] = []

    async def request(name: str, priority: Priority) -> None:
        async with gate.slot(priority):
            went.append(name)

    tasks = []
    for name, priority in [("poll 1", Priority.ROUTINE), ("cancel", Priority.URGENT), ("poll 2", Priority.ROUTINE)]:
        tasks.append(asyncio.ensure_future(request(name, priority)))
        await asyncio.sleep(0)  # the task runs until it waits at the gate
        assert gate.waiting == len(tasks)
    clock.move_on()
    await asyncio.gather(*tasks)
    assert went == ["cancel", "poll 1", "poll 2"]


async def test_a_request_that_gives_up_waiting_leaves_the_line() -> None:
    clock = StandingClock()
    gate = paused_gate(clock)
    given_up = asyncio.ensure_future(gate.slot().__aenter__())
    waiting = asyncio.ensure_future(gate.slot().__aenter__())
    await asyncio.sleep(0)
    assert gate.waiting == 2
    given_up.cancel()
    clock.move_on()
    slot = await waiting
    assert slot.sent_at is not None
    assert given_up.cancelled()
    assert gate.waiting == 0


def test_without_a_limit_a_slot_is_taken_at_once() -> None:
    gate = BudgetGate(GateKey("http://census", "0" * 12), clock=StandingClock())
    with gate.slot() as first, gate.slot() as second:
        assert first.sent_at == second.sent_at == 0.0
    assert gate.waiting == 0
    assert gate.budget.rate is None


@pytest.mark.parametrize(
    ("raised", "learned"),
    [
        (CensusRateLimitError("429", http_status=429, request_label="GET run", retry_after=1.0), True),
        (CensusServerError("503", http_status=503, request_label="GET run"), False),
    ],
)
def test_the_way_out_of_a_slot_reports_a_429(raised: Exception, learned: bool) -> None:
    gate = BudgetGate(GateKey("http://census", "0" * 12), clock=StandingClock())
    with pytest.raises(type(raised)), gate.slot():
        raise raised
    assert (gate.budget.learned is not None) is learned


def test_answers_grow_the_gate_back() -> None:
    clock = StandingClock()
    gate = paused_gate(clock)
    clock.now = 400.0  # the rate doubled (300 s after the pause), and nothing waits
    with gate.slot() as slot:
        slot.answered(200)
        slot.answered(429)  # one answer per request: the first one counts
    assert gate.budget.learned is None


def test_one_gate_per_base_url_and_token_and_the_token_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    gate = gate_for("http://127.0.0.1:9/api/v1/", TOKEN)
    assert gate_for("http://127.0.0.1:9/api/v1", TOKEN) is gate
    assert gate_for("http://127.0.0.1:9/api/v1", TOKEN + "x") is not gate
    assert gate_for("http://127.0.0.1:9/api/v2", TOKEN) is not gate
    assert gate.key.token_fingerprint == token_fingerprint(TOKEN)
    assert len(token_fingerprint(TOKEN)) == 12
    with caplog.at_level(logging.INFO), gate.slot() as slot:
        slot.answered(429, 0.0)
    shown = " ".join([repr(gate), str(gate.key), repr(gate.key), caplog.text])
    assert "answered 429" in caplog.text
    assert TOKEN not in shown
    assert "budget-test" not in shown


def test_connections_of_one_token_keep_to_the_lowest_cap() -> None:
    token = TOKEN + ":caps"
    assert gate_for("http://127.0.0.1:9/api/v1", token, cap=10.0).budget.rate == 10.0
    assert gate_for("http://127.0.0.1:9/api/v1", token, cap=4.0).budget.rate == 4.0
    assert gate_for("http://127.0.0.1:9/api/v1", token, cap=8.0).budget.rate == 4.0
    assert gate_for("http://127.0.0.1:9/api/v1", token).budget.rate == 4.0


def test_the_gate_learns_census_limit_from_the_emulator() -> None:
    """Requests through one gate against a Census limited to 5 a second: the 429s teach it a rate."""
    from airflow_provider_census.testing import CensusEmulator

    with CensusEmulator(rate_limit=5) as emulator, requests.Session() as session:
        gate = BudgetGate(GateKey(emulator.base_url, token_fingerprint(emulator.token)))
        session.headers["Authorization"] = f"Bearer {emulator.token}"
        statuses = []
        for _ in range(15):
            with gate.slot() as slot:
                response = session.get(emulator.base_url + "/syncs/60", timeout=10)
                slot.answered(response.status_code, float(response.headers.get("Retry-After", 0)))
            statuses.append(response.status_code)
        assert statuses.count(429) == emulator.rate_limited >= 1
        assert gate.budget.lesson == 5.0  # one by one: the five Census let through before its 429
        assert gate.budget.paused_until > gate.budget.limited_at  # Retry-After was honoured
