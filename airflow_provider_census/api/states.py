"""How to read a sync run's state: the only module that knows Census's state names.

Census has renamed run states before without notice, so the rule here is that a state this
module does not know is never taken for success: it is reported as ``UNKNOWN`` and the
caller decides how long to keep waiting.
"""

from __future__ import annotations

import enum


class RunOutcome(str, enum.Enum):
    """What a run's ``status`` and ``canceled`` flag mean together."""

    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """True when the run will not change again; ``UNKNOWN`` may still be moving."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunOutcome.SUCCEEDED, RunOutcome.FAILED, RunOutcome.SKIPPED, RunOutcome.CANCELED})

IN_PROGRESS_STATES = frozenset({"queued", "working"})
RETIRED_IN_PROGRESS_STATES = frozenset({"new", "preparing", "retrying"})
COMPLETED = "completed"
FAILED = "failed"
"""Census's words for a run that succeeded and one that failed (provider 2.1's trigger yielded them as is)."""
SUCCESS_STATES = frozenset({COMPLETED})
FAILURE_STATES = frozenset({FAILED})
SKIPPED_STATES = frozenset({"skipped"})

_OUTCOME_BY_STATE: dict[str, RunOutcome] = {
    **dict.fromkeys(IN_PROGRESS_STATES | RETIRED_IN_PROGRESS_STATES, RunOutcome.IN_PROGRESS),
    **dict.fromkeys(SUCCESS_STATES, RunOutcome.SUCCEEDED),
    **dict.fromkeys(FAILURE_STATES, RunOutcome.FAILED),
    **dict.fromkeys(SKIPPED_STATES, RunOutcome.SKIPPED),
}


def normalize_state(status: object) -> str:
    """Census's state text, trimmed and lower-cased; anything that is not text becomes ''."""
    return status.strip().lower() if isinstance(status, str) else ""


def classify_run(status: object, canceled: object = False) -> RunOutcome:
    """The outcome of a run from its ``status`` and ``canceled`` fields.

    ``canceled: true`` wins over any status: such a run did not finish its work, whatever
    its status says. Retired names (``new``, ``preparing``, ``retrying``) still mean the run
    is going. Anything else unknown, including a missing status, is ``UNKNOWN``.
    """
    if canceled is True:
        return RunOutcome.CANCELED
    return _OUTCOME_BY_STATE.get(normalize_state(status), RunOutcome.UNKNOWN)


def is_retired_state(status: object) -> bool:
    """True for the old names of in-progress states, worth a note in the log."""
    return normalize_state(status) in RETIRED_IN_PROGRESS_STATES
