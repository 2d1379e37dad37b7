"""What the hook reads of a sync's runs before it acts: the never-twice trigger, and the looks it needs.

A trigger whose answer is lost may have started a run anyway: before sending it again, the
sync's runs are looked at (:func:`trigger_once`). Those looks, and the retry's reattach and
``on_skipped="wait"``'s search for the earlier run, read the sync's run list, which V2's
reference does not document: :func:`recent_runs_if_listed` goes on without it where Census does
not serve it, and logs which protection that costs (:data:`LIST_PROTECTIONS`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api import routes, run_read
from airflow_provider_census.api.errors import CensusError, CensusNotFoundError, CensusTriggerUnconfirmedError
from airflow_provider_census.api.models import census_time
from airflow_provider_census.api.retry import may_have_acted
from airflow_provider_census.core.schedule import HISTORY_RUNS

if TYPE_CHECKING:
    from airflow_provider_census.api.endpoints import Endpoint
    from airflow_provider_census.api.models import Page, SyncRun
    from airflow_provider_census.api.retry import RetryPolicy
    from airflow_provider_census.api.settings import ClientSettings

CLOCK_SKEW_SECONDS = 5.0
"""How far Census's clock may be behind ours when a run's ``created_at`` is compared with when we sent."""
SETTLE_LOOK_SECONDS = 2.0
LIST_PROTECTIONS: dict[str, tuple[str, str]] = {
    "lost_answer": (
        "the never-twice rule",
        "the trigger is sent once; if its answer is lost, it is not resent and the task fails asking you to "
        "check the sync's history",
    ),
    "reattach": (
        "reattach_on_retry",
        "a retry cannot see a run an earlier try left going, and triggers the sync again (Airflow 3.3 and later "
        "keep the run id in the task's state store and need no list)",
    ),
    "earlier_run": (
        "on_skipped='wait'",
        "the run that made Census skip this one cannot be found, so the skip stands",
    ),
}
"""What the look at a sync's run list protects, and what happens without it: for the log line."""


T = TypeVar("T")


class TriggeringHook(Protocol):
    """What the rules that read Census before acting ask of the hook (it hands itself in)."""

    retry_policy: RetryPolicy
    trigger_settle_seconds: float

    @property
    def log(self) -> Any: ...

    @property
    def settings(self) -> ClientSettings: ...

    def run(self, endpoint: Endpoint[T], **arguments: Any) -> T: ...

    def runs_listed(self) -> bool: ...

    def list_sync_runs(
        self, sync_id: int | str, page: int = 1, per_page: int = 25, order: str = "desc", *, urgent: bool = False
    ) -> Page[SyncRun]: ...


def recent_runs_if_listed(hook: TriggeringHook, sync_id: int, purpose: str, per_page: int = 1) -> list[SyncRun] | None:
    """The sync's newest runs (newest first), or None when this Census does not list a sync's runs.

    A task waits on this look to trigger, so it goes ahead of routine polls at the request budget.

    A V2 Census may not serve the run list (its reference does not document it); a 404 there
    cannot tell a missing route from a missing sync, so the caller goes on without the look,
    and the log says which protection (``purpose``, a key of :data:`LIST_PROTECTIONS`) that costs.
    """
    if hook.runs_listed():
        try:
            return list(hook.list_sync_runs(sync_id, page=1, per_page=per_page, order="desc", urgent=True).items)
        except CensusNotFoundError as exc:
            if not run_read.is_route_404(exc):
                raise
    hook.log.warning(
        "Census at %s does not list the runs of sync %s (GET /syncs/{id}/sync_runs is v1's, not in the V2 "
        "reference), so %s is reduced: %s.",
        hook.settings.base_url,
        sync_id,
        *LIST_PROTECTIONS[purpose],
    )
    return None


@dataclass(frozen=True)
class StartedRun:
    """A run the trigger started: its id, when Census answered (epoch seconds), and the sync's runs
    before it, newest first (None where Census does not list them), which its polls are placed by."""

    run_id: int
    started_at: float
    runs_before: tuple[SyncRun, ...] | None


