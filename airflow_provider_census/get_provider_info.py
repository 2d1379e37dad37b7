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
    "region": {
        "label": "Region",
        "description": "Census region of the workspace: us or eu. Ignored when a base URL is set.",
        "schema": {"type": ["string", "null"], "default": "us", "enum": ["us", "eu"]},
    },
    "base_url": {
        "label": "Base URL",
        "description": "Full API base URL, for a proxy or the bundled emulator "
        "(https, or http on a loopback address only). Leave empty to use the region.",
        "schema": {"type": ["string", "null"]},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port"],
    "relabeling": {"password": "API token"},
    "placeholders": {
        "password": "secret-token:... (Census: Settings, API access)",
        "region": "us",
        "base_url": "https://app.getcensus.com/api/v1",
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
                "external-doc-url": "https://docs.getcensus.com/basics/api",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Census", "python-modules": ["airflow_provider_census.hooks.census"]}],
        "operators": [{"integration-name": "Census", "python-modules": ["airflow_provider_census.operators.sync"]}],
        "sensors": [{"integration-name": "Census", "python-modules": ["airflow_provider_census.sensors.sync_run"]}],
        "triggers": [{"integration-name": "Census", "python-modules": ["airflow_provider_census.triggers.sync_run"]}],
        "extra-links": ["airflow_provider_census.links.sync_run.CensusSyncRunLink"],
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
