"""The events a Census trigger yields and a task reads: one schema, shared by triggerer and worker.

The worker imports this module, not the triggers, to read what a trigger reported. Every event
holds JSON primitives only.

Event schema, version 1::

    {"schema_version": 1, "status": "finished" | "timeout" | "error" | "stopped",
     "sync_run_id": int, "summary": {...run summary...} | None, "message": str,
     "canceled_run": bool, "task_state": {...} | None, "error": str | None, "http_status": int | None}

``stopped`` ends the wait for one run of many when another failed and ``fail_fast`` is set.
The many-runs event is ``{"schema_version": 1, "runs": [one event per run, as above],
"task_state": {...}}``. ``task_state`` is the task's own record of its wait (its run, deadlines,
skips; for many syncs, where each stands), handed to the trigger and back untouched: the one
channel in which a task's state crosses a deferral. Not the deferral's kwargs, which Airflow 3's
``dag.test()`` replaces with the event when a trigger fires.

Provider 2.1's trigger class path yields 2.1's shape (``sync_run_id``, ``status`` ``completed``
or ``failed``, ``error_message``) with the event above under ``census_event``, so code written
against 2.1's event reads it too::

    {"sync_run_id": int, "status": PROVIDER_21_SUCCESS | PROVIDER_21_FAILURE,
     "error_message": str | None, "census_event": {...the event above...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from airflow_provider_census.api.errors import CensusError, is_error_name, rebuild_error
from airflow_provider_census.api.models import optional_int
from airflow_provider_census.api.states import COMPLETED, FAILED, RunOutcome
from airflow_provider_census.runs import RunExpectations, RunSummary, describe

EVENT_SCHEMA_VERSION = 1
EVENT_STATUSES = ("finished", "timeout", "error", "stopped")
PROVIDER_21_SUCCESS = COMPLETED
PROVIDER_21_FAILURE = FAILED
"""The two statuses 2.1's trigger yielded; 2.1's sensor took the first as success and failed on any other."""
NESTED_EVENT_KEY = "census_event"
"""Where the 2.1-shaped event of ``CensusTrigger`` (provider 2.1's class path) carries this provider's event."""


@dataclass(frozen=True)
class RunEvent:
    """What the trigger reports, and what ``execute_complete`` checks before trusting it.

    ``error`` names the provider's exception class that ended a wait with status ``error``
    (``CensusAuthenticationError`` for a 401, ``CensusPollingError`` when polls kept failing),
    so a deferred task raises the class it would have raised in the worker.
    """

    status: str
    sync_run_id: int
    summary: RunSummary | None
    message: str
    canceled_run: bool = False
    task_state: dict[str, Any] | None = None
    error: str | None = None
    http_status: int | None = None
    schema_version: int = EVENT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["summary"] = None if self.summary is None else self.summary.to_json()
        return data

    @classmethod
    def from_dict(cls, event: object) -> RunEvent:
        """The event, or an error that says it cannot be read (so the task fails loudly, never succeeds)."""
        try:
            return cls._read(event)
        except (KeyError, TypeError, ValueError) as exc:
            raise CensusError(
                f"The Census trigger's event cannot be read ({exc}): {event!r:.300}. "
                "The run's outcome is unknown; check it in Census, then clear the task to wait again."
            ) from None

    @classmethod
    def _read(cls, event: object) -> RunEvent:
        if isinstance(event, Mapping) and NESTED_EVENT_KEY in event:
            event = event[NESTED_EVENT_KEY]
        if not isinstance(event, Mapping):
            raise TypeError(f"expected a mapping, got {type(event).__name__}")
        if event.get("schema_version") != EVENT_SCHEMA_VERSION:
            raise ValueError(f"schema_version {event.get('schema_version')!r}, expected {EVENT_SCHEMA_VERSION}")
        if event.get("status") not in EVENT_STATUSES:
            raise ValueError(f"unknown status {event.get('status')!r}")
        run_id = event.get("sync_run_id")
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise ValueError("no integer sync_run_id")
        raw_summary = event.get("summary")
        if raw_summary is None and event["status"] == "finished":
            raise ValueError("a finished run without its summary")
        error = event.get("error")
        if error is not None and not is_error_name(error):
            raise ValueError(f"unknown error {error!r}")
        return cls(
            status=event["status"],
            sync_run_id=run_id,
            summary=None if raw_summary is None else RunSummary.from_json(raw_summary),
            message=str(event.get("message", "")),
            canceled_run=bool(event.get("canceled_run")),
            task_state=_task_state(event.get("task_state")),
            error=error,
            http_status=optional_int(event.get("http_status")),
        )

    def described(self) -> str:
        """The event's message with the run's paragraph."""
        return f"{self.message} {describe(self.summary, self.sync_run_id)}"

    def error_to_raise(self) -> CensusError:
        """The exception a wait that ended with ``error`` stands for, of the class the worker path raises."""
        return rebuild_error(self.error or "CensusPollingError", self.message, self.http_status, self.summary_json())

    def fails(self, expectations: RunExpectations, *, watched_only: bool) -> bool:
        """Whether this end counts as a failure for ``fail_fast``: a wait that did not see the run end,
        or a run of the task's own that its checks reject (a skip it waits out is not one yet)."""
        if self.status != "finished" or self.summary is None:
            return True
        if watched_only:
            return False
        summary = self.summary
        skip_left_to_task = summary.outcome is RunOutcome.SKIPPED and expectations.waits_out_skips
        return not skip_left_to_task and not expectations.accept(summary)

    def summary_json(self) -> dict[str, Any]:
        return {} if self.summary is None else self.summary.to_json()

    def in_provider_21_shape(self) -> dict[str, Any]:
        """This event inside the shape 2.1's trigger yielded, for readers written against 2.1.

        Only a run that succeeded says ``completed``; every other end (failed, canceled,
        skipped, an unknown state, a deadline, an error) says ``failed``, the one other value
        2.1 yielded, so a reader that checks for either never takes it as success.
        ``error_message`` holds what 2.1 put there (Census's error message or detail) when
        Census gave one, else this event's account of the end.
        """
        summary = self.summary
        succeeded = self.status == "finished" and summary is not None and summary.outcome is RunOutcome.SUCCEEDED
        census_error = None if summary is None else summary.error_message or summary.error_detail
        return {
            "sync_run_id": self.sync_run_id,
            "status": PROVIDER_21_SUCCESS if succeeded else PROVIDER_21_FAILURE,
            "error_message": census_error if succeeded else census_error or self.described(),
            NESTED_EVENT_KEY: self.to_dict(),
        }


def _task_state(value: object) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise TypeError("task_state is not a mapping")
    return value


@dataclass(frozen=True)
class RunsEvent:
    """What the many-runs trigger reports: one :class:`RunEvent` per run, in the order it was given them.

    ``task_state`` is what the task handed the trigger to get back with the event (the module's docstring).
    """

    runs: tuple[RunEvent, ...]
    task_state: dict[str, Any] | None = None
    schema_version: int = EVENT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "runs": [event.to_dict() for event in self.runs],
            "task_state": self.task_state,
        }

    @classmethod
    def from_dict(cls, event: object) -> RunsEvent:
        """The events, or an error that says they cannot be read (so the task fails loudly, never succeeds)."""
        try:
            if not isinstance(event, Mapping) or event.get("schema_version") != EVENT_SCHEMA_VERSION:
                raise ValueError("not a many-runs event of schema version 1")
            runs = event.get("runs")
            if not isinstance(runs, list):
                raise TypeError("no list of runs")
            return cls(tuple(RunEvent._read(run) for run in runs), _task_state(event.get("task_state")))
        except (KeyError, TypeError, ValueError) as exc:
            raise CensusError(
                f"The Census trigger's event cannot be read ({exc}): {event!r:.300}. "
                "The runs' outcomes are unknown; check them in Census, then clear the task to wait again."
            ) from None
