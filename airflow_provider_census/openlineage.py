"""OpenLineage for Census syncs: what a sync read, what it wrote, and how its run went.

With the ``openlineage`` extra (``apache-airflow-providers-openlineage``) installed, an operator
that mixes in :class:`CensusLineageMixin` gives the provider's listener, for each Census run of
the task, the sync's source object as an input dataset, its destination object as an output
dataset, and the run's ids, counts, URL and error as run facets.

Naming (see ``docs/openlineage.md``): a warehouse table is named as OpenLineage's dataset
naming spec names it for that warehouse (``snowflake://{account}``, ``bigquery``,
``postgres://{host}:{port}``, ``redshift://{cluster}.{region}:{port}``,
``databricks://{host}``, ``mysql://{host}:{port}``; ``db.schema.table``), so it joins the
lineage dbt or the warehouse emits for the same table. Models, segments and datasets exist
only in Census, as do tables of a source whose type is not known here; they are named under
the Census host (``census://app.getcensus.com``, ``sources/4/models/dim_users``). A
destination object is ``{destination type}://{connection slug}`` and the object's name
(``salesforce://salesforce-production``, ``Contact``): the slug is the same on API v1 and V2,
where the connection's id is not.

The naming functions are pure and need nothing beyond this package. Everything from
OpenLineage is imported inside functions, so the provider imports, and DAG files parse,
without the extra. Lineage is extra: reading it (the sync, its source and destination
connections, asked for only when OpenLineage asks) never fails the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_census import __version__
from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.models import Activation, Source, Sync, SyncDestination, SyncSource
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.runs import RunSummary

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import DatasetFacet, RunFacet

    from airflow_provider_census.hooks.census import CensusHook

    Lineage = OperatorLineage[Dataset, RunFacet]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

RUN_FACET_KEY = "censusSyncRuns"
"""The run facet with every Census run of the task: ids, status, counts, error, URL."""
PRODUCER = f"https://pypi.org/project/airflow-provider-census/{__version__}/"
FACET_SCHEMA_URL = (
    "https://raw.githubusercontent.com/airflow-provider-census/airflow-provider-census/main/"
    "docs/openlineage/CensusSyncRunsRunFacet.json#/$defs/CensusSyncRunsRunFacet"
)
"""Where the custom facet's JSON schema is published (the file is ``docs/openlineage/`` in the repo)."""

# Census's source type (Census names BigQuery ``big_query``) -> OpenLineage's scheme for it.
_WAREHOUSE_SCHEMES = {
    "snowflake": "snowflake",
    "big_query": "bigquery",
    "bigquery": "bigquery",
    "postgres": "postgres",
    "postgresql": "postgres",
    "redshift": "redshift",
    "databricks": "databricks",
    "mysql": "mysql",
}
_DEFAULT_PORTS = {"postgres": 5432, "redshift": 5439, "mysql": 3306}
_RUN_FIELDS = (
    "sync_id",
    "sync_run_id",
    "status",
    "outcome",
    "canceled",
    "records_processed",
    "records_updated",
    "records_failed",
    "records_invalid",
    "source_record_count",
    "error_code",
    "error_message",
    "error_detail",
    "full_sync",
    "created_at",
    "completed_at",
    "url",
)


@dataclass(frozen=True)
class DatasetName:
    """An OpenLineage dataset's identity: its namespace and its name in it."""

    namespace: str
    name: str


@dataclass(frozen=True)
class SyncLineage:
    """What is known of one sync for lineage; every part may be missing when Census could not be read."""

    sync_id: int
    sync: Sync | None = None
    source: Source | None = None
    activation: Activation | None = None
    summary: RunSummary | None = None


# -- naming: pure ---------------------------------------------------------------------------


def census_namespace(base_url: str) -> str:
    """``census://{host[:port]}`` of the connection's API host: the namespace of what lives only in Census."""
    return f"census://{urlsplit(base_url).netloc or 'app.getcensus.com'}"


def warehouse_scheme(source: Mapping[str, Any] | None) -> str | None:
    """OpenLineage's scheme for the source connection's warehouse, or None if this module does not name it.

    Census's source answers carry ``type`` (``snowflake``, ``big_query``, ...); answers in the
    shape of the v1 reference's samples have none, and then the slug's first word stands in
    (``snowflake-xxxxxxx-us-east-1``, ``bigquery-development``).
    """
    if not source:
        return None
    kind = source.get("type")
    if isinstance(kind, str) and kind:
        return _WAREHOUSE_SCHEMES.get(kind.lower())
    slug = source.get("slug")
    return _WAREHOUSE_SCHEMES.get(slug.split("-")[0].lower()) if isinstance(slug, str) else None


