"""Checking the body of ``POST /syncs`` and ``PATCH /syncs/{id}`` as Census would.

Census answers 422 with a message naming what is wrong; the emulator does the same so a
client's error handling for rejected configurations can be tested. References to
connections, models, tables, filter segments, datasets and destination objects must exist
in the workspace.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from airflow_provider_census.testing.catalog import JSON, Catalog
from airflow_provider_census.testing.errors import invalid

OPERATIONS = ("append", "insert", "mirror", "update", "upsert")
SCHEDULE_FREQUENCIES = ("never", "continuous", "quarter_hourly", "hourly", "daily", "weekly", "expression")
SOURCE_OBJECT_TYPES = ("table", "model", "segment", "cohort", "topic", "dataset")
# Settings a client may send that the emulator keeps as given on the sync.
PASSTHROUGH_FIELDS = (
    "advanced_configuration",
    "alert_attributes",
    "failed_record_notifications_enabled",
    "failed_record_notifications_threshold_percent",
    "failed_run_notifications_enabled",
    "field_behavior",
    "field_normalization",
    "field_order",
    "high_water_mark_attributes",
    "mode",
    "schedule_day",
    "schedule_hour",
    "schedule_minute",
    "trigger_on_dbt_cloud_rebuild",
)


def _connection(attrs: JSON, where: str, lookup: Any, kind: str) -> JSON:
    """Resolve ``connection_id`` or ``connection_slug`` to a seeded connection."""
    key = attrs.get("connection_id", attrs.get("connection_slug"))
    if key is None or isinstance(key, (bool, dict, list)):
        raise invalid(f"{where} needs a connection_id or connection_slug")
    found: JSON | None = lookup(str(key))
    if found is None:
        raise invalid(f"{where}: {kind} connection {key!r} not found")
    return found


def _pick(items: list[JSON], spec: JSON, name_keys: tuple[str, ...]) -> JSON | None:
    """The item ``spec`` names: by ``id``, else by every one of ``name_keys`` it gives.

    A table named only by ``table_name`` while several tables share that name is
    ambiguous, and Census could not know which one is meant: that is a 422.
    """
    if spec.get("id") is not None:
        return next((item for item in items if str(item["id"]) == str(spec["id"])), None)
    given = {key: spec[key] for key in name_keys if spec.get(key) is not None}
    if not given:
        return None
    found = [item for item in items if all(item.get(key) == value for key, value in given.items())]
    if len(found) > 1:
        named = ", ".join(f"{key}={value!r}" for key, value in given.items())
        raise invalid(f"source_attributes.object ({named}) matches {len(found)} objects; give its id")
    return found[0] if found else None


def _named(kind: str, spec: JSON) -> object:
    return spec.get("id", spec.get("name" if kind != "table" else "table_name"))


def _source_object(catalog: Catalog, source_id: int, attrs: JSON) -> JSON:
    """The source object, from the new ``object`` form or the legacy flat form.

    Models, tables, filter segments and datasets must exist in the source; the answer
    keeps what identifies them (``type``, ``id`` and the name or the table's parts).
    Other kinds (cohorts, topics) are kept as given.
    """
    spec = attrs.get("object")
    if spec is None and "type" in attrs:
        spec = {
            "type": attrs["type"],
            "name": attrs.get("model_name"),
            "table_name": attrs.get("table_name"),
            "table_schema": attrs.get("table_schema"),
            "table_catalog": attrs.get("table_catalog"),
        }
    if not isinstance(spec, dict):
        raise invalid("source_attributes.object is required and must be an object")
    kind = spec.get("type")
    if kind not in SOURCE_OBJECT_TYPES:
        raise invalid(f"source_attributes.object.type must be one of {', '.join(SOURCE_OBJECT_TYPES)}")
    if kind == "table":
        table = _pick(catalog.tables(source_id), spec, ("table_name", "table_schema", "table_catalog"))
        if table is None:
            raise invalid(f"Table {_named(kind, spec)!r} not found in source {source_id}")
        return {key: table[key] for key in ("type", "id", "table_catalog", "table_schema", "table_name")}
    lookups: dict[str, Callable[[int], list[JSON]]] = {
        "model": catalog.models,
        "segment": catalog.segments,
        "dataset": catalog.datasets,
    }
    if kind in lookups:
        found = _pick(lookups[kind](source_id), spec, ("name",))
        if found is None:
            raise invalid(f"{kind.capitalize()} {_named(kind, spec)!r} not found in source {source_id}")
        return {"type": kind, "id": found["id"], "name": found["name"]}
    return {key: value for key, value in spec.items() if value is not None}


def source_attributes(catalog: Catalog, attrs: object) -> JSON:
    if not isinstance(attrs, dict):
        raise invalid("source_attributes is required and must be an object")
    source = _connection(attrs, "source_attributes", catalog.source, "Source")
    return {"connection_id": source["id"], "object": _source_object(catalog, source["id"], attrs)}


def destination_attributes(catalog: Catalog, attrs: object) -> JSON:
    if not isinstance(attrs, dict):
        raise invalid("destination_attributes is required and must be an object")
    destination = _connection(attrs, "destination_attributes", catalog.destination, "Destination")
    name = attrs.get("object")
    if not isinstance(name, str) or not name:
        raise invalid("destination_attributes.object is required")
    known = [obj["full_name"] for obj in catalog.objects(destination["id"], with_fields=False)]
    if name not in known:
        raise invalid(f"Destination object {name!r} not found in destination {destination['id']}")
    result: JSON = {"connection_id": destination["id"], "object": name}
    if "lead_union_insert_to" in attrs:
        result["lead_union_insert_to"] = attrs["lead_union_insert_to"]
    return result


def mappings(value: object) -> list[JSON]:
    if not isinstance(value, list) or not value:
        raise invalid("mappings is required and must be a non-empty list")
    for index, mapping in enumerate(value):
        if not isinstance(mapping, dict) or "from" not in mapping or "to" not in mapping:
            raise invalid(f"mappings[{index}] must be an object with 'from' and 'to'")
    return copy.deepcopy(value)


def operation(value: object) -> str:
    if value is None:
        raise invalid("operation is required")
    if value not in OPERATIONS:
        raise invalid(f"operation must be one of {', '.join(OPERATIONS)}, not {value!r}")
    return str(value)


def _settings(body: JSON) -> JSON:
    """The optional scalar settings shared by create and update."""
    settings: JSON = {}
    if "label" in body:
        if body["label"] is not None and not isinstance(body["label"], str):
            raise invalid("label must be a string")
        settings["label"] = body["label"]
    if "paused" in body:
        if not isinstance(body["paused"], bool):
            raise invalid("paused must be true or false")
        settings["paused"] = body["paused"]
    if "schedule_frequency" in body:
        if body["schedule_frequency"] not in SCHEDULE_FREQUENCIES:
            raise invalid(f"schedule_frequency must be one of {', '.join(SCHEDULE_FREQUENCIES)}")
        settings["schedule_frequency"] = body["schedule_frequency"]
    for key in PASSTHROUGH_FIELDS:
        if key in body:
            settings[key] = copy.deepcopy(body[key])
    return settings


def new_sync(catalog: Catalog, body: object) -> JSON:
    """Validate a create body; return the sync's configuration (without id or times)."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    config: JSON = {
        "label": None,
        "operation": operation(body.get("operation")),
        "schedule_frequency": "never",
        "schedule_day": None,
        "schedule_hour": None,
        "schedule_minute": None,
        "paused": False,
        "source_attributes": source_attributes(catalog, body.get("source_attributes")),
        "destination_attributes": destination_attributes(catalog, body.get("destination_attributes")),
        "mappings": mappings(body.get("mappings")),
    }
    config.update(_settings(body))
    return config


def sync_changes(catalog: Catalog, body: object) -> JSON:
    """Validate an update body; return only the fields it changes."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    changes = _settings(body)
    if "operation" in body:
        changes["operation"] = operation(body["operation"])
    if "source_attributes" in body:
        changes["source_attributes"] = source_attributes(catalog, body["source_attributes"])
    if "destination_attributes" in body:
        changes["destination_attributes"] = destination_attributes(catalog, body["destination_attributes"])
    if "mappings" in body:
        changes["mappings"] = mappings(body["mappings"])
    return changes
