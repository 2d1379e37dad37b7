"""What Airflow reads about this provider, through the ``apache_airflow_provider`` entry point.

Kept free of imports: Airflow calls it while discovering providers in every process.
The connection form is declared here once (``conn-fields``, ``ui-field-behaviour``, read by
Airflow 3.2+); the hook derives the older form API used by Airflow 2 from the same dict.
"""

from __future__ import annotations

from typing import Any

CONNECTION_TYPE = "census"
HOOK_CLASS = "airflow_provider_census.hooks.census.CensusHook"

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "api_version": {
        "label": "API version",
        "description": "v2 (Activations API): the password is an Activations personal access token. "
        "v1 (until Census switches it off on 2027-01-15): the password is the workspace API key. "
        "A connection without this field talks v1, as connections made for provider 2.1 did.",
        "schema": {"type": ["string", "null"], "default": "v2", "enum": ["v2", "v1"]},
    },
    "region": {
        "label": "Region",
        "description": "Census region: us (app.getcensus.com) or eu (app-eu.getcensus.com). "
        "With a base URL (a proxy), the region it stands for, which error messages use.",
        "schema": {"type": ["string", "null"], "default": "us", "enum": ["us", "eu"]},
    },
    "group_id": {
        "label": "Group ID",
        "description": "API v2 only, optional: sent with the hook's lists of sources, activations and syncs "
        "to scope them to one Fivetran group (the destination's id), e.g. projected_sickle. Triggering and "
        "watching syncs do not use it.",
        "schema": {"type": ["string", "null"]},
    },
    "base_url": {
        "label": "Base URL",
        "description": "Optional full API base URL, for a proxy or the bundled emulator, e.g. "
        "https://census-proxy.example.com/api/v2 or http://127.0.0.1:8080/api/v2 (https, or http on a "
        "loopback address only). Leave empty to use the region's, e.g. https://app.getcensus.com/api/v2.",
        "schema": {"type": ["string", "null"]},
    },
    "allow_insecure_http": {
        "label": "Allow plain HTTP",
        "description": "true to allow a base URL (or a provider 2.1 host) with plain http:// to a host that is "
        "not this machine, such as a proxy on a private network. The token then travels unencrypted: anyone on "
        "the network path can read it. Every read of the connection logs a warning. Default false.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "max_requests_per_second": {
        "label": "Max requests per second",
        "description": "Optional cap on the requests each Airflow process (a worker, a triggerer) sends to Census "
        "with this token, e.g. 5 or 0.5; for a token shared with other tools. With N triggerers on one token, "
        "give each the limit divided by N. Empty: no cap until Census answers 429, then the rate it allows.",
        "schema": {"type": ["number", "null"]},
    },
    "request_budget": {
        "label": "Request budget",
        "description": "learn (default): requests go at once until Census answers 429, then every wait on the "
        "token slows down together and speeds up again slowly. off: no budget, every request goes at once.",
        "schema": {"type": ["string", "null"], "default": "learn", "enum": ["learn", "off"]},
    },
}

# Airflow 3.3 applies placeholders to the standard fields only (here the password): each extra
# field's example is in its description, which both lines show. Airflow 2 shows these too.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port"],
    "relabeling": {"password": "API token"},
    "placeholders": {
        "password": "v2: Activations personal access token; v1: workspace API key (secret-token:...)",
        "api_version": "v2",
        "region": "us",
        "group_id": "projected_sickle",
        "base_url": "https://census-proxy.example.com/api/v2",
        "max_requests_per_second": "25",
        "request_budget": "learn",
    },
}


def get_provider_info() -> dict[str, Any]:
    from airflow_provider_census import __version__

    return {
        "package-name": "airflow-provider-census",
        "name": "Census",
        "description": "Trigger Census (Fivetran Activations) syncs and wait for their runs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Census",
                "external-doc-url": "https://fivetran.com/docs/activations/rest-api/api-reference/introduction",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Census", "python-modules": ["airflow_provider_census.hooks.census"]}],
        "operators": [{"integration-name": "Census", "python-modules": ["airflow_provider_census.operators.census"]}],
        "sensors": [{"integration-name": "Census", "python-modules": ["airflow_provider_census.sensors.census"]}],
        "triggers": [
            {
                "integration-name": "Census",
                "python-modules": [
                    "airflow_provider_census.triggers.census",
                    "airflow_provider_census.triggers.sync_events",
                ],
            }
        ],
        "extra-links": [
            "airflow_provider_census.links.census.CensusSyncRunLink",
            "airflow_provider_census.links.census.CensusSyncRunsLink",
        ],
        "connection-types": [
            {
                "connection-type": CONNECTION_TYPE,
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Census",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
