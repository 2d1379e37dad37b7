"""Which routes this Census serves, as far as its answers have shown: one memory per process.

V2's reference (a Public Preview) documents only part of v1's routes; the others are sent to V2
on the belief that they exist (``Endpoint.documented_on_v2``). On V2 a missing route and a
missing object answer the same bare ``404``, so each answer is kept here, by base URL:
an assumed route that once answered is *served*, and its 404 from then on means the object is
missing; one found missing (another route found the very object it did not) is never asked
again in this process. Everything else reads this memory; nothing here sends a request.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_served: dict[str, set[str]] = {}
_missing: dict[str, set[str]] = {}
_lock = threading.Lock()


def is_served(base_url: str, route: str) -> bool:
    """Whether ``route`` (``"GET /syncs/{sync_id}/sync_runs"``) answered at ``base_url`` in this process."""
    return route in _served.get(base_url, ())


def is_missing(base_url: str, route: str) -> bool:
    """Whether ``route`` was found not to be served at ``base_url`` in this process."""
    return route in _missing.get(base_url, ())


def note_served(base_url: str, route: str) -> None:
    if not is_served(base_url, route):
        with _lock:
            _served.setdefault(base_url, set()).add(route)


def note_missing(base_url: str, route: str, evidence: str) -> None:
    """Remember that ``route`` is missing at ``base_url``, logging it the first time."""
    with _lock:
        known = _missing.setdefault(base_url, set())
        if route in known:
            return
        known.add(route)
    log.warning(
        "Census at %s does not serve %s, a route its V2 reference does not document (%s); "
        "this process does not ask for it again.",
        base_url,
        route,
        evidence,
    )


def forget() -> None:
    """Forget every route learnt: for a process that points the same base URL at another Census (tests)."""
    with _lock:
        _served.clear()
        _missing.clear()
