"""The provider's sensors, by the path DAGs import them from.

- :class:`CensusSyncRunSensor` (:mod:`.sync_run`): wait for a given Census sync run, in poke,
  reschedule or deferrable mode.
- :class:`CensusSensor` (:mod:`.provider21`): provider 2.1's name, deprecated, so DAGs written
  against 2.1 keep working unchanged.
"""

from airflow_provider_census.sensors.provider21 import CensusSensor
from airflow_provider_census.sensors.sync_run import CensusSyncRunSensor

__all__ = ["CensusSensor", "CensusSyncRunSensor"]
