"""Reading selector strings: each form's parser, and the messages that say what is wrong with a string.

Pure: no Airflow and no HTTP (the error's base class comes from the provider's error tree, so
one ``except CensusInputError`` covers it). Selections are parsed once, before anything is
asked of Census, so a typo fails the task at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TypeAlias

from airflow_provider_census.api.errors import CensusInputError
from airflow_provider_census.api.inputs import RENDERED_TO_NOTHING
from airflow_provider_census.selectors.matching import (
    ANY,
    DestinationSelector,
    IdSelector,
    LabelSelector,
    Selector,
    SourceSelector,
)
from airflow_provider_census.selectors.selection import Selection

PREFIXES = ("id", "label", "source", "destination")
MAX_SOURCE_PARTS = 3
FORMS = (
    "A selector is one of: 12 or id:12 (a sync id); label:crm_* (the sync's label); "
    "source:dim_users, source:analytics.dim_users or source:prod.analytics.dim_users (a model, "
    "segment or dataset by name, or a table by name, schema.table or catalog.schema.table); "
    "destination:salesforce or destination:salesforce/contact (the destination connection's name "
    "or type, then its object). Globs (*, ?, [...]) work in every part, case-insensitively."
)
_PREFIX_ALIASES = {
    "model": "source",
    "table": "source",
    "segment": "source",
    "dataset": "source",
    "src": "source",
    "sync": "id",
    "sync_id": "id",
    "name": "label",
    "tag": "label",
    "dest": "destination",
    "object": "destination",
    "connection": "destination",
}
"""Prefixes people reach for (from dbt or from Census's own words), and the one they mean."""
_DIGITS = re.compile(r"[0-9]+")
_NUMBER_LIKE = re.compile(r"[-+]?[0-9]*\.?[0-9]+")
_SECOND_SELECTOR = re.compile(r"[\s,](?:id|label|source|destination):\S", re.IGNORECASE)
_SEVERAL_IDS = re.compile(r"[0-9]+(?:[\s,]+[0-9]+)+")
_NOT_AN_ID = "is not a sync id: sync ids are positive integers, e.g. 12 or id:12"

SelectionInput: TypeAlias = str | int | Sequence[str | int]
"""What ``select`` and ``exclude`` take: a selector string, a sync id, or a list of them."""


class CensusSelectorError(CensusInputError):
    """A selector string cannot be read; the message names it, its position and the accepted forms."""


def parse_selection(select: SelectionInput, exclude: SelectionInput | None = None) -> Selection:
    """Check and parse every selector string, so a bad one fails before anything is asked of Census."""
    include = _parse_list(select, "select")
    if not include:
        raise CensusSelectorError(
            f"select is an empty list: name at least one sync, e.g. select=['label:crm_*'] or select=[12]. {FORMS}"
        )
    return Selection(include, () if exclude is None else _parse_list(exclude, "exclude"))


def parse_selectors(value: SelectionInput, argument: str = "select") -> tuple[Selector, ...]:
    """Check and parse one list of selectors, which may be empty: part of a selection built in code.

    ``argument`` names the list in messages (``extra_select[1] 'lable:x' ...``).
    """
    return _parse_list(value, argument)


def _parse_list(value: object, argument: str) -> tuple[Selector, ...]:
    if isinstance(value, (str, int)):
        return (_parse_item(value, argument),)
    if not isinstance(value, (list, tuple)):
        raise CensusSelectorError(
            f"{argument} must be a selector string, a sync id or a list of them, got {type(value).__name__}. {FORMS}"
        )
    return tuple(_parse_item(item, f"{argument}[{position}]") for position, item in enumerate(value))


def _parse_item(item: object, where: str) -> Selector:
    """One selector; ``where`` names the argument and position for the message (``select[2]``)."""
    if isinstance(item, bool) or not isinstance(item, (str, int)):
        raise CensusSelectorError(
            f"{where} is a {type(item).__name__} ({item!r}), not a selector: pass text such as "
            f"'label:crm_*' or an integer sync id. {FORMS}"
        )
    if isinstance(item, int):
        return IdSelector(_sync_id(str(item), item, where), str(item))
    text = item.strip()
    _reject_whole_text_mistakes(text, item, where)
    prefix, colon, value = text.partition(":")
    if not colon:
        return _parse_bare(text, where)
    method = prefix.strip().casefold()
    if method not in PREFIXES:
        raise _error(where, item, _unknown_prefix(text, prefix.strip()))
    value = value.strip()
    if not value:
        raise _error(where, item, f"has nothing after '{prefix}:'; write e.g. {_EXAMPLES[method]}")
    return _PARSERS[method](value, text, where)


def _reject_whole_text_mistakes(text: str, item: str, where: str) -> None:
    """Mistakes a prefix cannot reveal: a template that rendered to nothing or to a list, two selectors in one."""
    if text in RENDERED_TO_NOTHING:
        raise _error(
            where, item, "is empty: a template probably rendered to nothing (check its param, XCom or variable)"
        )
    if _SECOND_SELECTOR.search(text) or _SEVERAL_IDS.fullmatch(text):
        raise _error(
            where, item, "holds more than one selector: pass each as its own list item, e.g. ['label:crm_*', 12]"
        )
    if text.startswith(("[", "(")) and text.endswith(("]", ")")):
        raise _error(
            where,
            item,
            "looks like a list rendered to text: pass a list, or render templates as native objects "
            "(render_template_as_native_obj=True on the DAG)",
        )


def _parse_bare(text: str, where: str) -> Selector:
    """Text without a prefix: a sync id, or a mistake worth a hint."""
    if _DIGITS.fullmatch(text):
        return IdSelector(_sync_id(text, text, where), text)
    if _NUMBER_LIKE.fullmatch(text):
        problem = _NOT_AN_ID
    else:
        problem = f"has no prefix and is not a sync id; to select by label write label:{text}"
    raise _error(where, text, problem)


def _sync_id(digits: str, given: object, where: str) -> int:
    sync_id = int(digits) if _DIGITS.fullmatch(digits) else 0
    if sync_id < 1:
        raise _error(where, given, _NOT_AN_ID)
    return sync_id


def _parse_id(value: str, text: str, where: str) -> Selector:
    if not _DIGITS.fullmatch(value):
        hint = "; to select many syncs use label:, source: or destination: globs" if ANY in value else ""
        raise _error(where, text, _NOT_AN_ID + hint)
    return IdSelector(_sync_id(value, text, where), text)


def _parse_label(value: str, text: str, where: str) -> Selector:
    return LabelSelector(value.casefold(), text)


def _parse_source(value: str, text: str, where: str) -> Selector:
    parts = tuple(part.strip().casefold() for part in value.split("."))
    if len(parts) > MAX_SOURCE_PARTS:
        raise _error(
            where,
            text,
            f"has {len(parts)} dotted parts; source: takes a name, schema.table or catalog.schema.table "
            "(a dot inside a name is matched with ?)",
        )
    if not all(parts):
        raise _error(where, text, "has an empty part between dots; write e.g. source:analytics.dim_users")
    return SourceSelector(parts, text)


def _parse_destination(value: str, text: str, where: str) -> Selector:
    connection, slash, obj = (part.strip().casefold() for part in value.partition("/"))
    if not connection:
        raise _error(where, text, f"names no connection before '/'; for any connection write destination:*/{obj}")
    if slash and not obj:
        raise _error(where, text, f"names no object after '/'; write destination:{connection} for every object")
    return DestinationSelector(connection, obj or None, text)


_PARSERS = {
    "id": _parse_id,
    "label": _parse_label,
    "source": _parse_source,
    "destination": _parse_destination,
}
_EXAMPLES = {
    "id": "id:12",
    "label": "label:crm_*",
    "source": "source:analytics.dim_users",
    "destination": "destination:salesforce/contact",
}


def _unknown_prefix(text: str, prefix: str) -> str:
    """What is wrong with a prefix we do not know, with the nearest known one when there is one."""
    if "://" in text:
        return (
            "is a URI, not a selector: turn table URIs into selectors with "
            "airflow_provider_census.assets.tables.table_selectors_from_uris()"
        )
    if not prefix:
        return "has nothing before ':'; start it with id:, label:, source: or destination:"
    folded = prefix.casefold()
    nearest = _PREFIX_ALIASES.get(folded) or next(iter(difflib.get_close_matches(folded, PREFIXES, n=1)), None)
    hint = f"; did you mean {nearest}:?" if nearest else ""
    return f"has an unknown prefix '{prefix}:'{hint}"


def _error(where: str, given: object, problem: str) -> CensusSelectorError:
    return CensusSelectorError(f"{where} {given!r} {problem}. {FORMS}")
