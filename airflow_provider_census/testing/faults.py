"""Faults the emulator injects: what can go wrong between a client and Census.

A :class:`FaultProfile` makes a seeded, random share of requests fail (load tests and
chaos runs); :meth:`FaultPlan.fail_next` makes the next few matching requests fail for
sure (unit tests of retry logic). Both are decided before the request is handled, so a
faulted request changes nothing, except ``drop_after``, which handles the request and
then loses the answer.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "429-date",
    "500",
    "502",
    "503",
    "html",
    "cut_json",
    "empty",
    "drop",
    "drop_after",
    "latency",
    "401",
    "403",
    "404",
)


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    result = tuple(str(kind) for kind in kinds)
    unknown = [kind for kind in result if kind not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; expected some of {list(FAULT_KINDS)}")
    return result


PathPrefix = str | tuple[str, ...] | None
"""One path prefix, or several (any matches), or None for every path."""
RUN_READS: tuple[str, ...] = ("/sync_runs/", "/syncs/test_status")
"""The prefixes of the routes that read one run, by id or by V2's documented status call: with
``method="GET"``, a fault on every poll whichever route a client reads runs by."""


def _matches(methods: tuple[str, ...] | None, prefix: PathPrefix, method: str, paths: tuple[str, ...]) -> bool:
    """Whether the method is one of ``methods`` and one of ``paths`` starts with ``prefix`` (or one of them).

    ``paths`` holds the full path and the path after ``/api/vN``, so one prefix such as
    ``/sync_runs/`` covers both API versions while ``/api/v1/...`` still picks one.
    """
    return (methods is None or method.upper() in methods) and (
        prefix is None or any(path.startswith(prefix) for path in paths)
    )


def _paths(path: str, api_path: str | None) -> tuple[str, ...]:
    """What a prefix is matched on: the full path, and the path after ``/api/vN`` with its query, if any
    (so ``/syncs/test_status?sync_run_id=7`` picks the status reads of one run)."""
    return (path,) if api_path is None else (path, api_path)


@dataclass(frozen=True)
class FaultProfile:
    """A random fault for a share ``rate`` of the matching requests, drawn from ``kinds``.

    ``methods`` and ``path_prefix`` restrict which requests match (None: all); the prefix
    is matched against the full path and against the path after ``/api/vN``. When
    ``"latency"`` is among ``kinds`` and ``rate`` is above zero, ``latency`` is the delay
    of that fault; otherwise every matching request is delayed by ``latency`` seconds,
    so ``FaultProfile(latency=0.3)`` models a 300 ms round trip. ``retry_after`` is the
    ``Retry-After`` of the 429 faults. ``seed`` makes the draws repeatable.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "500")
    retry_after: float = 1.0
    latency: float = 0.0
    seed: int | None = None
    methods: tuple[str, ...] | None = None
    path_prefix: PathPrefix = None

    def __post_init__(self) -> None:
        """Normalise lists to tuples and reject nonsense early, in the test that wrote it."""
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate}")
        if self.latency < 0 or self.retry_after < 0:
            raise ValueError("latency and retry_after must not be negative")
        object.__setattr__(self, "kinds", _check_kinds(self.kinds))
        if self.rate > 0 and not self.kinds:
            raise ValueError("a fault rate needs at least one fault kind")
        if self.methods is not None:
            object.__setattr__(self, "methods", tuple(method.upper() for method in self.methods))

    def matches(self, method: str, path: str, api_path: str | None = None) -> bool:
        return _matches(self.methods, self.path_prefix, method, _paths(path, api_path))

    @property
    def base_delay(self) -> float:
        """The delay every matching request gets, whatever fault it draws."""
        if self.rate > 0 and "latency" in self.kinds:
            return 0.0
        return self.latency


@dataclass(frozen=True)
class Decision:
    """What to do with one request: wait ``delay`` seconds, then apply ``kind`` (if any)."""

    delay: float = 0.0
    kind: str | None = None
    retry_after: float = 1.0
    latency: float = 0.0


@dataclass
class _Pending:
    kind: str
    remaining: int
    methods: tuple[str, ...] | None
    path_prefix: PathPrefix
    retry_after: float
    latency: float


class FaultPlan:
    """Decides, thread-safely, which fault (if any) each incoming request gets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profile: FaultProfile | None = None
        self._rng = random.Random()  # noqa: S311 - fault draws, not cryptography
        self._pending: list[_Pending] = []

    def set_profile(self, profile: FaultProfile | None) -> None:
        with self._lock:
            self._profile = profile
            self._rng = random.Random(None if profile is None else profile.seed)  # noqa: S311

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        path_prefix: PathPrefix = None,
        retry_after: float = 1.0,
        latency: float = 1.0,
    ) -> None:
        """Give the next ``count`` matching requests fault ``kind``, before any random fault."""
        (checked,) = _check_kinds([kind])
        if count < 1:
            raise ValueError("count must be at least 1")
        methods = None if method is None else (method.upper(),)
        with self._lock:
            self._pending.append(_Pending(checked, count, methods, path_prefix, retry_after, latency))

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._profile = None

    def decide(self, method: str, path: str, api_path: str | None = None) -> Decision:
        """The fault for a request to ``path`` (``api_path``: the same after ``/api/vN``)."""
        paths = _paths(path, api_path)
        with self._lock:
            profile = self._profile
            use_profile = profile is not None and profile.matches(method, path, api_path)
            delay = profile.base_delay if profile is not None and use_profile else 0.0
            for pending in self._pending:
                if _matches(pending.methods, pending.path_prefix, method, paths):
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        self._pending.remove(pending)
                    return Decision(delay, pending.kind, pending.retry_after, pending.latency)
            if profile is None or not use_profile or profile.rate <= 0:
                return Decision(delay)
            if self._rng.random() >= profile.rate:
                return Decision(delay, None, profile.retry_after, profile.latency)
            kind = self._rng.choice(profile.kinds)
            return Decision(delay, kind, profile.retry_after, profile.latency)
