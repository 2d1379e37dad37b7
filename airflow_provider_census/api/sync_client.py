"""The synchronous client, for code running in a task: ``requests`` with one pooled session."""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TypeVar

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_census.api import operations as ops
from airflow_provider_census.api.client import (
    ClientSettings,
    Envelope,
    RawAnswer,
    build_call,
    parse_answer,
    read_result,
    transport_error,
)
from airflow_provider_census.api.endpoints import ApiRequest
from airflow_provider_census.api.errors import CensusError, CensusTriggerUnconfirmedError
from airflow_provider_census.api.models import SyncRun
from airflow_provider_census.api.operations import Operation
from airflow_provider_census.api.retry import may_have_acted

T = TypeVar("T")
log = logging.getLogger(__name__)


class CensusClient:
    """Sends requests with retries; use :meth:`run` for typed results."""

    def __init__(self, settings: ClientSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self._session = session or requests.Session()

    def run(self, operation: Operation[T]) -> T:
        return read_result(operation, self.call(operation.request))

    def call(self, request: ApiRequest) -> Envelope:
        """The envelope of a success, after the retries the policy allows."""
        if self.settings.retry.max_attempts <= 1:
            return parse_answer(self.settings, request, self._send(request))
        for attempt in self.settings.retry.retrying(request):
            with attempt:
                return parse_answer(self.settings, request, self._send(request))
        raise AssertionError("tenacity either returns or raises")  # pragma: no cover

    def latest_sync_run(self, sync_id: object) -> SyncRun | None:
        """The sync's newest run, or None if it never ran."""
        runs = self.run(ops.list_sync_runs(sync_id, ops.PageQuery(1, 1, "desc"))).items
        return runs[0] if runs else None

    def trigger_sync_run(self, sync_id: object, *, force_full_sync: bool = False, settle_seconds: float = 5.0) -> int:
        """Start a run of the sync and return its id; one call never starts two runs.

        The trigger is resent blindly only when Census surely never received it (see
        :mod:`.retry`). When its answer is lost (a timeout, a dropped connection, a 5xx, an
        unreadable body) the run may exist anyway, so the sync's runs are checked first: a run
        newer than the newest one seen before the trigger is taken as this trigger's run. If
        none shows up within ``settle_seconds``, Census did not start one, and the trigger is
        sent again, up to the retry policy's number of attempts.
        """
        operation = ops.trigger_sync(sync_id, force_full_sync=force_full_sync)
        checked_id = ops.census_id(sync_id, "sync_id")
        newest_before = self.latest_sync_run(checked_id)
        baseline = newest_before.id if newest_before else 0
        attempts = self.settings.retry.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return self.run(operation)
            except CensusError as exc:
                if not may_have_acted(exc):
                    raise
                adopted = self._run_started_after(checked_id, baseline, settle_seconds)
                if adopted is not None:
                    log.warning(
                        "The answer to the trigger of sync %s was lost (%s); run %s started after it, "
                        "so it is this trigger's run and the sync is not triggered again.",
                        checked_id,
                        exc,
                        adopted,
                    )
                    return adopted
                if attempt == attempts:
                    raise CensusTriggerUnconfirmedError(
                        f"Triggering sync {checked_id} failed {attempts} times without an answer and no new "
                        f"run appeared (last error: {exc}). Check the sync's history in Census before retrying."
                    ) from exc
                log.warning(
                    "Triggering sync %s got no usable answer (%s) and no new run appeared within %.0f s; "
                    "triggering again (%d of %d).",
                    checked_id,
                    exc,
                    settle_seconds,
                    attempt + 1,
                    attempts,
                )
                time.sleep(self.settings.retry.wait_seconds(attempt, exc))
        raise AssertionError("the loop returns or raises")  # pragma: no cover

    def _run_started_after(self, sync_id: int, baseline: int, settle_seconds: float) -> int | None:
        """A run of the sync newer than ``baseline``, looked for twice, ``settle_seconds`` apart."""
        for look in range(2):
            if look:
                time.sleep(settle_seconds)
            newest = self.latest_sync_run(sync_id)
            if newest is not None and newest.id > baseline:
                return newest.id
        return None

    def _send(self, request: ApiRequest) -> RawAnswer:
        call = build_call(self.settings, request)
        try:
            response = self._session.request(
                call.method,
                call.url,
                headers=dict(call.headers),
                data=call.body,
                timeout=(self.settings.connect_timeout, self.settings.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(request, exc, reached_census=not _never_connected(exc)) from None
        return RawAnswer(response.status_code, response.headers, response.content)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> CensusClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _never_connected(exc: BaseException) -> bool:
    """True when no connection was made, so no byte of the request reached Census."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, NewConnectionError | ConnectTimeoutError):
            return True
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = reason if isinstance(reason, BaseException) else nested or seen.__cause__ or seen.__context__
    return False
