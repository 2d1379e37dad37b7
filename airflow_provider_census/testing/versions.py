"""The API versions the emulator speaks, and how a request path tells which one it is for.

Census serves v1 under ``/api/v1`` and V2 (Activations) under ``/api/v2`` from one host, for
one workspace. Every layer (auth, faults, the request log, the handlers) asks this module
which version a path belongs to, so the prefixes are spelled in one place only.
"""

from __future__ import annotations

from collections.abc import Iterable

API_VERSIONS: tuple[str, ...] = ("v1", "v2")
# What each version takes as its bearer token, in words fit for an error message.
CREDENTIALS: dict[str, str] = {"v1": "a workspace API key", "v2": "an Activations personal access token"}
V2_ROUTE_MODES = ("all", "documented")
"""What V2 serves: every route (v1's too, as the provider assumes) or only those its reference documents."""


def prefix(version: str) -> str:
    """The path every route of ``version`` starts with, e.g. ``/api/v2``."""
    return f"/api/{version}"


def split(path: str) -> tuple[str | None, str]:
    """``(version, api_path)`` of a request path; ``(None, path)`` when it is under no version.

    ``/api/v2/syncs/60`` gives ``("v2", "/syncs/60")``. The version must be a whole path
    segment, so ``/api/v10/...`` belongs to no version.
    """
    for version in API_VERSIONS:
        base = prefix(version)
        if path == base:
            return version, "/"
        if path.startswith(base + "/"):
            return version, path[len(base) :]
    return None, path


def checked(versions: Iterable[str]) -> tuple[str, ...]:
    """The versions a workspace serves, in canonical order; unknown names or none are refused.

    Refusing here means a typo such as ``"V2"`` fails where the emulator is built, not as
    a puzzling 404 on the first request.
    """
    wanted = {str(version) for version in versions}
    unknown = sorted(wanted.difference(API_VERSIONS))
    if unknown:
        raise ValueError(f"unknown API versions {unknown}; expected some of {list(API_VERSIONS)}")
    if not wanted:
        raise ValueError(f"an emulated workspace must serve at least one of {list(API_VERSIONS)}")
    return tuple(version for version in API_VERSIONS if version in wanted)
