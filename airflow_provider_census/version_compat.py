"""The only module that knows which Airflow it runs on.

Everything version-dependent is imported from here, so supporting a new Airflow release
means reading one file. ``airflow.providers.common.compat`` resolves the Airflow 3 Task SDK
names and falls back to their Airflow 2 homes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow import __version__ as _airflow_version
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.common.compat.triggers import BaseEventTrigger  # BaseTrigger on 2.11, which has no watchers
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_0_PLUS = AIRFLOW_VERSION >= Version("3.0.0")
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= Version("3.3.0")

if TYPE_CHECKING:
    from airflow.sdk import (
        Asset,
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Connection,
        Context,
        PokeReturnValue,
        conf,
    )
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.sdk.log import mask_secret
else:
    from airflow.providers.common.compat.sdk import (
        AirflowException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        Asset,
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Context,
        PokeReturnValue,
        XCom,
        conf,
        mask_secret,
    )


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``, read when a task is built, not at import."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


async def aget_connection(conn_id: str) -> Connection:
    """Read a connection without blocking the event loop, on every supported Airflow.

    Airflow 3 has an async connection API; on Airflow 2 the blocking read (a database or
    secrets-backend call) runs in a worker thread instead.
    """
    if hasattr(BaseHook, "aget_connection"):
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowNotFoundException",
    "AirflowProviderDeprecationWarning",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "Asset",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "Context",
    "PokeReturnValue",
    "XCom",
    "aget_connection",
    "default_deferrable",
    "mask_secret",
]
