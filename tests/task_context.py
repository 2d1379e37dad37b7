"""A minimal task context for running operators and sensors directly, as Airflow's own provider tests do."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import TaskDeferred


@dataclass
class FakeTaskInstance:
    try_number: int = 1
    start_date: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    pushed: list[tuple[str, Any]] = field(default_factory=list)
    stats_tags: dict[str, str] = field(default_factory=dict)  # Airflow 3.3's ResumableJobMixin reads it

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))

    def xcom(self, key: str) -> Any:
        return [value for pushed_key, value in self.pushed if pushed_key == key][-1]


def context_for(ti: FakeTaskInstance | None = None) -> dict[str, Any]:
    return {"ti": ti or FakeTaskInstance()}


async def only_event(trigger: Any) -> Any:
    """The payload of the one event a trigger yields; fails if it yields none or several."""
    events = [event async for event in trigger.run()]
    assert len(events) == 1, events
    return events[0].payload


def run_deferred(task: Any, context: dict[str, Any]) -> Any:
    """Execute a task; each time it defers, run its trigger here and resume it, as a triggerer would."""
    try:
        return task.execute(context)
    except TaskDeferred as deferred:
        return resume(task, context, deferred)


def resume(task: Any, context: dict[str, Any], deferred: TaskDeferred) -> Any:
    assert deferred.timeout is None, "tasks defer without a timeout and let the trigger decide"
    while True:
        event = asyncio.run(only_event(deferred.trigger))
        try:
            return getattr(task, deferred.method_name)(context, event, **(deferred.kwargs or {}))
        except TaskDeferred as again:
            deferred = again