def warehouse_namespace(scheme: str, credentials: Mapping[str, Any]) -> str | None:
    """The namespace OpenLineage's naming spec gives the warehouse, from the connection's credentials.

    None when the credentials lack what the namespace needs (the host, the account).
    """
    if scheme == "bigquery":
        return "bigquery"
    if scheme == "snowflake":
        account = _text(credentials.get("account"))
        return f"snowflake://{account.lower()}" if account else None
    host = _text(credentials.get("server_hostname") or credentials.get("host") or credentials.get("hostname"))
    if not host:
        return None
    host = host.lower()
    if scheme == "databricks":
        return f"databricks://{host}"
    port = _port(credentials.get("port"), _DEFAULT_PORTS[scheme])
    if scheme == "redshift":
        return f"redshift://{_redshift_cluster(host)}:{port}"
    return f"{scheme}://{host}:{port}"


def _redshift_cluster(host: str) -> str:
    """``{cluster}.{region}`` from a Redshift endpoint (``examplecluster.abc123.us-west-2.redshift.amazonaws.com``)."""
    parts = host.split(".")
    if len(parts) >= 4 and parts[3].startswith("redshift"):
        return f"{parts[0]}.{parts[2]}"
    return host


def input_dataset(sync_source: SyncSource, source: Mapping[str, Any] | None, census_ns: str) -> DatasetName:
    """The dataset a sync reads: a warehouse table by the warehouse's naming, anything else under Census's host."""
    table = _table_name(sync_source)
    scheme = warehouse_scheme(source)
    credentials = source.get("credentials") if source else None
    if table and scheme and isinstance(credentials, Mapping):
        namespace = warehouse_namespace(scheme, credentials)
        if namespace:
            return DatasetName(namespace, table)
    prefix = f"sources/{sync_source.connection_id if sync_source.connection_id is not None else 'unknown'}"
    if table:
        return DatasetName(census_ns, f"{prefix}/tables/{table}")
    kind = sync_source.kind or "object"
    label = sync_source.name or (str(sync_source.object_id) if sync_source.object_id is not None else "unknown")
    return DatasetName(census_ns, f"{prefix}/{kind}s/{label}")


def _table_name(sync_source: SyncSource) -> str | None:
    """``catalog.schema.table`` (or the parts Census gave) of a table source; None for anything else."""
    if sync_source.kind not in (None, "table") or not sync_source.table:
        return None
    return ".".join(part for part in (sync_source.catalog, sync_source.schema, sync_source.table) if part)


def output_dataset(destination: SyncDestination, activation: Mapping[str, Any] | None, census_ns: str) -> DatasetName:
    """The dataset a sync writes: ``{type}://{slug}`` and the object; under Census's host when unknown."""
    obj = destination.object_name or "unknown"
    found = activation or {}
    kind = _text(found.get("type"))
    ident = _text(found.get("slug")) or _text(str(found.get("id") or ""))
    if kind and ident:
        return DatasetName(f"{kind.lower()}://{ident}", obj)
    connection = destination.connection_id if destination.connection_id is not None else "unknown"
    return DatasetName(census_ns, f"destinations/{connection}/{obj}")


def run_fields(sync_id: int, summary: RunSummary | None) -> dict[str, Any]:
    """One run as the custom facet shows it; the sync id alone when the task left no summary."""
    if summary is None:
        return {"sync_id": sync_id}
    data = summary.to_json()
    return {name: data[name] for name in _RUN_FIELDS if data.get(name) is not None}


