"""When to try a request again, and how long to wait: written once for both clients.

Retried: dropped or refused connections, timeouts, 429 and 5xx, and success answers we
could not read. Not retried: every other 4xx, which will not get better. Waits grow
exponentially with jitter, follow ``Retry-After`` (capped) and stop at a total budget.

A request that acts each time it arrives (``safe_to_retry=False``: a trigger, a sync
creation) is resent here only when Census surely never received it: the connection was
never made, or Census refused it with 429. Any other failure of such a request goes back to
the caller, which must look at Census's state before trying again (see the hook's
``trigger_sync_run``).

Where requests pass a request budget (``paced``, :mod:`.budget_gate`), a 429 is resent at once:
the budget already paused every request of the token for its ``Retry-After``, and holds the
resent one until that pause ends, so it is never waited for twice.
"""

from __future__ import annotations

import email.utils
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import tenacity

from airflow_provider_census.api.errors import (
    CensusApiError,
    CensusRateLimitError,
    CensusResponseError,
    CensusServerError,
    CensusTransportError,
)

log = logging.getLogger(__name__)


class Retryable(Protocol):
    """What the policy needs to know of a request (an :class:`~.endpoints.Request` is one)."""

    @property
    def safe_to_retry(self) -> bool: ...

    @property
    def label(self) -> str: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_after_of(exc: BaseException | None) -> float | None:
    """The ``Retry-After`` Census sent with this failure, if any."""
    return exc.retry_after if isinstance(exc, CensusApiError) else None


def is_transient(exc: BaseException) -> bool:
    """True for failures that may go away if the same request is sent again later."""
    return isinstance(exc, CensusTransportError | CensusRateLimitError | CensusServerError | CensusResponseError)


def surely_not_received(exc: BaseException) -> bool:
    """True when Census did not act on the request: no connection, or refused with 429."""
    if isinstance(exc, CensusTransportError):
        return not exc.reached_census
    return isinstance(exc, CensusRateLimitError)


def may_have_acted(exc: BaseException) -> bool:
    """True when a non-repeatable request may have been carried out despite the error."""
    return is_transient(exc) and not surely_not_received(exc)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries. ``budget_seconds`` bounds the time spent waiting between tries."""

    max_attempts: int = 6
    budget_seconds: float = 120.0
    initial_wait: float = 1.0
    max_wait: float = 30.0
    max_retry_after: float = 60.0

    def should_retry(self, request: Retryable, exc: BaseException) -> bool:
        if request.safe_to_retry:
            return is_transient(exc)
        return surely_not_received(exc)

    def wait_seconds(self, attempt: int, exc: BaseException | None, *, paced: bool = False) -> float:
        """Census's ``Retry-After`` if it sent one (capped), else exponential backoff with jitter.

        ``paced``: the request passes a request budget, which waits out a 429 for everyone, so
        the 429 is resent at once, to wait at the budget's gate.
        """
        if paced and isinstance(exc, CensusRateLimitError):
            return 0.0
        retry_after = retry_after_of(exc)
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        exponential = self.initial_wait * 2.0 ** max(0, attempt - 1)
        return min(self.max_wait, exponential + random.uniform(0, self.initial_wait))  # noqa: S311

    def _tenacity_arguments(self, request: Retryable, paced: bool) -> dict[str, Any]:
        def retry(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return exc is not None and self.should_retry(request, exc)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(state.attempt_number, exc, paced=paced)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            gated = paced and isinstance(exc, CensusRateLimitError)
            log.info(
                "Census %s failed (%s); try %d of %d %s",
                request.label,
                exc,
                state.attempt_number + 1,
                self.max_attempts,
                "once the request budget's pause ends" if gated else f"in {state.upcoming_sleep:.1f} s",
            )

        return {
            "retry": retry,
            "wait": wait,
            "stop": tenacity.stop_after_attempt(self.max_attempts) | tenacity.stop_before_delay(self.budget_seconds),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(self, request: Retryable, *, paced: bool = False) -> tenacity.Retrying:
        """Tries of ``request`` in a thread; ``paced`` when it passes a request budget (see :meth:`wait_seconds`)."""
        return tenacity.Retrying(**self._tenacity_arguments(request, paced))

    def async_retrying(self, request: Retryable, *, paced: bool = False) -> tenacity.AsyncRetrying:
        """Tries of ``request`` in an event loop; ``paced`` as for :meth:`retrying`."""
        return tenacity.AsyncRetrying(**self._tenacity_arguments(request, paced))


ONE_TRY = RetryPolicy(max_attempts=1)
"""One request, no retry: each poll of a wait (a failed poll is simply tried again at the next
interval) and a connection test (a user on the form wants the reason soon)."""
