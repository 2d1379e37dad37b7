"""Resolving a sync selection against Census, for :meth:`CensusHook.select_syncs`.

The selector language is pure (:mod:`airflow_provider_census.selectors`); here each sync
Census lists becomes the facts a selection is matched on. Only what the selection needs is
looked up: a model's name when the sync's answer gave only the model's id, and the
destination connections' names and slugs (one listing) for ``destination:`` selectors.
Everything happens when the task runs, never while a DAG file is parsed.

It asks Census through the few calls of :class:`SyncLookups`, not through the hook's class,
so the hook imports this module and this module never imports the hook.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from airflow_provider_census.api.errors import (
    CensusApiError,
    CensusInputError,
    CensusNoSyncSelectedError,
    CensusNotFoundError,
)
from airflow_provider_census.api.models import Activation, SourceObject, Sync
from airflow_provider_census.api.run_read import is_route_404
from airflow_provider_census.selectors import Selection, SyncFacts
from airflow_provider_census.version_compat import AirflowSkipException

log = logging.getLogger(__name__)


class SyncLookups(Protocol):
    """The calls resolving a selection makes: ``CensusHook``'s methods of the same names."""

    def get_conn(self) -> object:
        """Read the connection and open the client, once, before threads share them."""

    def iter_syncs(self, *, group_id: str | None = None) -> Iterator[Sync]: ...

    def get_sync(self, sync_id: int | str) -> Sync: ...

    def get_model(self, source: int | str, model_id: int) -> SourceObject: ...

    def iter_activations(self, *, group_id: str | None = None) -> Iterator[Activation]: ...


ON_NO_MATCH_CHOICES = ("fail", "skip", "empty")


def checked_on_no_match(on_no_match: str) -> str:
    """``on_no_match`` if it is one of :data:`ON_NO_MATCH_CHOICES`; checked where the DAG is parsed and in the hook."""
    if on_no_match not in ON_NO_MATCH_CHOICES:
        raise CensusInputError(f"on_no_match must be one of {', '.join(ON_NO_MATCH_CHOICES)}, got {on_no_match!r}")
    return on_no_match


CONCURRENT_READS = 8
"""How many syncs named by id are read at the same time."""
NAMED_SOURCE_KINDS = frozenset({"model", "segment", "dataset", "entity"})
"""Source objects that have a name of their own rather than a table's parts."""


def resolve(
    hook: SyncLookups, selection: Selection, *, include_paused: bool, on_no_match: str, group_id: str | None
) -> list[Sync]:
    """The syncs ``selection`` picks, in Census's order, paused ones left out unless asked for."""
    syncs = _candidates(hook, selection, group_id)
    facts = _facts(hook, syncs, selection, group_id)
    idle_excludes = selection.unmatched_excludes(facts)
    if idle_excludes:
        log.warning("exclude %s matched no sync: a typo? It removes nothing.", ", ".join(idle_excludes))
    picked = {fact.id for fact in selection.select(facts)}
    chosen = [sync for sync in syncs if sync.id in picked]
    paused = [sync for sync in chosen if sync.paused]
    if paused and not include_paused:
        log.info(
            "Leaving out %d paused sync(s) that %s selects: %s (include_paused=True runs them).",
            len(paused),
            selection,
            ", ".join(_name(sync) for sync in paused),
        )
        chosen = [sync for sync in chosen if not sync.paused]
    if chosen:
        log.info("%s selects %d sync(s): %s", selection, len(chosen), ", ".join(_name(sync) for sync in chosen))
        return chosen
    return _nothing_chosen(selection, facts, paused, on_no_match)


def _candidates(hook: SyncLookups, selection: Selection, group_id: str | None) -> list[Sync]:
    """The syncs to match: just those named when the selection is ids only, else every sync (all pages).

    Named syncs are read a few at a time (:data:`CONCURRENT_READS`), in the order named: 100
    ids cost the time of about 13 requests, not 100, and a missing id still fails as itself.
    """
    ids = selection.explicit_ids
    if ids is None:
        return list(hook.iter_syncs(group_id=group_id))
    if len(ids) <= 1:
        return [_named_sync(hook, sync_id) for sync_id in ids]
    hook.get_conn()
    with ThreadPoolExecutor(max_workers=min(CONCURRENT_READS, len(ids)), thread_name_prefix="census-read") as pool:
        return list(pool.map(lambda sync_id: _named_sync(hook, sync_id), ids))


