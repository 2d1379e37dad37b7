"""The provider's operators, by the path DAGs import them from.

- :class:`CensusTriggerSyncOperator` (:mod:`.trigger_sync`): trigger a sync and, by default, wait for its run.
- :class:`CensusTriggerSyncsOperator` (:mod:`.trigger_syncs`): trigger every sync a selection
  picks and wait for all their runs in one deferral.
- :class:`CensusOperator` (:mod:`.provider21`): provider 2.1's name, deprecated, so DAGs written
  against 2.1 keep working unchanged.
"""

from airflow_provider_census.core.steps import MAX_RETRIGGERS_AFTER_SKIPS
from airflow_provider_census.operators.arguments import CalledWithContext
from airflow_provider_census.operators.provider21 import CensusOperator
from airflow_provider_census.operators.trigger_sync import STATE_STORE_KEY, CensusTriggerSyncOperator
from airflow_provider_census.operators.trigger_syncs import MANY_STATE_STORE_KEY, CensusTriggerSyncsOperator

__all__ = [
    "MANY_STATE_STORE_KEY",
    "MAX_RETRIGGERS_AFTER_SKIPS",
    "STATE_STORE_KEY",
    "CalledWithContext",
    "CensusOperator",
    "CensusTriggerSyncOperator",
    "CensusTriggerSyncsOperator",
]
