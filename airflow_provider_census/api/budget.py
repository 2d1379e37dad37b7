"""How fast requests may go to Census on one token: a request budget as pure state (issue 21).

No I/O, no clock, no asyncio and no Airflow here: every method takes the time (``now``, seconds
of any monotonic clock) and returns a new :class:`Budget`. A gate per connection and process
(``api/budget_gate.py``) holds one, asks it when the next request may go, and tells it what
Census answered.

It learns Census's limit the way TCP learns a path's capacity, as CUBIC does:

- **No cap until Census answers 429.** A deployment that never meets a limit sends every request
  the moment it is asked for, exactly as without a budget.
- **A 429 sets the rate for everyone on the token at once, to what Census let through**: the
  requests sent in the second before the refused one went that Census answered without a 429
  (counted as their answers come in, also those that arrive after the 429; by when they went,
  not when they were answered, since a busy event loop may read an answer seconds late). That
  is Census's limit, measured, so the rate needs no guess and no second 429 to find it. A 429
  meeting a rate already learned keeps at least :attr:`BudgetRules.decrease` of it, as TCP
  halves (the requests of the second before may be few: the ones just after a pause); one
  where nothing was let through (it measured nothing) keeps half of what was going.
  Everyone pauses until ``now + Retry-After`` (capped at :attr:`BudgetRules.max_pause`, as a
  wait caps it). It is honoured once: the other 429s of requests sent before that moment
  answer the same overload and change nothing.
- **The rate stays there, then probes for more**: it grows as a cube of the time since the
  pause ended, ``rate * (1 + (t / regrow_seconds) ** 3)``: +0.8 % after a fifth of
  :attr:`BudgetRules.regrow_seconds`, +12.5 % after half of it, twice the rate after all of
  it. So it hardly overshoots a limit it measured, and still finds a limit that was raised. Once
  it doubled (:attr:`BudgetRules.release`) while no request waits, the learned limit is forgotten:
  uncapped again, until the next 429. Forgetting it only when nothing waits means it never
  lets a line of held requests go at once; while they wait, the curve starts again from there.
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
BUCKET_SECONDS = 0.1
"""Requests and answers are counted by when the request went, in buckets this long, kept for two windows."""
_KEPT_BUCKETS = round(2 * WINDOW_SECONDS / BUCKET_SECONDS)
Counts = tuple[tuple[int, int], ...]
"""Requests counted by the bucket of the moment they went: (bucket, count), oldest first."""


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
    :param decrease: a 429 meeting a learned rate keeps at least this share of it, whatever few
        answers were counted before it; a 429 that measured nothing, this share of what went.
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
    rate its curve starts from (set at the last 429), ``limited_at`` when that 429 came,
    ``refused_sent_at`` when its request went, and ``admitted`` the answers without a 429 to
    requests sent in the second before that. ``next_at`` is the earliest the next request may go
    by the pacing, ``paused_until`` the end of a ``Retry-After``, ``regrow_from`` where the rate's
    curve starts (the pause's end, or where it doubled while requests waited). Requests sent are
    counted by when they went (``sent_counts``), and so are answers without a 429
    (``answered``), each by bucket, for the last two windows.
    """

    rules: BudgetRules = BudgetRules()
    learned: float | None = None
    lesson: float | None = None
    limited_at: float = _NEVER
    refused_sent_at: float = _NEVER
    admitted: int = 0
    paused_until: float = _NEVER
    regrow_from: float = _NEVER
    next_at: float = _NEVER
    sent_counts: Counts = ()
    answered: Counts = ()

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
        return replace(self, next_at=next_at, sent_counts=_counted(self.sent_counts, now))

    def sending_rate(self, moment: float) -> int:
        """Requests sent in the window up to ``moment`` (to the bucket): the rate a 429 answers."""
        return _between(self.sent_counts, moment - WINDOW_SECONDS, moment)

    def let_through(self, start: float, end: float) -> int:
        """Answers without a 429 counted so far to requests sent from ``start`` to ``end`` (to the bucket)."""
        return _between(self.answered, start, end)

    def on_limited(self, now: float, retry_after: float | None, sent_at: float) -> Budget:
        """Census answered 429 at ``now`` to a request sent at ``sent_at``, asking for ``retry_after`` seconds.

        A request sent before the last 429 was acted on met the same overload: nothing changes.
        Otherwise the rate becomes what Census let through in the second before that request
        went, and everyone pauses. Where a rate was already known, at least half of it is kept (as
        TCP halves): just after a pause, the second before holds few requests, and a rate made of
        them alone would collapse. Where nothing was let through, the 429 measured nothing: half of what was
        going.
        """
        if sent_at < self.limited_at:
            return self
        admitted = self.let_through(sent_at - WINDOW_SECONDS, sent_at)
        known = self.rate
        halved = self.rules.decrease * (self.sending_rate(sent_at) if known is None else known)
        measured = known is None and admitted > 0
        lesson = max(self.rules.floor, float(admitted) if measured else max(float(admitted), halved))
        paused_until = max(self.paused_until, now + min(retry_after or 0.0, self.rules.max_pause))
        return replace(
            self,
            learned=lesson,
            lesson=lesson,
            limited_at=now,
            refused_sent_at=sent_at,
            admitted=admitted,
            paused_until=paused_until,
            regrow_from=paused_until,
        )

    def on_ok(self, now: float, sent_at: float, held: bool = False) -> Budget:
        """Census answered without a 429, at ``now``, a request sent at ``sent_at``; ``held``: requests wait.

        It is counted. An answer to a request of the second before the last 429 raises that
        lesson (Census let one more through); any answer grows the learned rate along its curve,
        and forgets it once it doubled while nothing waits.
        """
        counted = replace(self, answered=_counted(self.answered, sent_at))
        if counted.learned is None or counted.lesson is None:
            return counted
        lesson, admitted, since = counted.lesson, counted.admitted, counted.regrow_from
        if _bucket(counted.refused_sent_at - WINDOW_SECONDS) <= _bucket(sent_at) <= _bucket(counted.refused_sent_at):
            admitted += 1
            lesson = max(lesson, float(admitted))
        learned = lesson * (1.0 + (max(0.0, now - since) / self.rules.regrow_seconds) ** 3)
        if learned >= self.rules.release * lesson:
            if not held:
                return replace(counted, learned=None, lesson=None, admitted=0)
            lesson, since = learned, now  # still held back, and no 429: the curve starts again from here
        return replace(counted, learned=learned, lesson=lesson, admitted=admitted, regrow_from=since)


def _bucket(moment: float) -> int:
    return math.floor(moment / BUCKET_SECONDS)


def _counted(counts: Counts, moment: float) -> Counts:
    """``counts`` with one more at ``moment``; buckets two windows older than the newest dropped.

    Every request and every answer is counted, limit or not, so the usual cases are kept cheap:
    one more in the newest bucket, or a new newest bucket. An answer counted in an older bucket
    (its request went a while ago) takes the general path; one older than the buckets kept is not counted.
    """
    bucket = _bucket(moment)
    newest = counts[-1][0] if counts else None
    if bucket == newest:
        return (*counts[:-1], (bucket, counts[-1][1] + 1))
    if newest is None or bucket > newest:
        return (*(kept for kept in counts if kept[0] > bucket - _KEPT_BUCKETS), (bucket, 1))
    if bucket <= newest - _KEPT_BUCKETS:
        return counts
    tally = dict(counts)
    tally[bucket] = tally.get(bucket, 0) + 1
    return tuple(sorted(tally.items()))


def _between(counts: Counts, start: float, end: float) -> int:
    first, last = _bucket(start), _bucket(end)
    return sum(count for bucket, count in counts if first <= bucket <= last)
