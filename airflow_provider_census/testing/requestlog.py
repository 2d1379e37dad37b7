"""The record of every request the emulator answered (or refused to answer).

Tests use it to assert how a client behaved: how often it polled, whether it retried a
trigger, how long it waited after a 429. The token is never recorded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecordedRequest:
    """One request: ``status`` is None when the connection was dropped without an answer."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    fault: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0


class RequestLog:
    """A thread-safe, append-only list of :class:`RecordedRequest`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def add(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def matching(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Requests with this method (any case) and exactly this path; None matches any."""
        wanted = None if method is None else method.upper()
        return [
            item
            for item in self.all()
            if (wanted is None or item.method == wanted) and (path is None or item.path == path)
        ]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