def _named_sync(hook: SyncLookups, sync_id: int) -> Sync:
    """The sync named by id; only its id when this Census does not serve ``GET /syncs/{id}``.

    V2's reference does not document reading a sync: there, a 404 cannot tell a missing route
    from a missing sync, so the sync is taken as named (whether it is paused is then unknown),
    and a sync that does not exist fails at its trigger, a documented call, as itself.
    """
    try:
        return hook.get_sync(sync_id)
    except CensusNotFoundError as exc:
        if not is_route_404(exc):
            raise
    log.warning(
        "Census does not serve GET /syncs/%s (v1's, not in the V2 reference): sync %s is taken as named, "
        "without checking whether it is paused.",
        sync_id,
        sync_id,
    )
    return Sync(id=sync_id, label=None, operation=None, paused=None, status=None)


def _facts(hook: SyncLookups, syncs: Iterable[Sync], selection: Selection, group_id: str | None) -> list[SyncFacts]:
    destinations = _destination_names(hook, group_id) if selection.needs_destinations else {}
    model_names: dict[tuple[int, int], str | None] = {}
    facts = []
    for sync in syncs:
        source_name = sync.source.name
        if source_name is None and selection.needs_source_names:
            source_name = _model_name(hook, sync, model_names)
        name, slug = destinations.get(str(sync.destination.connection_id), (None, None))
        facts.append(
            SyncFacts(
                id=sync.id,
                label=sync.label,
                paused=sync.paused,
                source_kind=sync.source.kind,
                source_name=source_name,
                source_catalog=sync.source.catalog,
                source_schema=sync.source.schema,
                source_table=sync.source.table,
                destination_name=name,
                destination_type=slug,
                destination_object=sync.destination.object_name,
            )
        )
    return facts


def _model_name(hook: SyncLookups, sync: Sync, seen: dict[tuple[int, int], str | None]) -> str | None:
    """The name of the model a sync reads when its answer gave only the id: one lookup per model.

    Only models can be looked up (Census has an endpoint for them, not for segments); a model
    Census no longer finds has no name, so no ``source:`` selector matches it.
    """
    source = sync.source
    if source.kind != "model" or source.connection_id is None or source.object_id is None:
        return None
    key = (source.connection_id, source.object_id)
    if key not in seen:
        try:
            seen[key] = hook.get_model(source.connection_id, source.object_id).get("name")
        except CensusApiError as exc:
            log.warning("Could not read model %s of source %s for sync %s: %s", key[1], key[0], sync.id, exc)
            seen[key] = None
    return seen[key]


def _destination_names(hook: SyncLookups, group_id: str | None) -> dict[str, tuple[str | None, str | None]]:
    """Each destination connection's name and kind, by its id as text (v1 ids are numbers, V2's text).

    The kind is the connection's ``type`` (``salesforce``), which Census's reference examples
    leave out but its Terraform provider reads; without it, the slug stands in.
    """
    return {
        str(activation.get("id")): (activation.get("name"), activation.get("type") or activation.get("slug"))
        for activation in hook.iter_activations(group_id=group_id)
    }


def _nothing_chosen(selection: Selection, facts: list[SyncFacts], paused: list[Sync], on_no_match: str) -> list[Sync]:
    """No sync to run: an error that says why (the default), a skipped task, or an empty list."""
    if on_no_match == "empty":
        return []
    message = _why_nothing(selection, facts, paused)
    if on_no_match == "skip":
        raise AirflowSkipException(message)
    raise CensusNoSyncSelectedError(message)


def _why_nothing(selection: Selection, facts: list[SyncFacts], paused: list[Sync]) -> str:
    """A selection built to include nothing gives its own reason; any other says what matched."""
    if not selection.include:
        return selection.empty_reason or "The sync selection includes no selector, so it selects no sync."
    unmatched = selection.unmatched(facts)
    if paused:
        why = f"selects only paused syncs ({', '.join(_name(sync) for sync in paused)}); pass include_paused=True"
    elif unmatched:
        why = f"matched none of the {len(facts)} syncs Census has"
    else:
        why = f"matched syncs, but its exclude list removed them all (of {len(facts)} syncs)"
    return f"The sync selection {selection} {why}. Check the selectors against the syncs in Census."


def _name(sync: Sync) -> str:
    return f"{sync.id} ({sync.label})" if sync.label else str(sync.id)
