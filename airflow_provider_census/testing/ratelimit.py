"""Census's request limit per token, as the emulator enforces it when asked (issue 21).

Census answers a token that sends too much with ``429`` and a ``Retry-After`` in whole seconds.
The emulator does the same when made with ``rate_limit=N``: each token may have N requests
accepted in any one-second window (a sliding window, so no burst slips in across a window's
edge); the request beyond is refused, and does not count. Requests refused for a bad token
(401) never reach the limit. A test then reads :func:`busiest_window` of what arrived (never
more than N in any second?) and how many were refused.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable

WINDOW_SECONDS = 1.0


class RateLimit:
    """The accepted requests of each token in the last second, and how many were refused; thread-safe.

    ``per_second`` None (the default) accepts everything. It can be changed while serving.
    """

    def __init__(self, per_second: int | None = None) -> None:
        self._lock = threading.Lock()
        self._accepted: dict[str, deque[float]] = {}
        self._refused = 0
        self.per_second = per_second

    @property
    def per_second(self) -> int | None:
        return self._per_second

    @per_second.setter
    def per_second(self, limit: int | None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"rate_limit must be a whole number of requests per second, at least 1, not {limit!r}")
        self._per_second = limit

    @property
    def refused(self) -> int:
        """Requests refused with 429 by the limit so far (injected 429 faults are not counted)."""
        with self._lock:
            return self._refused

    def admit(self, token: str, now: float) -> int | None:
        """None when the request of ``token`` arriving at ``now`` is accepted; else its ``Retry-After``.

        The ``Retry-After`` is the whole seconds (at least one) until the oldest accepted request
        of the window leaves it, as a client that honours it will then be accepted.
        """
        limit = self._per_second
        if limit is None:
            return None
        with self._lock:
            accepted = self._accepted.setdefault(token, deque())
            while accepted and accepted[0] <= now - WINDOW_SECONDS:
                accepted.popleft()
            if len(accepted) < limit:
                accepted.append(now)
                return None
            self._refused += 1
            return max(1, math.ceil(accepted[0] + WINDOW_SECONDS - now))


def busiest_window(moments: Iterable[float], seconds: float = WINDOW_SECONDS) -> int:
    """The most of ``moments`` that fall in any window of ``seconds`` (half-open, as the limit counts)."""
    ordered = sorted(moments)
    busiest, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - seconds:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest
