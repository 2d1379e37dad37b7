"""The record of every request the emulator answered (or refused to answer).

Tests use it to assert how a client behaved: how often it polled, whether it retried a
trigger, how long it waited after a 429, which API version it spoke. The token is never
recorded. Each request keeps its full path and the path after ``/api/vN``, so a test can
name ``/syncs/60/trigger`` and mean either version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecordedRequest:
    """One request: ``status`` is None when the connection was dropped without an answer.

    ``api_version`` is ``"v1"`` or ``"v2"`` (None for a path under neither), and
    ``api_path`` the path after ``/api/vN``, e.g. ``/syncs/60/trigger``.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    fault: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    api_version: str | None = None
    api_path: str = ""

    def has_path(self, path: str) -> bool:
        """Whether ``path`` names this request, spelled in full or after ``/api/vN``."""
        return path in (self.path, self.api_path)


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

    def matching(
        self, method: str | None = None, path: str | None = None, api_version: str | None = None
    ) -> list[RecordedRequest]:
        """Requests with this method (any case), path (full or after ``/api/vN``) and version.

        None matches anything, so ``matching("POST", "/syncs/60/trigger")`` finds the
        triggers of sync 60 through both versions.
        """
        wanted = None if method is None else method.upper()
        return [
            item
            for item in self.all()
            if (wanted is None or item.method == wanted)
            and (path is None or item.has_path(path))
            and (api_version is None or item.api_version == api_version)
        ]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
