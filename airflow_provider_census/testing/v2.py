"""How API V2 shows and takes what v1 does, for the one workspace both versions reach.

The workspace keeps destinations under their integer v1 ids. V2 calls them activations,
names them by string ids and scopes answers to a Fivetran group, so these functions
translate at the edge, both ways, and the workspace itself never knows which version
asked. A run triggered through v1 is therefore the same run when read through V2.
"""

from __future__ import annotations

from airflow_provider_census.testing.catalog import JSON, Catalog
from airflow_provider_census.testing.errors import invalid


def source(found: JSON, group_id: str) -> JSON:
    """A source as V2 shows it: as v1 does, plus the group it belongs to."""
    return {**found, "group_id": group_id}


def activation(catalog: Catalog, destination: JSON, group_id: str) -> JSON:
    """A destination as V2 shows it: an activation with a string id, in its group."""
    return {**destination, "id": catalog.activation_id(destination["id"]), "group_id": group_id}


def sync(catalog: Catalog, found: JSON) -> JSON:
    """A sync as V2 shows it: its destination named by the activation's string id.

    The nested attributes are copied, never changed in place, because the workspace's
    view of a sync shares them with the stored sync.
    """
    attrs = {**found["destination_attributes"]}
    attrs["connection_id"] = catalog.activation_id(attrs["connection_id"])
    return {**found, "destination_attributes": attrs}


def sync_body(catalog: Catalog, body: object) -> object:
    """A V2 create or update body, its activation id turned into the workspace's destination id.

    V2 names activations by string ids only: an integer here is a v1 id sent to V2 by
    mistake and is refused (422), so a client that mixes the versions learns it in a
    test. Anything else odd is left for the ordinary validation to reject.
    """
    if not isinstance(body, dict) or not isinstance(body.get("destination_attributes"), dict):
        return body
    attrs = dict(body["destination_attributes"])
    if "connection_id" not in attrs:
        return body
    key = attrs["connection_id"]
    if not isinstance(key, str):
        raise invalid(
            "destination_attributes.connection_id must be an activation id on API v2, "
            "a string such as 'glimmering_donkey'"
        )
    found = catalog.destination_for_activation(key)
    if found is None:
        raise invalid(f"destination_attributes: Activation {key!r} not found")
    attrs["connection_id"] = found["id"]
    return {**body, "destination_attributes": attrs}
