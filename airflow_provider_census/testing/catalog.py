"""The fixed part of the emulated workspace: sources, models, tables, destinations, objects.

The data follows the samples of the Census v1 API reference so that a client tested here
meets the same shapes it meets in production. Each destination also has the string id
that API V2 calls it by as an activation, and the destination types are listed as v1's
``/connectors`` and V2's ``/activation_types`` show them. Every call returns fresh
copies, so a test that changes what it got back cannot change the workspace.

The module-level data is only the seed: each :class:`Catalog` copies it, and what a test
adds (models, tables, filter segments, datasets, destinations) lives in that catalog alone.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any

from airflow_provider_census.testing.runs import iso, utcnow

JSON = dict[str, Any]


def _columns(*pairs: tuple[str, str]) -> list[JSON]:
    return [{"name": name, "type": kind} for name, kind in pairs]


def _field(label: str, full_name: str, *, key: bool = False, lookup: str | None = None) -> JSON:
    """A destination field; ``key`` marks fields that can identify a record."""
    return {
        "label": label,
        "full_name": full_name,
        "polymorphic": False,
        "createable": True,
        "updateable": True,
        "operations": [],
        "array": False,
        "preserve_values_supported": False,
        "required_for_mapping": False,
        "can_be_upsert_key": key,
        "can_be_update_key": key,
        "can_be_insert_key": key,
        "can_be_reference_key": key,
        "lookup_object": lookup,
    }


def _object(label: str, full_name: str, fields: list[JSON]) -> JSON:
    return {
        "label": label,
        "full_name": full_name,
        "allow_custom_fields": True,
        "allow_case_sensitive_field_names": True,
        "fields": fields,
    }


_SOURCES: list[JSON] = [
    {
        "id": 4,
        "slug": "snowflake-xxxxxxx-us-east-1",
        "name": "Snowflake - xxxxxxx.us-east-1",
        "label": None,
        "last_test_succeeded": None,
        "last_tested_at": None,
        "credentials": {
            "account": "xxxxxxx.us-east-1",
            "user": "DEV",
            "warehouse": "TEST",
            "use_keypair": False,
        },
        "read_only_connection": False,
    },
    {
        "id": 10,
        "slug": "bigquery-development",
        "name": "BigQuery - Development",
        "label": "BigQuery",
        "last_test_succeeded": True,
        "last_tested_at": "2021-10-07T20:02:19.544Z",
        "credentials": {
            "project_id": "development",
            "location": "US",
            "service_account": "xxxxxx.iam.gserviceaccount.com",
            "location_editable": False,
        },
        "read_only_connection": False,
    },
]

# source id -> its models, in creation order.
_MODELS: dict[int, list[JSON]] = {
    4: [
        {
            "type": "model",
            "id": 3,
            "name": "google_ads_test",
            "created_at": "2021-10-06T21:26:44.206Z",
            "updated_at": "2021-10-06T21:39:32.914Z",
            "query": "select cast('test@getcensus.com' as VARCHAR(2000)) as email, "
            "array_construct(cast('audience_v1' as VARCHAR(2000))) as list_id\n",
            "columns": _columns(("EMAIL", "text (2000)"), ("LIST_ID", "array")),
        },
        {
            "type": "model",
            "id": 15,
            "name": "braze_test",
            "created_at": "2021-10-11T20:52:58.293Z",
            "updated_at": "2021-10-14T23:15:18.508Z",
            "query": "select cast('test@getcensus.com' as VARCHAR(2000)) as email, "
            "cast('HAAAA' as VARCHAR(2000)) as random_prop",
            "columns": _columns(("EMAIL", "text (2000)"), ("RANDOM_PROP", "text (2000)")),
        },
        {
            "type": "model",
            "id": 18,
            "name": "airtable_test",
            "created_at": "2021-10-20T02:43:07.120Z",
            "updated_at": "2021-10-20T02:50:35.477Z",
            "query": "select cast('test1' as VARCHAR(2000)) as company_id, "
            "cast('company0' as VARCHAR(2000)) as name, cast('test0' as VARCHAR(2000)) as about, "
            "array_construct(cast('newindustry' as VARCHAR(2000))) as industries\n",
            "columns": _columns(
                ("ABOUT", "text (2000)"),
                ("NAME", "text (2000)"),
                ("COMPANY_ID", "text (2000)"),
                ("INDUSTRIES", "array"),
            ),
        },
    ],
    10: [],
}

_TABLES: dict[int, list[JSON]] = {
    4: [
        {
            "type": "table",
            "id": 2,
            "table_catalog": "public",
            "table_schema": "development",
            "table_name": "test",
            "columns": _columns(
                ("ABOUT", "text (2000)"),
                ("CUSTOMER_ID", "text (2000)"),
                ("NAME", "text (2000)"),
                ("INDUSTRIES", "array"),
            ),
        }
    ],
    10: [],
}

_DESTINATIONS: list[JSON] = [
    {
        "id": 6,
        "slug": "google-ads-dev",
        "name": "Google Ads Dev",
        "type": "google_ads",
        "credentials": {"account_id": 7515011393, "account_name": "Manager Account Test"},
    },
    {
        "id": 12,
        "slug": "google-sheets",
        "name": "Google Sheets",
        "type": "google_sheets",
        "credentials": {"service_account_email": "xxxxxxx.iam.gserviceaccount.com"},
    },
    {"id": 14, "slug": "hubspot", "name": "HubSpot", "type": "hubspot", "credentials": {}},
    {
        "id": 15,
        "slug": "braze",
        "name": "Braze",
        "type": "braze",
        "credentials": {"instance_url": "https://rest.iad-03.braze.com"},
    },
]

# destination id -> the string id API V2 gives it as an activation.
_ACTIVATION_IDS: dict[int, str] = {
    6: "wandering_heron",
    12: "quiet_meadow",
    14: "amber_lantern",
    15: "glimmering_donkey",
}

_DESTINATION_TYPES: list[JSON] = [
    {
        "service_name": "braze",
        "label": "Braze",
        "documentation_slug": "braze",
        "authorization_method": "api_key",
        "creatable_via_api": True,
    },
    {
        "service_name": "google_ads",
        "label": "Google Ads",
        "documentation_slug": "google-ads",
        "authorization_method": "oauth",
        "creatable_via_api": False,
    },
    {
        "service_name": "google_sheets",
        "label": "Google Sheets",
        "documentation_slug": "google-sheets",
        "authorization_method": "oauth",
        "creatable_via_api": False,
    },
    {
        "service_name": "hubspot",
        "label": "HubSpot",
        "documentation_slug": "hubspot",
        "authorization_method": "oauth",
        "creatable_via_api": False,
    },
    {
        "service_name": "salesforce",
        "label": "Salesforce",
        "documentation_slug": "salesforce",
        "authorization_method": "oauth",
        "creatable_via_api": False,
    },
]

_OBJECTS: dict[int, list[JSON]] = {
    6: [
        _object(
            "Customer Match User Data",
            "user_data",
            [
                _field("Hashed Email", "user_identifier.hashed_email_PREHASHED", key=True),
                _field("List", "list_id", lookup="user_list"),
            ],
        ),
        _object("User List", "user_list", [_field("Name", "name", key=True)]),
    ],
    12: [_object("Sheet", "sheet", [_field("Row Key", "row_key", key=True)])],
    14: [
        _object(
            "Contact",
            "contact",
            [_field("Email", "email", key=True), _field("First Name", "firstname")],
        ),
        _object("Company", "company", [_field("Domain", "domain", key=True), _field("Name", "name")]),
    ],
    15: [
        _object(
            "User",
            "user",
            [
                _field("First Name", "first_name"),
                _field("Last Name", "last_name"),
                _field("Company", "company", lookup="company"),
                _field("External User ID", "external_id", key=True),
                _field("Email", "email"),
            ],
        ),
        _object(
            "Event",
            "event",
            [
                _field("External User ID", "external_id", key=True),
                _field("Name", "name"),
                _field("Time", "time"),
            ],
        ),
    ],
}


def _without(item: JSON, *keys: str) -> JSON:
    return {key: copy.deepcopy(value) for key, value in item.items() if key not in keys}


def _find(items: list[JSON], key: str) -> JSON | None:
    """Look an item up by id (when ``key`` is all digits) or by slug, as Census allows."""
    for item in items:
        if str(item["id"]) == key or item.get("slug") == key:
            return item
    return None


def _next_id(groups: Iterable[list[JSON]]) -> int:
    """One more than the highest id in ``groups``: Census's ids grow across a workspace."""
    return max((item["id"] for items in groups for item in items), default=0) + 1


