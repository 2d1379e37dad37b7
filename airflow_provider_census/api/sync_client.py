"""The synchronous transport, for code running in a task: ``requests`` with one pooled session.

Every request passes the process's request budget of the connection's token
(:mod:`.budget_gate`), unless the connection turned it off.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, TypeVar

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_census.api.budget_gate import gate_of
from airflow_provider_census.api.endpoints import Request
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.api.transport_failures import causes, transport_error
from airflow_provider_census.api.wire import Answer, parse, prepare

T = TypeVar("T")
log = logging.getLogger(__name__)


class CensusClient:
    """Sends requests with the retries the settings' policy allows and returns typed results."""

    def __init__(self, settings: ClientSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self._session = session or requests.Session()
        self._gate = gate_of(settings)

    def run(self, request: Request[T]) -> T:
        if self.settings.retry.max_attempts <= 1:
            return parse(self.settings, request, self._send(request))
        for attempt in self.settings.retry.retrying(request, paced=self._gate is not None):
            with attempt:
                return parse(self.settings, request, self._send(request))
        raise AssertionError("tenacity either returns or raises")  # pragma: no cover

    def _send(self, request: Request[Any]) -> Answer:
        """One request on the wire, in its turn at the token's request budget, which learns from the answer."""
        if self._gate is None:
            return self._exchange(request)
        with self._gate.slot(request.priority) as slot:
            answer = self._exchange(request)
            slot.answered(answer.status, answer.retry_after)
        return answer

    def _exchange(self, request: Request[Any]) -> Answer:
        url, headers, body = prepare(self.settings, request)
        try:
            response = self._session.request(
                request.method,
                url,
                headers=headers,
                data=body,
                timeout=(self.settings.connect_timeout, self.settings.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(self.settings, request, exc, reached_census=not _never_connected(exc)) from None
        return Answer(response.status_code, response.headers, response.content)

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
    return isinstance(exc, requests.ConnectTimeout) or any(
        isinstance(cause, NewConnectionError | ConnectTimeoutError) for cause in causes(exc)
    )
