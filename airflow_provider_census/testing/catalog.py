"""The fixed part of the emulated workspace: sources, models, tables, destinations, objects.

The data follows the samples of the Census v1 API reference so that a client tested here
meets the same shapes it meets in production. Each destination also has the string id
that API V2 calls it by as an activation, and the destination types are listed as v1's
``/connectors`` and V2's ``/activation_types`` show them. Every call returns fresh
copies, so a test that changes what it got back cannot change the workspace.
"""

from __future__ import annotations

import copy
from typing import Any

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
        "credentials": {"account_id": 7515011393, "account_name": "Manager Account Test"},
    },
    {
        "id": 12,
        "slug": "google-sheets",
        "name": "Google Sheets",
        "credentials": {"service_account_email": "xxxxxxx.iam.gserviceaccount.com"},
    },
    {"id": 14, "slug": "hubspot", "name": "HubSpot", "credentials": {}},
    {
        "id": 15,
        "slug": "braze",
        "name": "Braze",
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


class Catalog:
    """Read-only lookups over the seeded connections; ``None`` means "no such thing"."""

    def sources(self) -> list[JSON]:
        return [copy.deepcopy(source) for source in _SOURCES]

    def source(self, key: str) -> JSON | None:
        found = _find(_SOURCES, key)
        return None if found is None else copy.deepcopy(found)

    def data_sources(self, source_id: int) -> list[JSON]:
        """Tables then models of a source, without columns, as ``GET /sources/{id}`` lists them."""
        tables = [_without(table, "columns") for table in _TABLES.get(source_id, [])]
        models = [_without(model, "columns") for model in _MODELS.get(source_id, [])]
        return tables + models

    def models(self, source_id: int) -> list[JSON]:
        return [copy.deepcopy(model) for model in _MODELS.get(source_id, [])]

    def tables(self, source_id: int) -> list[JSON]:
        return [copy.deepcopy(table) for table in _TABLES.get(source_id, [])]

    def destinations(self) -> list[JSON]:
        return [copy.deepcopy(destination) for destination in _DESTINATIONS]

    def destination(self, key: str) -> JSON | None:
        found = _find(_DESTINATIONS, key)
        return None if found is None else copy.deepcopy(found)

    def destination_for_activation(self, key: str) -> JSON | None:
        """The destination that API V2 names ``key``: its activation id, or its slug."""
        for item in _DESTINATIONS:
            if key in (_ACTIVATION_IDS[item["id"]], item["slug"]):
                return copy.deepcopy(item)
        return None

    def activation_id(self, destination_id: int) -> str:
        """The string id API V2 shows for a destination (every seeded one has one)."""
        return _ACTIVATION_IDS[destination_id]

    def destination_types(self) -> list[JSON]:
        return [copy.deepcopy(kind) for kind in _DESTINATION_TYPES]

    def objects(self, destination_id: int, *, with_fields: bool) -> list[JSON]:
        objects = _OBJECTS.get(destination_id, [])
        if with_fields:
            return [copy.deepcopy(obj) for obj in objects]
        return [_without(obj, "fields") for obj in objects]