_DEFAULT_COLUMNS = (("ID", "text (2000)"), ("EMAIL", "text (2000)"))


def sample_query(relation: str) -> str:
    """The SQL text an added model, segment or dataset shows; the emulator never runs it."""
    return f"select * from {relation}"  # noqa: S608 - display text, never executed


class Catalog:
    """The connections of one workspace and what they hold; ``None`` means "no such thing".

    Each catalog starts from its own copy of the seed above, so what a test adds
    (models, tables, segments, datasets, destinations) stays in that emulator. Reads
    return fresh copies. A lock guards the additions, because tests add from their
    thread while the server reads on its own.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sources = copy.deepcopy(_SOURCES)
        self._models = copy.deepcopy(_MODELS)
        self._tables = copy.deepcopy(_TABLES)
        self._segments: dict[int, list[JSON]] = {source["id"]: [] for source in _SOURCES}
        self._datasets: list[JSON] = []
        self._destinations = copy.deepcopy(_DESTINATIONS)
        self._activation_ids = dict(_ACTIVATION_IDS)
        self._destination_types = copy.deepcopy(_DESTINATION_TYPES)
        self._objects = copy.deepcopy(_OBJECTS)

    # -- sources and what they hold ------------------------------------------------------

    def sources(self) -> list[JSON]:
        with self._lock:
            return [copy.deepcopy(source) for source in self._sources]

    def source(self, key: str) -> JSON | None:
        with self._lock:
            found = _find(self._sources, key)
            return None if found is None else copy.deepcopy(found)

    def data_sources(self, source_id: int) -> list[JSON]:
        """Tables then models of a source, without columns, as ``GET /sources/{id}`` lists them."""
        with self._lock:
            tables = [_without(table, "columns") for table in self._tables.get(source_id, [])]
            models = [_without(model, "columns") for model in self._models.get(source_id, [])]
            return tables + models

    def models(self, source_id: int) -> list[JSON]:
        with self._lock:
            return [copy.deepcopy(model) for model in self._models.get(source_id, [])]

    def tables(self, source_id: int) -> list[JSON]:
        with self._lock:
            return [copy.deepcopy(table) for table in self._tables.get(source_id, [])]

    def segments(self, source_id: int) -> list[JSON]:
        """A source's filter segments, as ``GET /sources/{id}/filter_segments`` lists them."""
        with self._lock:
            return [copy.deepcopy(segment) for segment in self._segments.get(source_id, [])]

    def datasets(self, source_id: int | None = None) -> list[JSON]:
        """The workspace's datasets, or those built on ``source_id``."""
        with self._lock:
            return [
                copy.deepcopy(dataset)
                for dataset in self._datasets
                if source_id is None or dataset["source_id"] == source_id
            ]

    def _known_source(self, source_id: int) -> None:
        if _find(self._sources, str(source_id)) is None:
            raise ValueError(f"there is no source {source_id} in this workspace")

    def add_model(
        self, source_id: int, name: str, query: str | None = None, columns: Iterable[tuple[str, str]] | None = None
    ) -> int:
        """A new model in ``source_id``; model names are unique within a source."""
        with self._lock:
            self._known_source(source_id)
            return self._add_named(
                self._models,
                source_id,
                "model",
                name,
                {
                    "query": query if query is not None else sample_query(name),
                    "columns": _columns(*(columns or _DEFAULT_COLUMNS)),
                },
            )

    @staticmethod
    def _add_named(store: dict[int, list[JSON]], source_id: int, kind: str, name: str, fields: JSON) -> int:
        """Add a model or segment (``kind``) named uniquely within its source; its new id."""
        items = store.setdefault(source_id, [])
        if any(item["name"] == name for item in items):
            raise ValueError(f"source {source_id} already has a {kind} named {name!r}")
        now = iso(utcnow())
        item_id = _next_id(store.values())
        items.append({"type": kind, "id": item_id, "name": name, **fields, "created_at": now, "updated_at": now})
        return item_id

    def add_table(
        self,
        source_id: int,
        catalog: str,
        schema: str,
        name: str,
        columns: Iterable[tuple[str, str]] | None = None,
    ) -> int:
        """A new warehouse table in ``source_id``; ``catalog.schema.name`` is unique within a source."""
        with self._lock:
            self._known_source(source_id)
            tables = self._tables.setdefault(source_id, [])
            parts = (catalog, schema, name)
            if any((t["table_catalog"], t["table_schema"], t["table_name"]) == parts for t in tables):
                raise ValueError(f"source {source_id} already has the table {'.'.join(parts)}")
            table_id = _next_id(self._tables.values())
            tables.append(
                {
                    "type": "table",
                    "id": table_id,
                    "table_catalog": catalog,
                    "table_schema": schema,
                    "table_name": name,
                    "columns": _columns(*(columns or _DEFAULT_COLUMNS)),
                }
            )
            return table_id

    def add_dataset(self, source_id: int, name: str, query: str | None = None) -> int:
        """A new SQL dataset on ``source_id``; dataset names are unique in the workspace."""
        with self._lock:
            self._known_source(source_id)
            if any(dataset["name"] == name for dataset in self._datasets):
                raise ValueError(f"the workspace already has a dataset named {name!r}")
            now = iso(utcnow())
            dataset_id = _next_id([self._datasets])
            self._datasets.append(
                {
                    "id": dataset_id,
                    "name": name,
                    "type": "sql",
                    "description": None,
                    "query": query if query is not None else sample_query(name),
                    "source_id": source_id,
                    "resource_identifier": f"dataset:{dataset_id}",
                    "cached_record_count": None,
                    "columns": [{"name": col, "data_type": kind} for col, kind in _DEFAULT_COLUMNS],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            return dataset_id

    def add_segment(
        self,
        source_id: int,
        name: str,
        *,
        model_id: int | None = None,
        dataset_id: int | None = None,
        query: str | None = None,
    ) -> int:
        """A new filter segment of ``source_id``, over one of its models or datasets."""
        with self._lock:
            self._known_source(source_id)
            if model_id is not None and not any(m["id"] == model_id for m in self._models.get(source_id, [])):
                raise ValueError(f"source {source_id} has no model {model_id}")
            if dataset_id is not None and not any(
                d["id"] == dataset_id and d["source_id"] == source_id for d in self._datasets
            ):
                raise ValueError(f"source {source_id} has no dataset {dataset_id}")
            return self._add_named(
                self._segments,
                source_id,
                "segment",
                name,
                {
                    "model_id": model_id,
                    "dataset_id": dataset_id,
                    "query": query if query is not None else sample_query(name),
                    "count": None,
                },
            )

    # -- destinations ------------------------------------------------------------------

    def destinations(self) -> list[JSON]:
        with self._lock:
            return [copy.deepcopy(destination) for destination in self._destinations]

    def destination(self, key: str) -> JSON | None:
        with self._lock:
            found = _find(self._destinations, key)
            return None if found is None else copy.deepcopy(found)

    def destination_for_activation(self, key: str) -> JSON | None:
        """The destination that API V2 names ``key``: its activation id, or its slug."""
        with self._lock:
            for item in self._destinations:
                if key in (self._activation_ids[item["id"]], item["slug"]):
                    return copy.deepcopy(item)
            return None

    def activation_id(self, destination_id: int) -> str:
        """The string id API V2 shows for a destination (every one has one)."""
        with self._lock:
            return self._activation_ids[destination_id]

    def destination_types(self) -> list[JSON]:
        with self._lock:
            return [copy.deepcopy(kind) for kind in self._destination_types]

    def objects(self, destination_id: int, *, with_fields: bool) -> list[JSON]:
        with self._lock:
            objects = self._objects.get(destination_id, [])
            if with_fields:
                return [copy.deepcopy(obj) for obj in objects]
            return [_without(obj, "fields") for obj in objects]

    def add_destination(
        self,
        name: str,
        objects: Iterable[str],
        *,
        slug: str | None = None,
        service: str | None = None,
        activation_id: str | None = None,
        credentials: JSON | None = None,
    ) -> int:
        """A new destination connection whose objects are ``objects`` (full names).

        ``service`` is its ``type`` (the kind of tool, e.g. ``salesforce``; default: from the slug).

        Each object gets a few generic fields: ``Email`` and ``External_ID__c`` (both can
        identify a record) and ``Name``. ``activation_id`` is the string id API V2 gives it.
        """
        with self._lock:
            destination_id = _next_id([self._destinations])
            slug = slug or "-".join(name.lower().split())
            activation_id = activation_id or f"{slug.replace('-', '_')}_{destination_id}"
            if _find(self._destinations, slug) is not None or activation_id in self._activation_ids.values():
                raise ValueError(f"a destination with slug {slug!r} or activation id {activation_id!r} exists")
            full_names = list(objects)
            if not full_names:
                raise ValueError("a destination needs at least one object")
            self._destinations.append(
                {
                    "id": destination_id,
                    "slug": slug,
                    "name": name,
                    "type": service or slug.split("-")[0],
                    "credentials": dict(credentials or {}),
                }
            )
            self._activation_ids[destination_id] = activation_id
            self._objects[destination_id] = [
                _object(
                    full_name.replace("_", " ").title(),
                    full_name,
                    [
                        _field("Email", "Email", key=True),
                        _field("External ID", "External_ID__c", key=True),
                        _field("Name", "Name"),
                    ],
                )
                for full_name in full_names
            ]
            return destination_id
