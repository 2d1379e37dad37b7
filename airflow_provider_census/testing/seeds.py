"""Ready-made workspaces, for tests that need more than the seed's three syncs.

:func:`seed_post_dbt_workspace` builds what a data team running dbt before Census has:
many models named like dbt models, a few warehouse tables, filter segments and datasets,
and dozens of syncs from them to CRMs, engagement tools, ads and sheets, some paused.
Everything is deterministic (no randomness, names and order fixed by the arguments), so a
test can compute which syncs a selector should pick and compare.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_census.testing.catalog import JSON, sample_query
from airflow_provider_census.testing.runs import RunScript
from airflow_provider_census.testing.workspace import Workspace

WAREHOUSE = 4  # Snowflake in the seed
BIGQUERY = 10

# dbt-style model names, used in this order; more models than these get numbered names.
DBT_MODEL_NAMES: tuple[str, ...] = (
    "dim_users",
    "fct_orders",
    "dim_accounts",
    "fct_payments",
    "dim_products",
    "fct_sessions",
    "dim_companies",
    "fct_subscriptions",
    "dim_contacts",
    "fct_invoices",
    "dim_plans",
    "fct_events",
    "dim_campaigns",
    "fct_page_views",
    "dim_regions",
    "fct_signups",
    "dim_stores",
    "fct_refunds",
    "dim_employees",
    "fct_trials",
    "dim_leads",
    "fct_renewals",
    "dim_opportunities",
    "fct_support_tickets",
    "dim_devices",
    "fct_app_installs",
    "dim_channels",
    "fct_cart_events",
    "dim_partners",
    "fct_churn_scores",
    "dim_locations",
    "fct_shipments",
    "dim_suppliers",
    "fct_usage_daily",
    "dim_teams",
    "fct_deals",
    "dim_currencies",
    "fct_transactions",
    "dim_vendors",
    "fct_nps_responses",
)

# (source id, catalog, schema, table): dbt models materialized as tables, one of them in
# staging too (same schema and name, another catalog), and one in BigQuery.
WAREHOUSE_TABLES: tuple[tuple[int, str, str, str], ...] = (
    (WAREHOUSE, "prod", "analytics", "dim_users"),
    (WAREHOUSE, "prod", "analytics", "fct_orders"),
    (WAREHOUSE, "prod", "analytics", "dim_accounts"),
    (WAREHOUSE, "staging", "analytics", "dim_users"),
    (BIGQUERY, "prod", "analytics", "fct_events"),
)
DATASETS: tuple[str, ...] = ("customer_360", "account_health")
# (segment, what it filters: ("model", name) or ("dataset", name)).
SEGMENTS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("high_value_users", ("dataset", "customer_360")),
    ("trial_users", ("model", "dim_users")),
    ("churn_risk_accounts", ("dataset", "account_health")),
)

# The destination the seed lacks: Salesforce, named as Census names its objects.
SALESFORCE_NAME = "Salesforce Production"
SALESFORCE_SLUG = "salesforce-production"
SALESFORCE_ACTIVATION_ID = "steady_harbor"
SALESFORCE_OBJECTS = ("Contact", "Lead", "Account")
# (destination, object, label prefix, operation), cycled through in this order. The first
# object named for a destination is its main one; labels name the others.
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("salesforce", "Contact", "crm", "upsert"),
    ("hubspot", "contact", "crm", "upsert"),
    ("braze", "user", "engage", "upsert"),
    ("salesforce", "Lead", "crm", "upsert"),
    ("google_ads", "user_data", "ads", "mirror"),
    ("salesforce", "Account", "crm", "upsert"),
    ("hubspot", "company", "crm", "upsert"),
    ("braze", "event", "engage", "append"),
    ("google_sheets", "sheet", "report", "mirror"),
)
SEEDED_DESTINATIONS = {"hubspot": 14, "braze": 15, "google_ads": 6, "google_sheets": 12}


def model_names(count: int) -> list[str]:
    """The first ``count`` dbt-style model names :func:`seed_post_dbt_workspace` creates."""
    names = list(DBT_MODEL_NAMES[:count])
    names += [f"fct_metric_{number:03d}" for number in range(len(names) + 1, count + 1)]
    return names


def _entity(name: str) -> str:
    """``dim_users`` -> ``users``: what a model is about, for labels."""
    prefix, _, rest = name.partition("_")
    return rest if prefix in ("dim", "fct") and rest else name


def _is_paused(index: int) -> bool:
    return index % 7 == 5


def _source_for(index: int, built: dict[str, Any], models: list[str]) -> tuple[JSON, str]:
    """The source of sync ``index`` (``add_sync``'s short form) and the word its label uses.

    Most syncs read a model (the ``index``-th, cycling); every tenth from the fourth reads a
    warehouse table, every tenth from the eighth a filter segment, every twentieth from
    the tenth a dataset.
    """
    if index % 10 == 3:
        source_id, catalog, schema, table = WAREHOUSE_TABLES[(index // 10) % len(WAREHOUSE_TABLES)]
        spec = {"connection_id": source_id, "type": "table", "table_catalog": catalog}
        spec.update({"table_schema": schema, "table_name": table})
        return spec, f"{catalog}_{_entity(table)}"
    if index % 10 == 7:
        segment = SEGMENTS[(index // 10) % len(SEGMENTS)][0]
        return {"connection_id": WAREHOUSE, "type": "segment", "id": built["segments"][segment]}, segment
    if index % 20 == 9:
        dataset = DATASETS[(index // 20) % len(DATASETS)]
        return {"connection_id": WAREHOUSE, "type": "dataset", "id": built["datasets"][dataset]}, dataset
    model = models[index % len(models)]
    return {"connection_id": WAREHOUSE, "type": "model", "name": model}, _entity(model)


def seed_post_dbt_workspace(workspace: Workspace, models: int = 30, syncs: int = 80) -> dict[str, Any]:
    """Fill ``workspace`` as a team that runs dbt before Census would have it; once per workspace.

    Adds ``models`` models to the Snowflake source (4) named like dbt models (``dim_users``,
    ``fct_orders``, ... see :func:`model_names`), the tables of :data:`WAREHOUSE_TABLES`
    (``prod.analytics.dim_users``, ``staging.analytics.dim_users``, one BigQuery table in
    source 10), the datasets and filter segments above, a Salesforce destination (objects
    ``Contact``, ``Lead``, ``Account``; activation id ``steady_harbor`` on V2), and
    ``syncs`` syncs over :data:`ROUTES` labelled like ``crm_users_to_salesforce`` or
    ``engage_orders_to_braze_event``, every seventh from the sixth paused. The seed's three
    syncs stay. Returns what was made::

        {"models": {name: id}, "tables": {"catalog.schema.table": id} (the BigQuery one
         as "bigquery:prod.analytics.fct_events"), "datasets": {name: id},
         "segments": {name: id}, "destinations": {"salesforce": 16, "hubspot": 14, ...},
         "syncs": {label: id}, "paused": [ids],
         "sync_details": [{"id", "label", "paused", "operation",
                           "source_attributes", "destination_attributes"}, ...]}

    ``source_attributes`` there is the full form with names, whatever
    ``sync_source_names`` makes the API show.
    """
    if models < 1 or syncs < 0:
        raise ValueError("seed_post_dbt_workspace needs at least one model and no negative number of syncs")
    catalog = workspace.catalog
    names = model_names(models)
    built: dict[str, Any] = {"models": {}, "tables": {}, "datasets": {}, "segments": {}}
    for name in names:
        built["models"][name] = catalog.add_model(WAREHOUSE, name, sample_query(f"prod.analytics.{name}"))
    for source_id, table_catalog, schema, table in WAREHOUSE_TABLES:
        key = ".".join((table_catalog, schema, table))
        key = key if source_id == WAREHOUSE else f"bigquery:{key}"
        built["tables"][key] = catalog.add_table(source_id, table_catalog, schema, table)
    for dataset in DATASETS:
        query = sample_query(f"prod.analytics.{dataset}")
        built["datasets"][dataset] = catalog.add_dataset(WAREHOUSE, dataset, query)
    for segment, (kind, over) in SEGMENTS:  # dim_users, the one model a segment filters, always exists
        target = {"model_id": built["models"][over]} if kind == "model" else {"dataset_id": built["datasets"][over]}
        built["segments"][segment] = catalog.add_segment(WAREHOUSE, segment, **target)
    salesforce = catalog.add_destination(
        SALESFORCE_NAME,
        SALESFORCE_OBJECTS,
        slug=SALESFORCE_SLUG,
        service="salesforce",
        activation_id=SALESFORCE_ACTIVATION_ID,
        credentials={"instance_url": "https://example.my.salesforce.com"},
    )
    destinations = {"salesforce": salesforce, **SEEDED_DESTINATIONS}
    built["destinations"] = destinations
    main_object: dict[str, str] = {}
    for destination, obj, _, _ in ROUTES:
        main_object.setdefault(destination, obj)
    built["syncs"], built["paused"], built["sync_details"] = {}, [], []
    for index in range(syncs):
        destination, obj, prefix, operation = ROUTES[index % len(ROUTES)]
        source, word = _source_for(index, built, names)
        label = f"{prefix}_{word}_to_{destination}"
        if obj != main_object[destination]:
            label += f"_{obj.lower()}"
        stem, number = label, 2
        while label in built["syncs"]:
            label, number = f"{stem}_{number}", number + 1
        paused = _is_paused(index)
        destination_attrs = {"connection_id": destinations[destination], "object": obj}
        sync_id = workspace.add_sync(
            RunScript(), label, source=source, destination=destination_attrs, paused=paused, operation=operation
        )
        built["syncs"][label] = sync_id
        if paused:
            built["paused"].append(sync_id)
        built["sync_details"].append(workspace.stored_sync(sync_id))
    return built
