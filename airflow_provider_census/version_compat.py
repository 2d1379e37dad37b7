"""The only module that knows which Airflow it runs on.

Everything version-dependent is imported from here, so supporting a new Airflow release
means reading one file. ``airflow.providers.common.compat`` resolves the Airflow 3 Task SDK
names and falls back to their Airflow 2 homes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow import __version__ as _airflow_version
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.common.compat.triggers import BaseEventTrigger  # BaseTrigger on 2.11, which has no watchers
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
AIRFLOW_V_3_0_PLUS = AIRFLOW_VERSION >= Version("3.0.0")
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= Version("3.3.0")

try:  # Airflow 3.3+: shared trigger streams, whose ack mode tells a producer its events are stored
    from airflow.triggers.shared_stream import SharedStreamProducer
except ImportError:  # Airflow 2.11-3.2: a base that nothing on those lines instantiates
    SharedStreamProducer = object  # type: ignore[misc,assignment]

_T = TypeVar("_T")

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
        Variable,
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
        Variable,
        XCom,
        conf,
        mask_secret,
    )


def task_state_store(context: Any) -> Any:
    """The task's ``task_state_store`` on Airflow 3.3 and later, else None (older Airflow has none)."""
    return context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None


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
    return await off_the_event_loop(BaseHook.get_connection, conn_id)


async def off_the_event_loop(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Make a blocking call in a worker thread of the loop, for async code such as a trigger.

    In a triggerer the Task SDK's blocking calls (a Variable, ``mask_secret``) wait on the
    supervisor: Airflow 3.0 and 3.1 raise when one is made on the event loop, and later
    releases would stall every trigger while it waits. Any thread will do: the call only waits.
    """
    from asgiref.sync import sync_to_async

    return await sync_to_async(func, thread_sensitive=False)(*args, **kwargs)


async def atask_instance_state(ti: Any) -> str | None:
    """Airflow's state now of a trigger's task instance (Airflow 3), or None where it has none.

    ``ti`` is the ``task_instance`` the triggerer sets on a trigger; the Task SDK answers by
    ``task_id``, or ``<task_id>_<map_index>`` for a mapped task.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    by_run = await off_the_event_loop(
        RuntimeTaskInstance.get_task_states,
        ti.dag_id,
        map_index=ti.map_index,
        task_ids=[ti.task_id],
        run_ids=[ti.run_id],
    )
    key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
    state = by_run.get(ti.run_id, {}).get(key)
    return None if state is None else str(state)


async def aget_variable(key: str) -> str | None:
    """An Airflow Variable's text, or None when there is none, without blocking the event loop."""
    value = await off_the_event_loop(Variable.get, key, None)
    return None if value is None else str(value)


async def aset_variable(key: str, text: str) -> None:
    await off_the_event_loop(Variable.set, key, text)


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
    "SharedStreamProducer",
    "Variable",
    "XCom",
    "aget_connection",
    "aget_variable",
    "aset_variable",
    "atask_instance_state",
    "default_deferrable",
    "mask_secret",
    "off_the_event_loop",
]
