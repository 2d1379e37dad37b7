"""How fast requests may go to Census on one token: a request budget as pure state (issue 21).

No I/O, no clock, no asyncio and no Airflow here: every method takes the time (``now``, seconds
of any monotonic clock) and returns a new :class:`Budget`. A gate per connection and process
(``api/budget_gate.py``) holds one, asks it when the next request may go, and tells it what
Census answered.

It learns Census's limit the way TCP learns a path's capacity (AIMD):

- **No cap until Census answers 429.** A deployment that never meets a limit sends every request
  the moment it is asked for, exactly as without a budget.
- **A 429 shrinks the rate for everyone on the token at once**: to :attr:`BudgetRules.decrease`
  of the rate requests were going at, and everyone pauses until ``now + Retry-After`` (capped at
  :attr:`BudgetRules.max_pause`, as a wait caps it). It is honoured once: the other 429s of
  requests sent before that moment answer the same overload and change nothing.
- **Answers that are not 429 grow the rate back slowly**, by :attr:`BudgetRules.recovery` of the
  rate set at the 429 per second, and past :attr:`BudgetRules.release` times that rate the
  learned limit is forgotten: uncapped again, until the next 429.
- **An explicit cap** (requests per second, from the connection) bounds the rate at all times,
  for teams that share a token and know their share.

Requests under a rate are paced evenly, one every ``1 / rate`` seconds and a little more
(:attr:`BudgetRules.headroom`), never in bursts. Which
waiting request takes the next slot is the :class:`Priority`'s: urgent first, then routine, each
in the order they came.

This module imports nothing of the provider, so that the transports in ``api/`` can use it
without depending on the rest of ``core/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import IntEnum

_NEVER = -math.inf
WINDOW_SECONDS = 1.0
"""The sending rate a 429 shrinks is counted over windows this long."""


class Priority(IntEnum):
    """Which waiting request goes first when requests must wait: the lower value."""

    URGENT = 0
    """A trigger, a cancel, a run's final read: a task or a user waits on it."""
    ROUTINE = 1
    """A poll of a run still going: the next one comes anyway, so it gives way."""


@dataclass(frozen=True)
class BudgetRules:
    """How the budget reacts; rates in requests per second.

    :param cap: an explicit limit (None: only what Census teaches).
    :param decrease: the share of the sending rate kept after a 429.
    :param recovery: the share of the rate set at a 429 added back per second of answers without one.
    :param release: the learned limit is forgotten once the rate grew to this many times the rate set at a 429.
    :param floor: the rate never falls below this (one request every 5 s by default).
    :param max_pause: the longest ``Retry-After`` waited for in full, in seconds (as
        ``core.wait.MAX_RETRY_AFTER_SECONDS`` for one wait).
    :param headroom: requests under a rate are spaced this share wider than ``1 / rate``: paced
        exactly, ``rate + 1`` requests span exactly one second, and the network's jitter between
        here and Census could put them all into one second where Census counts (a cap set to
        Census's limit would then meet 429s).
    """

    cap: float | None = None
    decrease: float = 0.5
    recovery: float = 0.02
    release: float = 2.0
    floor: float = 0.2
    max_pause: float = 300.0
    headroom: float = 0.1

    def __post_init__(self) -> None:
        """Refuse rules that cannot work, where they are written (a connection extra, a test)."""
        if self.cap is not None and self.cap <= 0:
            raise ValueError(f"a request cap must be a positive number of requests per second, not {self.cap}")
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, not {self.decrease}")
        if self.recovery <= 0 or self.release <= 1 or self.floor <= 0 or self.max_pause < 0:
            raise ValueError("recovery and floor must be positive, release above 1, max_pause not negative")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"headroom must be at least 0 and below 1, not {self.headroom}")


@dataclass(frozen=True)
class Budget:
    """What the budget of one token knows; start with ``Budget()`` or ``Budget(BudgetRules(cap=...))``.

    ``learned`` is the rate Census taught (None: no 429 yet, or forgotten since); ``limited_rate``
    the rate set at the last 429 and ``limited_at`` when. ``next_at`` is the earliest the next
    request may go by the pacing, ``paused_until`` the end of a ``Retry-After``. Requests sent
    are counted per window (``window_start``, ``window_sent``, ``previous_sent``).
    """

    rules: BudgetRules = BudgetRules()
    learned: float | None = None
    limited_rate: float | None = None
    limited_at: float = _NEVER
    grown_at: float = _NEVER
    paused_until: float = _NEVER
    next_at: float = _NEVER
    window_start: float = _NEVER
    window_sent: int = 0
    previous_sent: int = 0

    @property
    def rate(self) -> float | None:
        """Requests per second allowed now: the lower of the learned limit and the cap; None: no limit."""
        limits = [limit for limit in (self.learned, self.rules.cap) if limit is not None]
        return min(limits, default=None)

    def next_slot(self, now: float) -> float:
        """The earliest moment the next request may go: ``now`` when nothing holds it back."""
        return max(now, self.paused_until, self.next_at)

    def sent(self, now: float) -> Budget:
        """A request went at ``now``: the next waits its turn under the rate, and it is counted."""
        rate = self.rate
        next_at = _NEVER if rate is None else max(self.next_at, now) + (1.0 + self.rules.headroom) / rate
        counted = self._rolled(now)
        return replace(counted, next_at=next_at, window_sent=counted.window_sent + 1)

    def sending_rate(self, now: float) -> int:
        """Requests sent in the last whole window, or in the current one if more: the rate a 429 answers."""
        counted = self._rolled(now)
        return max(counted.previous_sent, counted.window_sent)

    def on_limited(self, now: float, retry_after: float | None, sent_at: float) -> Budget:
        """Census answered 429 at ``now`` to a request sent at ``sent_at``, asking for ``retry_after`` seconds.

        A request sent before the last 429 was acted on met the same overload: nothing changes.
        Otherwise the rate shrinks and everyone pauses.
        """
        if sent_at < self.limited_at:
            return self
        going = max(float(self.sending_rate(now)), self.rules.floor)
        rate = self.rate
        shrunk = max(self.rules.floor, self.rules.decrease * (going if rate is None else min(rate, going)))
        paused_until = max(self.paused_until, now + min(retry_after or 0.0, self.rules.max_pause))
        return replace(
            self,
            learned=shrunk,
            limited_rate=shrunk,
            limited_at=now,
            grown_at=paused_until,
            paused_until=paused_until,
        )

    def on_ok(self, now: float) -> Budget:
        """Census answered without a 429: the learned rate grows, and is forgotten once far above the 429's."""
        if self.learned is None or self.limited_rate is None or now <= self.grown_at:
            return self
        grown = self.learned + self.rules.recovery * self.limited_rate * (now - self.grown_at)
        if grown >= self.rules.release * self.limited_rate:
            return replace(self, learned=None, limited_rate=None, grown_at=now)
        return replace(self, learned=grown, grown_at=now)

    def _rolled(self, now: float) -> Budget:
        """The counts with the window moved on to the one ``now`` falls in."""
        elapsed = now - self.window_start
        if elapsed < WINDOW_SECONDS:
            return self
        previous = self.window_sent if elapsed < 2 * WINDOW_SECONDS else 0
        return replace(self, window_start=now, window_sent=0, previous_sent=previous)
