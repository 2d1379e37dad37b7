"""How fast requests may go to Census on one token: a request budget as pure state (issue 21).

No I/O, no clock, no asyncio and no Airflow here: every method takes the time (``now``, seconds
of any monotonic clock) and returns a new :class:`Budget`. A gate per connection and process
(``api/budget_gate.py``) holds one, asks it when the next request may go, and tells it what
Census answered.

It learns Census's limit the way TCP learns a path's capacity, as CUBIC does:

- **No cap until Census answers 429.** A deployment that never meets a limit sends every request
  the moment it is asked for, exactly as without a budget.
- **A 429 sets the rate for everyone on the token at once, to what Census let through**: the
  requests sent in the second before it that Census answered without a 429 (counted as their
  answers come in, also those that arrive after the 429). That is Census's limit, measured, so
  the rate needs no guess and no second 429 to find it. A 429 meeting a rate already learned
  cuts it to at most :attr:`BudgetRules.decrease` of it, even when few answers were counted.
  Everyone pauses until ``now + Retry-After`` (capped at :attr:`BudgetRules.max_pause`, as a
  wait caps it). It is honoured once: the other 429s of requests sent before that moment
  answer the same overload and change nothing.
- **The rate stays there, then probes for more**: it grows as a cube of the time since the
  pause ended, ``rate * (1 + (t / regrow_seconds) ** 3)``: +0.8 % after a fifth of
  :attr:`BudgetRules.regrow_seconds`, +12.5 % after half of it, twice the rate after all of it. So it
  hardly overshoots a limit it measured, and still finds a limit that was raised. Once it
  doubled (:attr:`BudgetRules.release`) while no request waits, the learned limit is forgotten:
  uncapped again, until the next 429. Forgetting it only when nothing waits means it never
  lets a line of held requests go at once.
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
"""The sending rate a 429 cuts, and what Census let through before it, are counted over windows this long."""
ANSWER_BUCKET_SECONDS = 0.1
"""Answers are counted by when their request went, in buckets this long, kept for two windows."""
_KEPT_BUCKETS = round(2 * WINDOW_SECONDS / ANSWER_BUCKET_SECONDS)


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
    :param decrease: a 429 meeting a learned rate keeps at least this share of it (of the rate
        requests went at, when lower), whatever few answers were counted before it.
    :param regrow_seconds: after a 429 the rate doubles over this many seconds, along a cube
        (flat at first, steep at the end).
    :param release: the learned limit is forgotten once the rate grew to this many times the
        rate set at the 429 and no request waits.
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
    regrow_seconds: float = 300.0
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
        if self.regrow_seconds <= 0 or self.release <= 1 or self.floor <= 0 or self.max_pause < 0:
            raise ValueError("regrow_seconds and floor must be positive, release above 1, max_pause not negative")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"headroom must be at least 0 and below 1, not {self.headroom}")


@dataclass(frozen=True)
class Budget:
    """What the budget of one token knows; start with ``Budget()`` or ``Budget(BudgetRules(cap=...))``.

    ``learned`` is the rate Census taught (None: no 429 yet, or forgotten since); ``lesson`` the
    rate set at the last 429, ``limited_at`` when, and ``admitted`` the answers without a 429 to
    requests sent in the second before it. ``next_at`` is the earliest the next request may go
    by the pacing, ``paused_until`` the end of a ``Retry-After``. Requests sent are counted per
    window (``window_start``, ``window_sent``, ``previous_sent``); answers without a 429 by when
    their request went (``answered``: bucket and count, the last two windows).
    """

    rules: BudgetRules = BudgetRules()
    learned: float | None = None
    lesson: float | None = None
    limited_at: float = _NEVER
    admitted: int = 0
    paused_until: float = _NEVER
    next_at: float = _NEVER
    window_start: float = _NEVER
    window_sent: int = 0
    previous_sent: int = 0
    answered: tuple[tuple[int, int], ...] = ()

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

    def let_through(self, start: float, end: float) -> int:
        """Answers without a 429 counted so far to requests sent from ``start`` to ``end`` (to the bucket)."""
        first, last = _bucket(start), _bucket(end)
        return sum(count for bucket, count in self.answered if first <= bucket <= last)

    def on_limited(self, now: float, retry_after: float | None, sent_at: float) -> Budget:
        """Census answered 429 at ``now`` to a request sent at ``sent_at``, asking for ``retry_after`` seconds.

        A request sent before the last 429 was acted on met the same overload: nothing changes.
        Otherwise the rate becomes what Census let through in the second before, and everyone pauses.
        """
        if sent_at < self.limited_at:
            return self
        admitted = self.let_through(now - WINDOW_SECONDS, now)
        known = self.rate
        kept = self.rules.floor if known is None else self.rules.decrease * min(known, self.sending_rate(now))
        lesson = max(self.rules.floor, kept, float(admitted))
        return replace(
            self,
            learned=lesson,
            lesson=lesson,
            limited_at=now,
            admitted=admitted,
            paused_until=max(self.paused_until, now + min(retry_after or 0.0, self.rules.max_pause)),
        )

    def on_ok(self, now: float, sent_at: float, held: bool = False) -> Budget:
        """Census answered without a 429, at ``now``, a request sent at ``sent_at``; ``held``: requests wait.

        It is counted. An answer to a request of the second before the last 429 raises that
        lesson (Census let one more through); any answer grows the learned rate along its curve,
        and forgets it once it doubled while nothing waits.
        """
        counted = self._answer_counted(sent_at)
        if counted.learned is None or counted.lesson is None:
            return counted
        lesson, admitted = counted.lesson, counted.admitted
        if counted.limited_at - WINDOW_SECONDS <= sent_at < counted.limited_at:
            admitted += 1
            lesson = max(lesson, float(admitted))
        regrown = max(0.0, now - counted.paused_until) / self.rules.regrow_seconds
        learned = lesson * (1.0 + regrown**3)
        if learned >= self.rules.release * lesson and not held:
            return replace(counted, learned=None, lesson=None, admitted=0)
        return replace(counted, learned=min(learned, self.rules.release * lesson), lesson=lesson, admitted=admitted)

    def _answer_counted(self, sent_at: float) -> Budget:
        """The answers with one more to a request sent at ``sent_at``; buckets older than two windows dropped."""
        bucket = _bucket(sent_at)
        counts = dict(self.answered)
        counts[bucket] = counts.get(bucket, 0) + 1
        newest = max(counts)
        kept = tuple(sorted((b, c) for b, c in counts.items() if b > newest - _KEPT_BUCKETS))
        return replace(self, answered=kept)

    def _rolled(self, now: float) -> Budget:
        """The counts with the window moved on to the one ``now`` falls in."""
        elapsed = now - self.window_start
        if elapsed < WINDOW_SECONDS:
            return self
        previous = self.window_sent if elapsed < 2 * WINDOW_SECONDS else 0
        return replace(self, window_start=now, window_sent=0, previous_sent=previous)


def _bucket(moment: float) -> int:
    return math.floor(moment / ANSWER_BUCKET_SECONDS)