def trigger_once(hook: TriggeringHook, sync_id: int, *, force_full_sync: bool = False) -> StartedRun:
    """Start a run of the sync, never starting two by resending.

    The sync's newest runs are read once before (one request, :data:`HISTORY_RUNS` of them):
    the newest is the baseline a lost answer is checked against, and their durations place the
    new run's polls (:mod:`airflow_provider_census.core.schedule`).

    The trigger is resent without a second thought only when Census surely never received
    it: no connection was made, or Census answered 429 (see :mod:`..api.retry`). When its
    answer is lost (a timeout, a dropped connection, a 5xx, an unreadable body) the run may
    exist anyway, so the sync's runs are watched for ``trigger_settle_seconds``: a run newer
    than the newest one before the trigger and created no earlier than the trigger went out
    (allowing :data:`CLOCK_SKEW_SECONDS` between the clocks) is taken as this trigger's run.
    Only if none appears is the trigger sent again. All of it fits in the retry policy's
    ``budget_seconds``; past that, :class:`CensusTriggerUnconfirmedError` says to look in
    Census before trying again.
    """
    newest_before = recent_runs_if_listed(hook, sync_id, "lost_answer", per_page=HISTORY_RUNS)
    listed = newest_before is not None
    runs_before = None if newest_before is None else tuple(newest_before)
    baseline = newest_before[0].id if newest_before else 0
    deadline = time.monotonic() + hook.retry_policy.budget_seconds
    sent_at = time.time()
    attempts = hook.retry_policy.max_attempts
    for attempt in range(1, attempts + 1):
        try:
            run_id = hook.run(ep.TRIGGER_SYNC, params={"force_full_sync": bool(force_full_sync)}, sync_id=sync_id)
        except CensusError as exc:
            if not may_have_acted(exc):
                raise
            if not listed:
                raise CensusTriggerUnconfirmedError(
                    f"The answer to the trigger of sync {sync_id} was lost ({exc}), and this Census does not "
                    "list a sync's runs, so whether it started a run cannot be checked; it is not sent again. "
                    "Check the sync's history in Census before retrying."
                ) from exc
            adopted = _run_started_after(hook, sync_id, baseline, sent_at, deadline)
            if adopted is not None:
                hook.log.warning(
                    "The answer to the trigger of sync %s was lost (%s); run %s started after it went out, "
                    "so it is this trigger's run and the sync is not triggered again.",
                    sync_id,
                    exc,
                    adopted,
                )
                return StartedRun(adopted, time.time(), runs_before)
            wait = hook.retry_policy.wait_seconds(attempt, exc)
            if attempt == attempts or time.monotonic() + wait >= deadline:
                raise CensusTriggerUnconfirmedError(
                    f"Triggering sync {sync_id} failed {attempt} times without an answer, and no run started "
                    f"after it appeared (last error: {exc}). Check the sync's history in Census before retrying."
                ) from exc
            hook.log.warning(
                "Triggering sync %s got no usable answer (%s) and no new run appeared within %.0f s; "
                "triggering again (%d of %d).",
                sync_id,
                exc,
                hook.trigger_settle_seconds,
                attempt + 1,
                attempts,
            )
            time.sleep(wait)
        else:
            if not listed:
                _note_runs_unlisted(hook, sync_id)
            return StartedRun(run_id, time.time(), runs_before)
    raise AssertionError("the loop returns or raises")  # pragma: no cover


def _note_runs_unlisted(hook: TriggeringHook, sync_id: int) -> None:
    """The trigger found the sync that the run list answered 404 for: the list route is what is missing."""
    evidence = f"it answered 404 for sync {sync_id}, which {ep.TRIGGER_SYNC.route} found"
    routes.note_missing(hook.settings.base_url, ep.LIST_SYNC_RUNS.route, evidence)


def _run_started_after(
    hook: TriggeringHook, sync_id: int, baseline: int, sent_at: float, deadline: float
) -> int | None:
    """The first run newer than ``baseline`` and created since ``sent_at``, looked for during the settle time.

    A fixed number of looks, evenly spread over ``trigger_settle_seconds`` (the first at once,
    the last at its end, at least two), so a slow answer does not cut the watch short.
    """
    looks = max(2, round(hook.trigger_settle_seconds / SETTLE_LOOK_SECONDS) + 1)
    gap = hook.trigger_settle_seconds / (looks - 1)
    for look in range(looks):
        if look:
            if time.monotonic() + gap > deadline:
                return None
            time.sleep(gap)
        recent = hook.list_sync_runs(sync_id, per_page=10, order="desc", urgent=True).items
        candidates = [run.id for run in recent if run.id > baseline and _created_since(run, sent_at)]
        if candidates:
            return min(candidates)
    return None


def _created_since(run: SyncRun, sent_at: float) -> bool:
    """False only for a run Census says it created before our trigger went out; no date proves nothing."""
    created = census_time(run.created_at)
    return created is None or created >= sent_at - CLOCK_SKEW_SECONDS
