"""What a sync run means for a task: its typed summary, what the task expects, and the verdict.

Pure: no Airflow and no HTTP here, so the trigger (in the triggerer), the operator and the
sensor (in the worker) read a run the same way, and a verdict can be tested with a dataclass.
:class:`RunSummary` is the one shape a run takes in XCom, trigger events, messages and
exceptions; its JSON form is what crosses process boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
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
from airflow_provider_census.api.models import RunDetails, SyncRun
from airflow_provider_census.api.settings import sync_run_app_url, syncs_app_url
from airflow_provider_census.api.states import RunOutcome

XCOM_SYNC_RUN_ID = "sync_run_id"
XCOM_SYNC_RUN_URL = "sync_run_url"
XCOM_SYNC_RUN = "sync_run"
"""XCom keys: the run's id and its page in the Census app (pushed before waiting), and its summary (at the end)."""
XCOM_SYNC_RUN_IDS = "sync_run_ids"
XCOM_SYNC_RUNS_URL = "sync_runs_url"
XCOM_SYNC_RUNS = "sync_runs"
"""XCom keys of the many-syncs operator: its runs by sync id and one page that leads to them (before
waiting), and every run's summary by sync id (at the end); sync ids as text, as JSON keys are."""

ON_SKIPPED_CHOICES = ("fail", "succeed", "wait")
DESCRIBED_COUNTS = ("records_processed", "records_updated", "records_failed", "records_invalid")
REJECTION_COUNTS = ("records_processed", "records_failed", "records_invalid")
"""The counts the rejected-records limits read: a limit cannot be checked without them."""


