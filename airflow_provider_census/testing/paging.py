"""Census-style paging of list endpoints: ``page``, ``per_page`` and ``order``.

Kept apart from the web layer so the arithmetic (clamping, last page, neighbours) is
plain functions over plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_census.testing.errors import ApiError

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    order: str = "desc"


def _positive_int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a positive integer, not {raw!r}") from None
    if value < 1:
        raise ApiError(400, f"{name} must be a positive integer, not {raw!r}")
    return value


def parse(query: Mapping[str, str]) -> PageRequest:
    """Read the paging parameters; bad values are a 400 and ``per_page`` is clamped to 100."""
    page = _positive_int(query, "page", 1)
    per_page = min(_positive_int(query, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
    order = query.get("order", "desc").lower()
    if order not in ("asc", "desc"):
        raise ApiError(400, f"order must be 'asc' or 'desc', not {query.get('order')!r}")
    return PageRequest(page, per_page, order)


def paginate(items: list[Any], request: PageRequest) -> tuple[list[Any], dict[str, int | None]]:
    """Cut one page out of ``items`` (given oldest first); return it and its ``pagination``."""
    ordered = items if request.order == "asc" else list(reversed(items))
    total = len(ordered)
    last_page = max(1, -(-total // request.per_page))
    start = (request.page - 1) * request.per_page
    pagination: dict[str, int | None] = {
        "total_records": total,
        "per_page": request.per_page,
        "prev_page": request.page - 1 if request.page > 1 else None,
        "page": request.page,
        "next_page": request.page + 1 if request.page < last_page else None,
        "last_page": last_page,
    }
    return ordered[start : start + request.per_page], pagination
