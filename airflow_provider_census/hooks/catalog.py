"""The hook's calls on what syncs connect: sources (their models and tables) and activations.

They are one shape, written once each: a page of a list, every item of it (the pages
followed, :func:`every_item`), and one object by its id. Activations answer to their v1 name,
destinations, too. ``CensusHook`` inherits them from :class:`CatalogCalls`, which sends each
through the one hook member it needs (:class:`Calls`), so the hook's module keeps its own
concerns: the connection, the clients, the syncs and their runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api import inputs
from airflow_provider_census.api.inputs import PageQuery, census_id

if TYPE_CHECKING:
    from airflow_provider_census.api.endpoints import Endpoint
    from airflow_provider_census.api.models import Activation, ActivationObject, Page, Source, SourceObject

T = TypeVar("T")


class Calls(Protocol):
    """What the calls here need of the hook: one call on its connection."""

    def run(self, endpoint: Endpoint[T], **arguments: Any) -> T: ...


def every_item(hook: Calls, endpoint: Endpoint[Page[T]], query: PageQuery, **arguments: Any) -> Iterator[T]:
    """Every item of a list, page after page, until Census says there are no more."""
    while True:
        page = hook.run(endpoint, params=query.params(), **arguments)
        yield from page.items
        following = page.next_number
        if following is None or following <= query.page:
            return
        query = query.following(following)


class CatalogCalls:
    """Sources, models, tables and activations (v1: destinations): reading them, never changing them."""

    # -- sources, models, tables --

    def list_sources(
        self: Calls, page: int = 1, per_page: int = 25, order: str = "desc", *, group_id: str | None = None
    ) -> Page[Source]:
        """Sources (warehouses); on V2 scoped to ``group_id`` or the connection's."""
        return self.run(ep.LIST_SOURCES, params=PageQuery(page, per_page, order).params(), group_id=group_id)

    def iter_sources(
        self: Calls, per_page: int = 100, order: str = "desc", *, group_id: str | None = None
    ) -> Iterator[Source]:
        return every_item(self, ep.LIST_SOURCES, PageQuery(1, per_page, order), group_id=group_id)

    def get_source(self: Calls, source: int | str) -> Source:
        return self.run(ep.GET_SOURCE, source=inputs.id_or_slug(source, "source"))

    def list_source_objects(
        self: Calls, source: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SourceObject]:
        return self.run(
            ep.LIST_SOURCE_OBJECTS, params=PageQuery(page, per_page, order).params(), source=_source(source)
        )

    def iter_source_objects(
        self: Calls, source: int | str, per_page: int = 100, order: str = "desc"
    ) -> Iterator[SourceObject]:
        return every_item(self, ep.LIST_SOURCE_OBJECTS, PageQuery(1, per_page, order), source=_source(source))

    def list_models(
        self: Calls, source: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SourceObject]:
        return self.run(ep.LIST_MODELS, params=PageQuery(page, per_page, order).params(), source=_source(source))

    def iter_models(self: Calls, source: int | str, per_page: int = 100, order: str = "desc") -> Iterator[SourceObject]:
        return every_item(self, ep.LIST_MODELS, PageQuery(1, per_page, order), source=_source(source))

    def get_model(self: Calls, source: int | str, model_id: int) -> SourceObject:
        return self.run(ep.GET_MODEL, source=_source(source), model_id=census_id(model_id, "model_id"))

    def list_tables(
        self: Calls, source: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SourceObject]:
        return self.run(ep.LIST_TABLES, params=PageQuery(page, per_page, order).params(), source=_source(source))

    def iter_tables(self: Calls, source: int | str, per_page: int = 100, order: str = "desc") -> Iterator[SourceObject]:
        return every_item(self, ep.LIST_TABLES, PageQuery(1, per_page, order), source=_source(source))

    def get_table(self: Calls, source: int | str, table_id: int) -> SourceObject:
        return self.run(ep.GET_TABLE, source=_source(source), table_id=census_id(table_id, "table_id"))

    # -- activations (v1 calls them destinations; these names work on both versions) --

    def list_activations(
        self: Calls, page: int = 1, per_page: int = 25, order: str = "desc", *, group_id: str | None = None
    ) -> Page[Activation]:
        """Activations (v1: destinations); on V2 scoped to ``group_id`` or the connection's."""
        return self.run(ep.LIST_ACTIVATIONS, params=PageQuery(page, per_page, order).params(), group_id=group_id)

    def iter_activations(
        self: Calls, per_page: int = 100, order: str = "desc", *, group_id: str | None = None
    ) -> Iterator[Activation]:
        return every_item(self, ep.LIST_ACTIVATIONS, PageQuery(1, per_page, order), group_id=group_id)

    def get_activation(self: Calls, activation: int | str) -> Activation:
        """One activation by its id: text on V2 (``glimmering_donkey``), an integer or slug on v1."""
        return self.run(ep.GET_ACTIVATION, activation=_activation(activation))

    def list_activation_objects(
        self: Calls, activation: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[ActivationObject]:
        return self.run(
            ep.LIST_ACTIVATION_OBJECTS,
            params=PageQuery(page, per_page, order).params(),
            activation=_activation(activation),
        )

    def iter_activation_objects(
        self: Calls, activation: int | str, per_page: int = 100, order: str = "desc"
    ) -> Iterator[ActivationObject]:
        return every_item(
            self, ep.LIST_ACTIVATION_OBJECTS, PageQuery(1, per_page, order), activation=_activation(activation)
        )

    def get_activation_object(self: Calls, activation: int | str, object_name: str) -> ActivationObject:
        return self.run(
            ep.GET_ACTIVATION_OBJECT, activation=_activation(activation), object_name=inputs.object_name(object_name)
        )

    def list_activation_types(
        self: Calls, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[dict[str, Any]]:
        """The kinds of destination Census can sync to (v1: ``/connectors``)."""
        return self.run(ep.LIST_ACTIVATION_TYPES, params=PageQuery(page, per_page, order).params())

    # -- the v1 names of the same calls (v1 only; on V2 they name the call to use) --

    def list_destinations(self: Calls, page: int = 1, per_page: int = 25, order: str = "desc") -> Page[Activation]:
        return self.run(ep.LIST_DESTINATIONS, params=PageQuery(page, per_page, order).params())

    def iter_destinations(self: Calls, per_page: int = 100, order: str = "desc") -> Iterator[Activation]:
        return every_item(self, ep.LIST_DESTINATIONS, PageQuery(1, per_page, order))

    def get_destination(self: Calls, destination: int | str) -> Activation:
        return self.run(ep.GET_DESTINATION, activation=inputs.id_or_slug(destination, "destination"))

    def list_destination_objects(
        self: Calls, destination: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[ActivationObject]:
        return self.run(
            ep.LIST_DESTINATION_OBJECTS,
            params=PageQuery(page, per_page, order).params(),
            activation=inputs.id_or_slug(destination, "destination"),
        )

    def iter_destination_objects(
        self: Calls, destination: int | str, per_page: int = 100, order: str = "desc"
    ) -> Iterator[ActivationObject]:
        return every_item(
            self,
            ep.LIST_DESTINATION_OBJECTS,
            PageQuery(1, per_page, order),
            activation=inputs.id_or_slug(destination, "destination"),
        )

    def get_destination_object(self: Calls, destination: int | str, object_name: str) -> ActivationObject:
        return self.run(
            ep.GET_DESTINATION_OBJECT,
            activation=inputs.id_or_slug(destination, "destination"),
            object_name=inputs.object_name(object_name),
        )


def _source(value: int | str) -> str | int:
    return inputs.id_or_slug(value, "source")


def _activation(value: int | str) -> str | int:
    return inputs.id_or_slug(value, "activation")