def failure_message(summaries: Iterable[RunSummary | None]) -> str | None:
    """Census's own words for the runs that did not succeed (``code: message``), or None when none says any."""
    parts = []
    for summary in summaries:
        if summary is None or summary.outcome is RunOutcome.SUCCEEDED:
            continue
        if summary.error_code or summary.error_message:
            words = ": ".join(part for part in (summary.error_code, summary.error_message) if part)
            parts.append(f"Census sync {summary.sync_id} run {summary.sync_run_id}: {words}")
    return "; ".join(parts) or None


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _port(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return default


# -- OpenLineage objects: imports inside ------------------------------------------------------


def build_lineage(syncs: Sequence[SyncLineage], census_ns: str) -> Lineage:
    """The ``OperatorLineage`` of a task's syncs: their inputs, outputs, and a run facet for their runs."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.facet_v2 import error_message_run

    inputs: list[Dataset] = []
    outputs: list[Dataset] = []
    for item in syncs:
        if item.sync is None:
            continue
        _add(inputs, _dataset(input_dataset(item.sync.source, item.source, census_ns), item.source))
        _add(outputs, _dataset(output_dataset(item.sync.destination, item.activation, census_ns), item.activation))
    run_facets: dict[str, RunFacet] = {
        RUN_FACET_KEY: _run_facet_class()(runs=[run_fields(item.sync_id, item.summary) for item in syncs])
    }
    message = failure_message(item.summary for item in syncs)
    if message:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python"
        )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


def empty_lineage() -> Lineage:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage()


def _add(datasets: list[Dataset], dataset: Dataset) -> None:
    """Several syncs of one task may read one model or write one object: each dataset once."""
    if all((d.namespace, d.name) != (dataset.namespace, dataset.name) for d in datasets):
        datasets.append(dataset)


def _dataset(name: DatasetName, connection: Mapping[str, Any] | None) -> Dataset:
    """The dataset, with the Census connection's display name as its datasource when known."""
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import datasource_dataset

    label = _text(connection.get("name")) if connection else None
    facets: dict[str, DatasetFacet] = {}
    if label:
        facets["dataSource"] = datasource_dataset.DatasourceDatasetFacet(name=label, uri=name.namespace)
    return Dataset(namespace=name.namespace, name=name.name, facets=facets)


@cache
def _run_facet_class() -> Callable[..., RunFacet]:
    """The custom run facet class, made on first use so that OpenLineage is imported only then."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class CensusSyncRunsRunFacet(RunFacet):
        """The task's Census runs (ids, status, counts, error, URL); custom, so its own producer and schema."""

        runs: list[dict[str, Any]] = attr.field(factory=list)

        def __attrs_post_init__(self) -> None:
            self._producer = PRODUCER
            super().__attrs_post_init__()

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return CensusSyncRunsRunFacet


# -- reading what the task left, and the sync it ran -----------------------------------------


def gather(hook: CensusHook, sync_ids: Sequence[int], summaries: Sequence[RunSummary]) -> list[SyncLineage]:
    """Each sync with its configuration and connections, looked up once each; what fails to read is left out."""
    by_sync = {summary.sync_id: summary for summary in summaries if summary.sync_id is not None}
    sources: dict[int, Source | None] = {}
    activations: dict[int | str, Activation | None] = {}
    gathered = []
    for sync_id in dict.fromkeys([*sync_ids, *by_sync]):
        sync: Sync | None = _read(f"sync {sync_id}", hook.get_sync, sync_id)
        source: Source | None = None
        activation: Activation | None = None
        if sync is not None and sync.source.connection_id is not None:
            key = sync.source.connection_id
            if key not in sources:
                sources[key] = _read(f"source {key}", hook.get_source, key)
            source = sources[key]
        if sync is not None and sync.destination.connection_id is not None:
            dest = sync.destination.connection_id
            if dest not in activations:
                activations[dest] = _read(f"destination {dest}", hook.get_activation, dest)
            activation = activations[dest]
        gathered.append(SyncLineage(sync_id, sync, source, activation, by_sync.get(sync_id)))
    return gathered


def _read(what: str, call: Callable[[T], R], argument: T) -> R | None:
    try:
        return call(argument)
    except Exception as exc:  # lineage is extra: any failure to read Census leaves this part out
        log.warning("OpenLineage: could not read Census %s (%s); its lineage is left out.", what, exc)
        return None


class CensusLineageMixin:
    """OpenLineage's ``get_openlineage_facets_on_complete``/``_on_failure`` for a task that runs Census syncs.

    Mix it in before the operator's base class. It keeps the summary of each run the task
    finishes (the task's finish calls :meth:`record_census_run`), and the task's sync ids come from
    ``sync_id`` or ``sync_ids``, for syncs whose run never ended. When OpenLineage asks, it
    reads each sync and its connections with the task's ``hook``. It reads nothing from XCom:
    the provider's listener runs in a fork of the task process, where the Task SDK's channel
    to its supervisor must not be used. A task whose lineage cannot be read gets empty
    lineage and a log line, never a failure.
    """

    def record_census_run(self, summary: RunSummary) -> None:
        """Keep a finished run's summary for lineage (before the task's checks, which may fail it)."""
        runs: list[RunSummary] = self.__dict__.setdefault("_census_lineage_runs", [])
        runs.append(summary)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Lineage:
        return self._census_lineage()

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Lineage:
        return self._census_lineage()

    def _census_lineage(self) -> Lineage:
        try:
            hook = self._census_hook()
            syncs = gather(hook, self._census_sync_ids(), self.__dict__.get("_census_lineage_runs", []))
            return build_lineage(syncs, census_namespace(hook.base_url))
        except Exception as exc:  # lineage is extra: it never fails the task
            log.warning("OpenLineage: could not build the lineage of the Census syncs (%s).", exc)
            return empty_lineage()

    def _census_hook(self) -> CensusHook:
        from airflow_provider_census.hooks.census import CensusHook

        hook = getattr(self, "hook", None)
        if not isinstance(hook, CensusHook):
            raise TypeError(f"{type(self).__name__} has no CensusHook in .hook")
        return hook

    def _census_sync_ids(self) -> list[int]:
        """The task's sync ids (rendered by then): ``sync_id``, or each of ``sync_ids``; ignored when unreadable."""
        given = getattr(self, "sync_ids", None)
        if given is None:
            given = [getattr(self, "sync_id", None)]
        ids = []
        for value in given if isinstance(given, list | tuple) else [given]:
            try:
                ids.append(census_id(value, "sync_id"))
            except Exception:
                log.debug("OpenLineage: sync id %r is not one; left out.", value)
        return ids
