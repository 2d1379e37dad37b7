"""The provider's triggers, by the path Airflow stores in a trigger row (which must not move).

- :class:`CensusSyncRunTrigger`: one run; the operator and the sensor defer to it.
- :class:`CensusSyncRunsTrigger`: many runs in one deferral; the many-syncs operator defers to it.
- :class:`CensusTrigger`: provider 2.1's trigger, so that rows 2.1 wrote run on after the upgrade.

Each is defined in a module named for it (:mod:`.sync_run`, :mod:`.sync_runs`, :mod:`.provider21`);
their wait is :class:`~airflow_provider_census.watch.RunWatch`. Every trigger serializes itself
under this module's path.
"""

from airflow_provider_census.triggers.provider21 import CensusTrigger
from airflow_provider_census.triggers.sync_run import CensusSyncRunTrigger, WaitingTrigger
from airflow_provider_census.triggers.sync_runs import CensusSyncRunsTrigger

__all__ = ["CensusSyncRunTrigger", "CensusSyncRunsTrigger", "CensusTrigger", "WaitingTrigger"]
