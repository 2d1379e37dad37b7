"""Sync runs and the scripts that decide how each run of an emulated sync behaves.

A real Census run moves from ``queued`` to ``working`` to an end state on its own
schedule. Tests need that schedule to be deterministic, so each sync carries a
:class:`RunScript` and every run it starts follows it, either counted in polls (each
``GET /sync_runs/{id}`` moves the run one step) or in wall-clock seconds (for benchmarks,
where thousands of pollers share one run and no single poller should drive it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

Outcome = Literal["completed", "failed", "skipped", "canceled", "retired", "unknown", "never"]
Advance = Literal["polls", "time"]

OUTCOMES: frozenset[str] = frozenset({"completed", "failed", "skipped", "canceled", "retired", "unknown", "never"})
_DEFAULT_STATUS_NAMES = {"retired": "preparing", "unknown": "exploded"}
_DEFAULT_STEPS = ("Preparing", "Running sync")


def iso(moment: datetime) -> str:
    """Format a UTC time the way Census does: milliseconds and a ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (f"{moment.microsecond // 1000:03d}Z")


def utcnow() -> datetime:
    """The current time in UTC; one place so that every timestamp agrees."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunScript:
    """How every run of a sync behaves, from trigger to its end.

    ``outcome`` picks the end: ``completed``, ``failed``, ``skipped`` (the run is skipped
    at once), ``canceled`` (ends with ``canceled: true`` and ``status=cancel_status``),
    ``retired`` (reports the retired state ``status_name`` while going, then completes),
    ``unknown`` (ends in the undocumented state ``status_name``) or ``never`` (stays
    ``working`` forever). With ``advance="polls"`` the run stays ``queued_polls`` GETs
    queued and ``working_polls`` GETs working; with ``advance="time"`` it uses
    ``queued_seconds`` and ``working_seconds`` of wall-clock time instead.
    """

    outcome: Outcome = "completed"
    queued_polls: int = 1
    working_polls: int = 2
    advance: Advance = "polls"
    queued_seconds: float = 0.0
    working_seconds: float = 0.0
    records_processed: int = 100
    records_updated: int = 100
    records_failed: int = 0
    records_invalid: int = 0
    source_record_count: int = 100
    error_code: str | None = "SYNC_FAILED"
    error_message: str | None = "The sync failed."
    error_detail: str | None = "The emulator was scripted to fail this run."
    cancel_status: str = "failed"
    status_name: str | None = None
    current_steps: tuple[str, ...] = _DEFAULT_STEPS  # the last one is shown while working

    def __post_init__(self) -> None:
        """Reject scripts that cannot run, so a typo fails the test that wrote it."""
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; expected one of {sorted(OUTCOMES)}")
        if self.advance not in ("polls", "time"):
            raise ValueError(f"advance must be 'polls' or 'time', not {self.advance!r}")
        if min(self.queued_polls, self.working_polls) < 0:
            raise ValueError("queued_polls and working_polls must not be negative")
        if min(self.queued_seconds, self.working_seconds) < 0:
            raise ValueError("queued_seconds and working_seconds must not be negative")

    @property
    def resolved_status_name(self) -> str:
        """The odd state name for ``retired``/``unknown`` runs, with a sensible default."""
        if self.status_name is not None:
            return self.status_name
        return _DEFAULT_STATUS_NAMES.get(self.outcome, self.outcome)


class Run:
    """One sync run: its script, how far it has got, and how it looks through the API.

    Not thread-safe by itself; the workspace lock guards every call.
    """

    def __init__(self, run_id: int, sync_id: int, script: RunScript, *, full_sync: bool) -> None:
        self.id = run_id
        self.sync_id = sync_id
        self.script = script
        self.full_sync = full_sync
        self.created_at = utcnow()
        self.created_mono = time.monotonic()
        self.polls = 0
        self.canceled = False
        self.cancel_at: datetime | None = None
        self.cancel_mono: float | None = None
        self.finished_mono: float | None = None
        self.skipped = script.outcome == "skipped"
        self.trigger_reason: dict[str, str] = {"ui_tag": "API", "ui_detail": "Triggered via API"}
        self.fixed: dict[str, Any] | None = None
        if self.skipped:
            self.finished_mono = self.created_mono

    @classmethod
    def historical(cls, payload: dict[str, Any], script: RunScript) -> Run:
        """A run that ended before the emulator started: it shows ``payload`` unchanged."""
        run = cls(int(payload["id"]), int(payload["sync_id"]), script, full_sync=bool(payload["full_sync"]))
        run.fixed = dict(payload)
        run.finished_mono = run.created_mono
        return run

    def mark_skipped(self) -> None:
        """Skip this run at once: an earlier run of its sync was still going."""
        self.skipped = True
        self.finished_mono = self.created_mono

    # -- where the run is -------------------------------------------------------------

    def _phase_by_polls(self) -> str:
        step = max(self.polls, 1)
        if step <= self.script.queued_polls:
            return "queued"
        if step <= self.script.queued_polls + self.script.working_polls:
            return "working"
        return "done"

    def _phase_by_time(self, now: float) -> str:
        elapsed = now - self.created_mono
        if elapsed < self.script.queued_seconds:
            return "queued"
        if elapsed < self.script.queued_seconds + self.script.working_seconds:
            return "working"
        return "done"

    def phase(self, now: float | None = None) -> str:
        """``queued``, ``working``, ``done``, ``canceled`` or ``skipped``, without moving on."""
        if self.fixed is not None:
            return "done"
        if self.skipped:
            return "skipped"
        if self.canceled:
            return "canceled"
        now = time.monotonic() if now is None else now
        phase = self._phase_by_time(now) if self.script.advance == "time" else self._phase_by_polls()
        if phase == "done" and self.script.outcome == "never":
            return "working"
        return phase

    def in_progress(self) -> bool:
        """Whether the run still counts as going (a new trigger of its sync is skipped)."""
        return self.phase() in ("queued", "working")

    def poll(self) -> None:
        """Advance one step, as one ``GET /sync_runs/{id}`` does."""
        if self.fixed is None and self.script.advance == "polls":
            self.polls += 1
        self._note_finish()

    def _note_finish(self) -> None:
        if self.finished_mono is None and self.phase() == "done":
            self.finished_mono = self._end_mono()

    def _end_mono(self) -> float:
        if self.script.advance == "time":
            return self.created_mono + self.script.queued_seconds + self.script.working_seconds
        return time.monotonic()

    def finished_at(self) -> float | None:
        """The ``time.monotonic()`` at which the run ended, or None while it has not ended.

        Time-advanced runs know their end in advance, so benchmarks can measure how long
        after the end a poller noticed it.
        """
        if self.fixed is not None or self.skipped or self.canceled:
            return self.finished_mono
        if self.script.outcome == "never":
            return None
        if self.script.advance == "time":
            return self._end_mono()
        self._note_finish()
        return self.finished_mono

    def cancel(self) -> bool:
        """Cancel the run if it is still going; answer whether anything changed."""
        if not self.in_progress():
            return False
        self.canceled = True
        self.cancel_at = utcnow()
        self.cancel_mono = time.monotonic()
        self.finished_mono = self.cancel_mono
        return True

    # -- how the API shows it -----------------------------------------------------------

    def _wall(self, mono: float) -> datetime:
        return self.created_at + timedelta(seconds=max(0.0, mono - self.created_mono))

    def to_api(self) -> dict[str, Any]:
        """The run as ``GET /sync_runs/{id}`` shows it right now."""
        if self.fixed is not None:
            return dict(self.fixed)
        phase = self.phase()
        view = self._blank()
        if phase in ("queued", "working"):
            view.update(self._going(phase))
        elif phase == "skipped":
            view["status"] = "skipped"
        elif phase == "canceled":
            view.update(status=self.script.cancel_status, canceled=True)
            view["updated_at"] = iso(self.cancel_at or self.created_at)
        else:
            view.update(self._ended())
        return view

    def _blank(self) -> dict[str, Any]:
        created = iso(self.created_at)
        return {
            "id": self.id,
            "sync_id": self.sync_id,
            "source_record_count": None,
            "records_processed": None,
            "records_updated": None,
            "records_failed": None,
            "records_invalid": None,
            "created_at": created,
            "updated_at": created,
            "completed_at": None,
            "scheduled_execution_time": None,
            "error_code": None,
            "error_message": None,
            "error_detail": None,
            "status": "queued",
            "current_step": None,
            "canceled": False,
            "full_sync": self.full_sync,
            "sync_trigger_reason": dict(self.trigger_reason),
        }

    def _going(self, phase: str) -> dict[str, Any]:
        script = self.script
        status = script.resolved_status_name if script.outcome == "retired" else phase
        # Census names a step only once the run is working; a queued run has none yet.
        step = (script.current_steps or _DEFAULT_STEPS)[-1] if phase == "working" else None
        return {"status": status, "current_step": step, "updated_at": iso(utcnow())}

    def _ended(self) -> dict[str, Any]:
        script = self.script
        ended = iso(self._wall(self.finished_at() or time.monotonic()))
        view: dict[str, Any] = {"updated_at": ended}
        if script.outcome in ("completed", "retired"):
            view.update(
                status="completed",
                completed_at=ended,
                source_record_count=script.source_record_count,
                records_processed=script.records_processed,
                records_updated=script.records_updated,
                records_failed=script.records_failed,
                records_invalid=script.records_invalid,
            )
        elif script.outcome == "failed":
            view.update(
                status="failed",
                current_step=(script.current_steps or _DEFAULT_STEPS)[-1],
                error_code=script.error_code,
                error_message=script.error_message,
                error_detail=script.error_detail,
            )
        elif script.outcome == "canceled":
            view.update(status=script.cancel_status, canceled=True)
        else:  # "unknown"
            view["status"] = script.resolved_status_name
        return view
