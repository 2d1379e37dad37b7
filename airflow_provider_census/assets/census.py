"""Census syncs as Airflow assets (datasets on Airflow 2.11), and what their events carry.

A task that finishes a sync run updates the assets it declares as ``outlets``; Airflow
records one asset event per outlet when the task succeeds (never when the run failed, since
the task then fails). The provider puts the run into each event's ``extra`` (sync and run
ids, status, record counts, the run's URL), so a DAG scheduled on the asset can read what
was synced. :func:`census_sync_asset` names a sync's asset the same way in every DAG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_census.api.inputs import census_id

if TYPE_CHECKING:
    from airflow_provider_census.runs import RunSummary
    from airflow_provider_census.version_compat import Asset, Context

ASSET_SCHEME = "census"
EXTRA_FIELDS = (
    "sync_id",
    "sync_run_id",
    "status",
    "records_processed",
    "records_updated",
    "records_failed",
    "records_invalid",
    "url",
)
"""What each asset event's ``extra`` holds of the run (JSON primitives, from its summary)."""


def census_sync_asset(sync_id: int | str, *, workspace: str = "default") -> Asset:
    """The asset of one Census sync: ``census://<workspace>/syncs/<sync_id>``.

    ``workspace`` tells apart syncs of several Census workspaces (or Fivetran groups) that
    share ids; one workspace needs none.
    """
    from airflow_provider_census.version_compat import Asset

    sync = census_id(sync_id, "sync_id")
    return Asset(f"{ASSET_SCHEME}://{workspace}/syncs/{sync}", extra={"census_sync_id": sync})


def event_extra(summary: RunSummary) -> dict[str, Any]:
    """The run's part of an asset event's ``extra``."""
    data = summary.to_json()
    return {name: data[name] for name in EXTRA_FIELDS}


def record_run_in_outlets(task_outlets: list[Any], context: Context, summary: RunSummary) -> None:
    """Put the run into the ``extra`` of the event of every asset the task declares as an outlet."""
    events = context.get("outlet_events")
    if events is None:
        return
    for outlet in task_outlets:
        if hasattr(outlet, "uri"):  # an asset (a dataset on 2.11), not an alias or a plain value
            events[outlet].extra.update(event_extra(summary))


def record_runs_in_outlets(task_outlets: list[Any], context: Context, summaries: dict[int, RunSummary]) -> None:
    """For a task that ran many syncs: a sync's asset gets its run; any other asset, every run.

    A sync's asset is one :func:`census_sync_asset` made (its ``extra`` names the sync); the
    other assets' events list the runs under ``census_sync_runs``, in sync id order.
    """
    events = context.get("outlet_events")
    if events is None:
        return
    for outlet in task_outlets:
        if not hasattr(outlet, "uri"):
            continue
        sync_id = (getattr(outlet, "extra", None) or {}).get("census_sync_id")
        if sync_id in summaries:
            events[outlet].extra.update(event_extra(summaries[sync_id]))
        else:
            events[outlet].extra["census_sync_runs"] = [event_extra(summaries[key]) for key in sorted(summaries)]
