"""How a task reads a sync run: its summary, and whether its end is a success.

The operator and the sensor both finish through :func:`read_finished_run`, so a run that
failed, was canceled, was skipped or ended in a state nobody knows raises the same typed
exception with the same message wherever it is waited for. Neither compares state strings:
they use :class:`~.api.states.RunOutcome`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_census.api.errors import (
    CensusInputError,
    CensusRejectedRecordsError,
    CensusRunCanceledError,
    CensusRunError,
    CensusRunFailedError,
    CensusRunSkippedError,
    CensusRunUnknownStateError,
)
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.settings import sync_run_app_url
from airflow_provider_census.api.states import RunOutcome

ON_SKIPPED_CHOICES = ("fail", "succeed", "wait")
SUMMARY_COUNTS = ("records_processed", "records_updated", "records_failed", "records_invalid", "source_record_count")


def summarize_run(run: SyncRun, base_url: str) -> dict[str, Any]:
    """The run as JSON primitives, for XCom, trigger events and messages."""
    return {
        "sync_id": run.sync_id,
        "sync_run_id": run.id,
        "status": run.status,
        "outcome": run.outcome.value,
        "canceled": run.canceled,
        "current_step": run.current_step,
        **{count: getattr(run, count) for count in SUMMARY_COUNTS},
        "error_code": run.error_code,
        "error_message": run.error_message,
        "error_detail": run.error_detail,
        "full_sync": run.full_sync,
        "created_at": run.created_at,
        "completed_at": run.completed_at,
        "url": sync_run_app_url(base_url, run.sync_id, run.id),
    }


def outcome_of(summary: Mapping[str, Any]) -> RunOutcome:
    try:
        return RunOutcome(summary.get("outcome"))
    except ValueError:
        return RunOutcome.UNKNOWN


def rejected_records(summary: Mapping[str, Any]) -> int:
    """Records the destination rejected plus those Census found invalid (nulls count as 0)."""
    return sum(int(summary.get(key) or 0) for key in ("records_failed", "records_invalid"))


def describe_run(summary: Mapping[str, Any]) -> str:
    """One paragraph with everything a user needs to act on a run: ids, state, error, counts, link."""
    parts = [f"Census sync {summary.get('sync_id')} run {summary.get('sync_run_id')}: status {summary.get('status')!r}"]
    if summary.get("canceled"):
        parts.append("canceled")
    if summary.get("error_code") or summary.get("error_message"):
        parts.append(f"error_code={summary.get('error_code')} error_message={summary.get('error_message')!r}")
    if summary.get("error_detail"):
        parts.append(f"error_detail={summary.get('error_detail')!r}")
    counts = ", ".join(f"{key.removeprefix('records_')}={summary.get(key)}" for key in SUMMARY_COUNTS[:4])
    parts.append(f"records: {counts}")
    parts.append(f"see {summary.get('url')}")
    return "; ".join(parts)


@dataclass(frozen=True)
class RunExpectations:
    """What the task accepts as a good end of a run.

    :param on_skipped: a run Census skipped (an earlier run of the sync was still going) makes
        the task ``fail`` (the default), ``succeed``, or ``wait`` for that earlier run.
    :param max_rejected_records: fail a completed run that rejected more records than this
        (``records_failed`` + ``records_invalid``).
    :param max_rejected_share: the same as a share (0 to 1) of ``records_processed``.
    """

    on_skipped: str = "fail"
    max_rejected_records: int | None = None
    max_rejected_share: float | None = None

    def __post_init__(self) -> None:
        if self.on_skipped not in ON_SKIPPED_CHOICES:
            raise CensusInputError(
                f"on_skipped must be one of {', '.join(ON_SKIPPED_CHOICES)}, got {self.on_skipped!r}"
            )
        if self.max_rejected_records is not None and (
            isinstance(self.max_rejected_records, bool)
            or not isinstance(self.max_rejected_records, int)
            or self.max_rejected_records < 0
        ):
            raise CensusInputError(
                f"max_rejected_records must be a whole number >= 0, got {self.max_rejected_records!r}"
            )
        if self.max_rejected_share is not None and not (
            isinstance(self.max_rejected_share, int | float) and 0 <= self.max_rejected_share <= 1
        ):
            raise CensusInputError(f"max_rejected_share must be between 0 and 1, got {self.max_rejected_share!r}")

    @property
    def waits_for_earlier_run(self) -> bool:
        return self.on_skipped == "wait"


def read_finished_run(summary: Mapping[str, Any], expectations: RunExpectations) -> None:
    """Return if the finished run counts as a success for the task; raise the matching error if not."""
    outcome = outcome_of(summary)
    if outcome is RunOutcome.SUCCEEDED:
        _check_rejected_records(summary, expectations)
        return
    if outcome is RunOutcome.SKIPPED and expectations.on_skipped == "succeed":
        return
    error_class, verdict = _FAILURES.get(outcome, _FAILURES[RunOutcome.UNKNOWN])
    raise error_class(f"{verdict}. {describe_run(summary)}", summary)


_FAILURES: dict[RunOutcome, tuple[type[CensusRunError], str]] = {
    RunOutcome.FAILED: (CensusRunFailedError, "The Census sync run failed"),
    RunOutcome.CANCELED: (CensusRunCanceledError, "The Census sync run was canceled before it finished"),
    RunOutcome.SKIPPED: (
        CensusRunSkippedError,
        "Census skipped the run because an earlier run of the sync was still going "
        "(set on_skipped='wait' or 'succeed' to accept this)",
    ),
    RunOutcome.UNKNOWN: (
        CensusRunUnknownStateError,
        "The Census sync run is in a state this provider does not know, so it is not taken as success",
    ),
    RunOutcome.IN_PROGRESS: (CensusRunUnknownStateError, "The Census sync run has not finished"),
}


def _check_rejected_records(summary: Mapping[str, Any], expectations: RunExpectations) -> None:
    rejected = rejected_records(summary)
    limit = expectations.max_rejected_records
    if limit is not None and rejected > limit:
        raise CensusRejectedRecordsError(
            f"The Census sync run completed but rejected {rejected} records, more than "
            f"max_rejected_records={limit}. {describe_run(summary)}",
            summary,
        )
    processed = int(summary.get("records_processed") or 0)
    share = expectations.max_rejected_share
    if share is not None and processed and rejected / processed > share:
        raise CensusRejectedRecordsError(
            f"The Census sync run completed but rejected {rejected} of {processed} records "
            f"({rejected / processed:.1%}), more than max_rejected_share={share:.1%}. {describe_run(summary)}",
            summary,
        )
