"""One request budget per Census connection and process: the gate requests pass (issue 21).

Every request to one base URL with one token, from every wait of a triggerer (or every thread of
a worker), takes a slot of the same :class:`BudgetGate`, which carries out the pure
:class:`~airflow_provider_census.api.budget.Budget`: it holds requests back only after Census
answered 429 or under an explicit cap, paces them evenly, lets urgent ones go first, and learns
from each answer. Without a limit, a slot is taken at once, under one lock, and nothing waits.

    gate = gate_of(settings)                            # the transport's, once per client
    async with gate.slot(request.priority) as slot:     # or ``with`` in a thread
        answer = await send(request)
        slot.answered(answer.status, answer.retry_after)

The gate is known by the base URL and a fingerprint of the token (:class:`GateKey`): the token
itself is never kept beside it, shown or logged.

Where it is wired: the transports' one-method seam, ``CensusClient._send`` and
``AsyncCensusClient._send``, so a task's requests and a triggerer's spend the same budget. A
connection's extras choose it (``ClientSettings.request_budget``: ``learn`` or ``off``, no gate
at all; ``ClientSettings.request_cap``, an explicit cap). A request's priority comes with it
(``Request.priority``, from its endpoint): URGENT for a trigger and a cancel, and for a run's
final read and a task's look at a sync's runs before it triggers, when its caller asks
(``CensusHook.get_sync_run(..., urgent=True)``, ``aget_sync_run``, ``list_sync_runs``); ROUTINE
for every other read, the polls above all. A 429 retried by the retry policy goes back through
the gate, which holds it until the pause it set for everyone ends; the policy does not wait for
the ``Retry-After`` a second time (``RetryPolicy.retrying(..., paced=True)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType

from airflow_provider_census.api.budget import Budget, BudgetRules, Priority
from airflow_provider_census.api.errors import CensusRateLimitError
from airflow_provider_census.api.settings import BUDGET_OFF, ClientSettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def token_fingerprint(token: str) -> str:
    """Twelve hex digits of the token's SHA-256: tells two tokens apart, and gives neither away."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class GateKey:
    """Which budget a request spends: one per Census base URL and token."""

    base_url: str
    token_fingerprint: str

    def __str__(self) -> str:
        return f"{self.base_url} (token {self.token_fingerprint})"


class _Waiter:
    """A request waiting for its slot, woken when it may be its turn (threads)."""

    def __init__(self) -> None:
        self.cancelled = False
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def sleep(self, timeout: float | None) -> None:
        self._event.wait(timeout)
        self._event.clear()


