"""A parsed selection: the ``select`` and ``exclude`` selectors, and what they pick from a list of syncs.

Pure: no Airflow and no HTTP. Build one with
:func:`~airflow_provider_census.selectors.parsing.parse_selection`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from airflow_provider_census.selectors.matching import Facts, IdSelector, Selector, SyncFacts


@dataclass(frozen=True)
class Selection:
    """Parsed ``select`` and ``exclude`` lists; built by :func:`~airflow_provider_census.selectors.parse_selection`.

    A selection built in code may include nothing (say, from a DAG run no asset event
    triggered); ``empty_reason`` then says why, as the message when nothing is selected.
    """

    include: tuple[Selector, ...]
    exclude: tuple[Selector, ...] = ()
    empty_reason: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """The selection as it was written, for log lines and messages: ``12, label:crm_* excluding 14``."""
        text = ", ".join(selector.text for selector in self.include)
        if self.exclude:
            text += " excluding " + ", ".join(selector.text for selector in self.exclude)
        return text

    def matches(self, sync: SyncFacts) -> bool:
        return any(s.matches(sync) for s in self.include) and not any(s.matches(sync) for s in self.exclude)

    def select(self, syncs: Iterable[Facts]) -> list[Facts]:
        """The syncs selected, in the order given."""
        return [sync for sync in syncs if self.matches(sync)]

    def unmatched(self, syncs: Iterable[SyncFacts]) -> list[str]:
        """The ``select`` strings that match none of ``syncs`` (before exclusion), for "matched no sync"."""
        return _unmatched(self.include, syncs)

    def unmatched_excludes(self, syncs: Iterable[SyncFacts]) -> list[str]:
        """The ``exclude`` strings that match none of ``syncs``: likely typos, which would exclude nothing."""
        return _unmatched(self.exclude, syncs)

    @property
    def needs_source_names(self) -> bool:
        """Whether matching reads the names of model, segment and dataset sources (an extra lookup)."""
        return any(s.needs_source_names for s in self.include + self.exclude)

    @property
    def needs_destinations(self) -> bool:
        """Whether matching reads destination connections' names and types (an extra lookup)."""
        return any(s.needs_destinations for s in self.include + self.exclude)

    @property
    def explicit_ids(self) -> tuple[int, ...] | None:
        """The ids, when ``select`` names syncs only by id: those can be fetched instead of listing every sync.

        ``exclude`` still applies to what is fetched.
        """
        if all(isinstance(s, IdSelector) for s in self.include):
            return tuple(dict.fromkeys(s.sync_id for s in self.include if isinstance(s, IdSelector)))
        return None


def _unmatched(selectors: tuple[Selector, ...], syncs: Iterable[SyncFacts]) -> list[str]:
    candidates = tuple(syncs)
    return [s.text for s in selectors if not any(s.matches(sync) for sync in candidates)]
