"""Provider 2.1's trigger, ``CensusTrigger``, kept so that the trigger rows 2.1 wrote run on after the upgrade.

Its public path stays ``airflow_provider_census.triggers.census.CensusTrigger`` (that module
exports it); it lives here, beside nothing else, because it is a name kept for upgrades.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.triggers.sync_run import CensusSyncRunTrigger


class CensusTrigger(CensusSyncRunTrigger):
    """Provider 2.1's trigger, so that the trigger rows it wrote still run after the upgrade.

    A row holds this class path and exactly these three kwargs; ``sync_run_id`` is often text
    (2.1's sensor rendered it from a template). The wait is this provider's loop and the event
    is this provider's inside 2.1's shape (see :mod:`airflow_provider_census.core.events`), which
    every sensor's ``execute_complete`` reads, and so does code written against 2.1. Only 2.1's
    sensor deferred to this trigger, and a sensor only watches a run, so killing the task never
    cancels the run (as in 2.1). As in 2.1 it has no deadline of its own; a trigger timeout
    Airflow stored with the row still applies. Use
    :class:`~airflow_provider_census.triggers.census.CensusSyncRunTrigger` in new code.

    :param sync_run_id: the run to wait for, an integer or a string of digits.
    :param census_conn_id: the Airflow connection to Census.
    :param poll_interval: seconds between polls.
    """

    def __init__(
        self,
        sync_run_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__(
            census_id(sync_run_id, "sync_run_id"),
            census_conn_id=census_conn_id,
            poll_interval=poll_interval,
            cancel_on_kill=False,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """2.1's class path and kwargs, nothing more, so the row stays readable by either version."""
        return self._class_path(), {
            "sync_run_id": self.sync_run_id,
            "census_conn_id": self.census_conn_id,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info(
            "Resuming a wait of airflow-provider-census 2.1 for Census sync run %s with this provider's trigger",
            self.sync_run_id,
        )
        event = await self.watch(self.log, first_poll_delay=self._first_poll_delay())
        yield TriggerEvent(event.in_provider_21_shape())  # type: ignore[no-untyped-call]