@dataclass(frozen=True, kw_only=True)
class RunSummary(RunDetails):
    """One run as a task sees it: ids, states, Census's details of it (counts, error) and its URL.

    ``unread`` names the fields the route that read the run does not carry (see
    :class:`~airflow_provider_census.api.models.SyncRun`); they are unknown, never guessed.
    """

    sync_id: int | None
    sync_run_id: int
    status: str
    outcome: RunOutcome
    url: str
    canceled: bool | None = False
    unread: tuple[str, ...] = ()

    @classmethod
    def of(cls, run: SyncRun, base_url: str) -> RunSummary:
        details = {name: getattr(run, name) for name in _DETAIL_NAMES}
        return cls(
            sync_id=run.sync_id,
            sync_run_id=run.id,
            status=run.status,
            outcome=run.outcome,
            url=run_url(base_url, run.sync_id, run.id),
            canceled=run.canceled,
            unread=run.unread,
            **details,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON primitives, for XCom and trigger events; ``outcome`` as its text."""
        data = {name: getattr(self, name) for name in _SUMMARY_NAMES}
        data["outcome"] = self.outcome.value
        data["unread"] = list(self.unread)
        return data

    @classmethod
    def from_json(cls, data: object) -> RunSummary:
        """The summary back from its JSON form; a ValueError names what is missing or wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a run summary must be a mapping, got {type(data).__name__}")
        missing = [name for name in ("sync_id", "sync_run_id", "status", "outcome", "url") if name not in data]
        if missing:
            raise ValueError(f"a run summary without {', '.join(missing)}")
        try:
            outcome = RunOutcome(data["outcome"])
        except ValueError:
            raise ValueError(f"unknown outcome {data['outcome']!r}") from None
        known = {key: value for key, value in data.items() if key in _SUMMARY_NAMES}
        return cls(**{**known, "outcome": outcome, "unread": tuple(data.get("unread") or ())})

    def canceled_by_task(self) -> RunSummary:
        """This run as canceled, when the task itself canceled it and the route that read it does not say.

        Not a guess: the task sent the cancel. A run the task canceled is never reported as a success.
        """
        if self.canceled is not None:
            return self
        return replace(self, canceled=True, outcome=RunOutcome.CANCELED)

    @property
    def rejected(self) -> int:
        """Records the destination rejected plus those Census found invalid (nulls count as 0)."""
        return (self.records_failed or 0) + (self.records_invalid or 0)

    def describe(self) -> str:
        """One paragraph with everything a user needs to act on a run: ids, state, error, counts, link."""
        sync = f"sync {self.sync_id} run" if self.sync_id is not None else "sync run"
        parts = [f"Census {sync} {self.sync_run_id}: status {self.status!r}"]
        if self.canceled:
            parts.append("canceled")
        if self.error_code or self.error_message:
            parts.append(f"error_code={self.error_code} error_message={self.error_message!r}")
        if self.error_detail:
            parts.append(f"error_detail={self.error_detail!r}")
        counts = ", ".join(f"{name.removeprefix('records_')}={getattr(self, name)}" for name in DESCRIBED_COUNTS)
        parts.append(f"records: {counts}")
        if self.unread:
            parts.append(f"not carried by the route that read it: {', '.join(self.unread)}")
        parts.append(f"see {self.url}")
        return "; ".join(parts)


_DETAIL_NAMES = tuple(field.name for field in fields(RunDetails))
_SUMMARY_NAMES = tuple(field.name for field in fields(RunSummary))
"""Field names, listed once: every field holds a JSON primitive (or the outcome), so the JSON form
is a flat copy, with no ``dataclasses.asdict`` deep copy (a third of a trigger's work per event)."""


def run_url(base_url: str, sync_id: int | None, sync_run_id: int) -> str:
    """The run's page in the Census app; the syncs page when the run was read without its sync."""
    return syncs_app_url(base_url) if sync_id is None else sync_run_app_url(base_url, sync_id, sync_run_id)


def describe(summary: RunSummary | None, sync_run_id: int) -> str:
    """The run's paragraph, or its id alone when Census could never be read."""
    return summary.describe() if summary is not None else f"Census sync run {sync_run_id} (not read)"


@dataclass(frozen=True)
class RunExpectations:
    """What the task accepts as a good end of a run.

    :param on_skipped: a run Census skipped (an earlier run of the sync was still going) makes
        the task ``fail`` (the default), ``succeed``, or ``wait``: the operator waits for the
        earlier run and then triggers a fresh one; the sensor follows the earlier run.
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
    def waits_out_skips(self) -> bool:
        return self.on_skipped == "wait"

    def accept(self, summary: RunSummary) -> bool:
        """Whether the finished run counts as a success for the task (:meth:`check` without raising)."""
        try:
            self.check(summary)
        except CensusRunError:
            return False
        return True

    def check(self, summary: RunSummary) -> None:
        """Return if the finished run counts as a success for the task; raise the matching error if not."""
        if summary.outcome is RunOutcome.SUCCEEDED:
            self._check_rejected_records(summary)
            return
        if summary.outcome is RunOutcome.SKIPPED and self.on_skipped == "succeed":
            return
        error_class, verdict = _FAILURES.get(summary.outcome, _FAILURES[RunOutcome.UNKNOWN])
        if summary.outcome is RunOutcome.SKIPPED:
            verdict += _skip_advice(self.on_skipped)
        raise error_class(f"{verdict}. {summary.describe()}", summary.to_json())

    def _check_rejected_records(self, summary: RunSummary) -> None:
        gated = self.max_rejected_records is not None or self.max_rejected_share is not None
        unread = [name for name in REJECTION_COUNTS if name in summary.unread]
        if gated and unread:
            raise CensusRejectedRecordsError(
                f"The Census sync run completed, but the route that read it does not carry {', '.join(unread)}, so "
                "max_rejected_records / max_rejected_share cannot be checked and the run is not taken as a success. "
                "Remove the limits, or use a connection whose Census serves GET /sync_runs/{id} (run "
                f"`python -m airflow_provider_census check`). {summary.describe()}",
                summary.to_json(),
            )
        rejected, limit = summary.rejected, self.max_rejected_records
        if limit is not None and rejected > limit:
            raise CensusRejectedRecordsError(
                f"The Census sync run completed but rejected {rejected} records, more than "
                f"max_rejected_records={limit}. {summary.describe()}",
                summary.to_json(),
            )
        processed, share = summary.records_processed or 0, self.max_rejected_share
        if share is not None and processed and rejected / processed > share:
            raise CensusRejectedRecordsError(
                f"The Census sync run completed but rejected {rejected} of {processed} records "
                f"({rejected / processed:.1%}), more than max_rejected_share={share:.1%}. {summary.describe()}",
                summary.to_json(),
            )


def _skip_advice(on_skipped: str) -> str:
    """What to set to accept a skip, unless the task already set it (and the skip stands anyway)."""
    if on_skipped == "fail":
        return " (set on_skipped='wait' or 'succeed' to accept this)"
    return (
        " (on_skipped='wait' is set, but no earlier run was left to wait for, or each fresh run was skipped "
        "too; see the sync's history in Census for what keeps it busy)"
    )


_FAILURES: dict[RunOutcome, tuple[type[CensusRunError], str]] = {
    RunOutcome.FAILED: (CensusRunFailedError, "The Census sync run failed"),
    RunOutcome.CANCELED: (CensusRunCanceledError, "The Census sync run was canceled before it finished"),
    RunOutcome.SKIPPED: (
        CensusRunSkippedError,
        "Census skipped the run because an earlier run of the sync was still going",
    ),
    RunOutcome.UNKNOWN: (
        CensusRunUnknownStateError,
        "The Census sync run is in a state this provider does not know, so it is not taken as success",
    ),
    RunOutcome.IN_PROGRESS: (CensusRunUnknownStateError, "The Census sync run has not finished"),
}