class _AsyncWaiter(_Waiter):
    """The same in an event loop; it may be woken from another thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._loop.call_soon_threadsafe(self._woken.set)

    async def asleep(self, timeout: float | None) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout)
        self._woken.clear()


class BudgetGate:
    """The budget of one :class:`GateKey` in this process; get it from :func:`gate_for`."""

    def __init__(self, key: GateKey, rules: BudgetRules | None = None, clock: Clock = time.monotonic) -> None:
        self.key = key
        self._clock = clock
        self._lock = threading.Lock()
        self._budget = Budget(rules or RULES)
        self._queue: list[tuple[int, int, _Waiter]] = []
        self._order = itertools.count()
        self.taken_at_once = 0
        """Slots taken the moment they were asked for: every one, while nothing limits the token."""
        self.taken_after_waiting = 0
        """Slots taken after waiting in line: under a cap, a learned limit or a ``Retry-After``."""

    def __repr__(self) -> str:
        return f"BudgetGate({self.key}, rate={self.budget.rate})"

    @property
    def budget(self) -> Budget:
        """The budget as it stands (a frozen snapshot)."""
        with self._lock:
            return self._budget

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now (those that gave up may still be counted until they reach the front)."""
        with self._lock:
            return len(self._queue)

    def limit_to(self, cap: float) -> None:
        """Keep to ``cap`` requests per second, or to the lower cap another connection of the token gave."""
        with self._lock:
            rules = self._budget.rules
            lower = cap if rules.cap is None else min(rules.cap, cap)
            self._budget = replace(self._budget, rules=replace(rules, cap=lower))

    def slot(self, priority: Priority = Priority.ROUTINE) -> Slot:
        """A slot to send one request in: ``with gate.slot(...)`` in a thread, ``async with`` in a loop."""
        return Slot(self, priority)

    # -- taking a slot ----------------------------------------------------------------------

    def _take_at_once(self) -> float | None:
        """The common case: no one waits and nothing holds back; the time sent, or None."""
        with self._lock:
            now = self._clock()
            if self._queue or self._budget.next_slot(now) > now:
                return None
            self._budget = self._budget.sent(now)
            self.taken_at_once += 1
            return now

    def _join(self, waiter: _Waiter, priority: Priority) -> None:
        with self._lock:
            heapq.heappush(self._queue, (int(priority), next(self._order), waiter))

    def _try_take(self, waiter: _Waiter) -> tuple[float | None, float | None]:
        """(the time sent, None) when ``waiter`` may go; else (None, seconds to sleep, None: until woken)."""
        with self._lock:
            if self._head() is not waiter:
                return None, None
            now = self._clock()
            at = self._budget.next_slot(now)
            if at > now:
                return None, at - now
            heapq.heappop(self._queue)
            self._budget = self._budget.sent(now)
            self.taken_after_waiting += 1
            self._wake_head()
            return now, None

    def _leave(self, waiter: _Waiter) -> None:
        """A waiter gave up (cancelled, interrupted): the next one may be first now."""
        with self._lock:
            waiter.cancelled = True
            self._wake_head()

    def _head(self) -> _Waiter | None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0][2] if self._queue else None

    def _wake_head(self) -> None:
        head = self._head()
        if head is not None:
            head.wake()

    def _acquire(self, priority: Priority) -> float:
        sent = self._take_at_once()
        if sent is not None:
            return sent
        waiter = _Waiter()
        self._join(waiter, priority)
        try:
            while True:
                sent, sleep = self._try_take(waiter)
                if sent is not None:
                    return sent
                waiter.sleep(sleep)
        except BaseException:
            self._leave(waiter)
            raise

    async def _aacquire(self, priority: Priority) -> float:
        sent = self._take_at_once()
        if sent is not None:
            return sent
        waiter = _AsyncWaiter(asyncio.get_running_loop())
        self._join(waiter, priority)
        try:
            while True:
                sent, sleep = self._try_take(waiter)
                if sent is not None:
                    return sent
                await waiter.asleep(sleep)
        except BaseException:
            self._leave(waiter)
            raise

    # -- what Census answered -----------------------------------------------------------------

    def _limited(self, retry_after: float | None, sent_at: float) -> None:
        with self._lock:
            before = self._budget
            self._budget = before.on_limited(self._clock(), retry_after, sent_at)
            after = self._budget
        if after is not before:
            log.warning(
                "Census at %s answered 429, having let %d requests through in the second before: requests of "
                "this process on that token now go at most %.2f per second, after a pause of %.1f s",
                self.key,
                after.admitted,
                after.rate or 0.0,
                max(0.0, after.paused_until - after.limited_at),
            )

    def _ok(self, sent_at: float) -> None:
        with self._lock:
            before = self._budget
            self._budget = before.on_ok(self._clock(), sent_at, held=bool(self._queue))
            released = before.learned is not None and self._budget.learned is None
        if released:
            log.info("Census at %s: the rate doubled without a 429 and nothing waits; its limit is lifted", self.key)


class Slot:
    """One request's turn at a gate; say what Census answered with :meth:`answered`.

    Without :meth:`answered`, the way out tells: a :class:`CensusRateLimitError` is a 429, no
    exception an answer; any other exception says nothing of Census's load.
    """

    def __init__(self, gate: BudgetGate, priority: Priority) -> None:
        self.gate = gate
        self.priority = priority
        self.sent_at: float | None = None
        self._reported = False

    def answered(self, status: int, retry_after: float | None = None) -> None:
        """Census answered ``status`` (with this ``Retry-After`` in seconds): a 429 slows the token down."""
        if self.sent_at is None or self._reported:
            return
        self._reported = True
        if status == 429:
            self.gate._limited(retry_after, self.sent_at)
        elif status < 500:
            self.gate._ok(self.sent_at)

    def _close(self, exc: BaseException | None) -> None:
        if isinstance(exc, CensusRateLimitError):
            self.answered(429, exc.retry_after)
        elif exc is None:
            self.answered(200)

    def __enter__(self) -> Slot:
        self.sent_at = self.gate._acquire(self.priority)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._close(exc)

    async def __aenter__(self) -> Slot:
        self.sent_at = await self.gate._aacquire(self.priority)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._close(exc)


_GATES: dict[GateKey, BudgetGate] = {}
_GATES_LOCK = threading.Lock()


RULES = BudgetRules()
"""How every gate of this process reacts (a test suite that provokes 429s on purpose may quicken them)."""


def gate_for(base_url: str, token: str, cap: float | None = None) -> BudgetGate:
    """This process's gate for ``base_url`` and ``token``, made on first use; ``cap`` in requests per second.

    Connections that share a token share its gate; when they give different caps, the lowest holds.
    """
    key = GateKey(base_url.rstrip("/"), token_fingerprint(token))
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = BudgetGate(key)
    if cap is not None:
        gate.limit_to(cap)
    return gate


def gate_of(settings: ClientSettings) -> BudgetGate | None:
    """The gate requests on these settings pass, or None when the connection turned the budget off."""
    if settings.request_budget == BUDGET_OFF:
        return None
    return gate_for(settings.base_url, settings.token, settings.request_cap)


def gates() -> list[BudgetGate]:
    """Every gate this process has made so far (for tests and benchmarks)."""
    with _GATES_LOCK:
        return list(_GATES.values())


def forget() -> None:
    """Drop every gate of this process (for tests: the next emulator may reuse an earlier one's port)."""
    with _GATES_LOCK:
        _GATES.clear()
