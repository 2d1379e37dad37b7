"""The "Census sync run" button: a task's run in the Census app.

The operator pushes the run's URL to XCom right after triggering, before it waits, so the
link works while the task is still deferred. The URL is built from the connection's host,
so US, EU and custom hosts each link to their own app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_census.runs import XCOM_SYNC_RUN_URL, XCOM_SYNC_RUNS_URL
from airflow_provider_census.version_compat import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


class CensusSyncRunLink(BaseOperatorLink):
    """Links a task to the Census page of the sync run it started or waits for."""

    name = "Census sync run"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=XCOM_SYNC_RUN_URL, ti_key=ti_key)
        return url if isinstance(url, str) else ""


class CensusSyncRunsLink(BaseOperatorLink):
    """Links a task that runs many syncs to the Census page that leads to its runs.

    While the runs go, that is the workspace's syncs page (or the one run's page, for a single
    sync); once the task has failed, the page of the first sync run that did not succeed.
    """

    name = "Census sync runs"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=XCOM_SYNC_RUNS_URL, ti_key=ti_key)
        return url if isinstance(url, str) else ""
