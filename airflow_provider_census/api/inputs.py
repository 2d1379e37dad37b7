"""Arguments checked before anything is sent, so a bad id fails with a message that names it.

Census would answer most of these with a bare 404 or 400; checking here lets the error say
which argument was wrong and what the usual cause is (a template that rendered to nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_census.api.errors import CensusInputError

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25
ORDERS = ("asc", "desc")
SYNC_OPERATIONS = ("append", "insert", "mirror", "update", "upsert")
RENDERED_TO_NOTHING = ("", "None")


@dataclass(frozen=True)
class PageQuery:
    """Which page of a list to ask for; checked against Census's limits."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    order: str = "desc"

    def __post_init__(self) -> None:
        if isinstance(self.page, bool) or not isinstance(self.page, int) or self.page < 1:
            raise CensusInputError(f"page must be an integer from 1, got {self.page!r}")
        if (
            isinstance(self.per_page, bool)
            or not isinstance(self.per_page, int)
            or not 1 <= self.per_page <= MAX_PER_PAGE
        ):
            raise CensusInputError(f"per_page must be an integer from 1 to {MAX_PER_PAGE}, got {self.per_page!r}")
        if self.order not in ORDERS:
            raise CensusInputError(f"order must be 'asc' or 'desc', got {self.order!r}")

    def params(self) -> dict[str, str | int | bool | None]:
        return {"page": self.page, "per_page": self.per_page, "order": self.order}

    def following(self, page_number: int) -> PageQuery:
        return PageQuery(page_number, self.per_page, self.order)


def census_id(value: object, name: str) -> int:
    """A positive integer id from an int or a string of digits (templates render to text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CensusInputError(f"{name} must be a positive integer Census id, got {value!r}. {_id_hint(value, name)}")
    return value


def _id_hint(value: object, name: str) -> str:
    """What to do about a bad id: a template that rendered to nothing is the usual cause of '' and 'None'."""
    if isinstance(value, str) and value.strip() in RENDERED_TO_NOTHING:
        return (
            f"A template for {name} probably rendered to nothing: check that the XCom, param or "
            "variable it reads exists (for a run id, that the trigger task ran and returned it)."
        )
    if name == "sync_run_id":
        return "Pass the id that CensusTriggerSyncOperator returned, e.g. \"{{ ti.xcom_pull(task_ids='trigger') }}\"."
    return "Find the id in the Census app's URL (for a sync: /syncs/<id>)."


def id_or_slug(value: object, name: str) -> str | int:
    """An integer id or a text id (a v1 slug, a V2 activation id such as ``glimmering_donkey``).

    Census accepts both in the same place, so digits become an int and other text is kept.
    """
    if isinstance(value, str) and value.strip() and not value.strip().isdigit():
        return value.strip()
    return census_id(value, name)


def object_name(value: object) -> str:
    """A destination (activation) object's full name, such as ``user`` or ``custom_object:deals``."""
    if not isinstance(value, str) or not value.strip():
        raise CensusInputError(f"object_name must be an object's full name, e.g. 'user', got {value!r}")
    return value.strip()


def group_id(value: object) -> str | None:
    """A Fivetran group id (text), or None when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise CensusInputError(f"group_id must be a Fivetran group id (text, e.g. 'projected_sickle'), got {value!r}")
    return value.strip()


def sync_config(config: object) -> Mapping[str, Any]:
    """A sync's configuration with the fields Census requires, checked so a typo fails before the request."""
    if not isinstance(config, Mapping):
        raise CensusInputError(f"a sync configuration must be a mapping, got {type(config).__name__}")
    missing = [
        key for key in ("operation", "source_attributes", "destination_attributes", "mappings") if key not in config
    ]
    if missing:
        raise CensusInputError(f"the sync configuration lacks {', '.join(missing)} (required by Census)")
    if config["operation"] not in SYNC_OPERATIONS:
        raise CensusInputError(f"operation must be one of {', '.join(SYNC_OPERATIONS)}, got {config['operation']!r}")
    return config


def sync_changes(changes: object) -> Mapping[str, Any]:
    if not isinstance(changes, Mapping) or not changes:
        raise CensusInputError("update_sync needs a non-empty mapping of the fields to change")
    return changes
