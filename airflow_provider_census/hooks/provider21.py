"""The hook methods of provider 2.1, kept for DAGs written against it, each warning of its successor.

``CensusHook`` inherits them from :class:`Provider21HookMethods`, so
``from airflow_provider_census.hooks.census import CensusHook`` still offers them; they live
here so that the hook's own module holds only the calls of this provider, and so that the
day they go, one module goes. Each is a thin wrapper over its successor, typed against the
few hook members it uses (:class:`_Successors`), not against the hook.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_census.api.inputs import census_id
from airflow_provider_census.api.settings import ClientSettings, app_url_for_base
from airflow_provider_census.version_compat import AirflowProviderDeprecationWarning

if TYPE_CHECKING:
    from airflow_provider_census.api.models import SyncRun


class _Successors(Protocol):
    """The members of ``CensusHook`` that 2.1's methods call."""

    @property
    def settings(self) -> ClientSettings: ...

    @property
    def base_url(self) -> str: ...

    def sync_run_url(self, sync_id: int, sync_run_id: int) -> str: ...

    def trigger_sync_run(self, sync_id: int | str, *, force_full_sync: bool = False) -> int: ...

    def get_sync_run(self, sync_run_id: int | str, *, sync_id: int | str | None = None) -> SyncRun: ...


class Provider21HookMethods:
    """Provider 2.1's ``CensusHook`` methods, deprecated: each names its successor when called."""

    def trigger_sync(self: _Successors, sync_id: int | str) -> int:
        """Deprecated (2.1): use :meth:`trigger_sync_run`, which this calls."""
        _deprecated("CensusHook.trigger_sync", "CensusHook.trigger_sync_run")
        return self.trigger_sync_run(sync_id)

    def get_sync_run_info(self: _Successors, sync_run_id: int | str) -> dict[str, Any]:
        """Deprecated (2.1): the run's fields as Census sent them; use :meth:`get_sync_run` for a typed run."""
        _deprecated("CensusHook.get_sync_run_info", "CensusHook.get_sync_run")
        return dict(self.get_sync_run(sync_run_id).raw)

    def get_api_base_url(self: _Successors) -> str:
        """Deprecated (2.1): the Census app's scheme and host, without ``/api/...``; see :attr:`base_url`."""
        _deprecated("CensusHook.get_api_base_url", "CensusHook.base_url")
        return app_url_for_base(self.base_url)

    def get_sync_history_url(self: _Successors, sync_id: int | str, sync_run_id: int | str | None = None) -> str:
        """Deprecated (2.1): the sync's history page in the Census app, at one run if given."""
        _deprecated("CensusHook.get_sync_history_url", "the XCom sync_run_url the operators push")
        checked = census_id(sync_id, "sync_id")
        if sync_run_id is None:
            return f"{app_url_for_base(self.base_url)}/syncs/{checked}/history"
        return self.sync_run_url(checked, census_id(sync_run_id, "sync_run_id"))

    def get_auth_headers(self: _Successors) -> dict[str, str]:
        """Deprecated (2.1): the Authorization header; never log what it returns."""
        _deprecated("CensusHook.get_auth_headers", "the hook's own calls, which send it themselves")
        return {"Authorization": f"Bearer {self.settings.token}"}


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is the name of airflow-provider-census 2.1; use {new}.",
        AirflowProviderDeprecationWarning,
        stacklevel=3,
    )
