"""One exception tree for everything Census can do wrong, under one base.

The base subclasses ``AirflowException`` so a task fails with our message as-is, and the
subclasses let users write retry rules on what actually happened (a rate limit is worth a
task retry; a wrong token is not). No message ever holds the API token: the client scrubs
every text that came from the wire before it reaches an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_census.version_compat import AirflowException


class CensusError(AirflowException):
    """Base of every error this provider raises about Census."""


class CensusConfigurationError(CensusError):
    """The Airflow connection is set up wrongly (no token, unknown region, unsafe URL)."""


class CensusApiVersionError(CensusConfigurationError):
    """The call does not exist in the API version the connection talks; the message names the one to use."""


class CensusInputError(CensusError, ValueError):
    """An argument given to the provider cannot be sent to Census (say, a sync id of 'abc')."""


class CensusNoSyncSelectedError(CensusError):
    """A sync selection matched no sync to run (none at all, or only paused ones); the message says which selector."""


class CensusTransportError(CensusError):
    """No usable HTTP answer: a timeout, a refused or dropped connection.

    ``reached_census`` is False only when the request surely never left this machine (the
    connection was never made), which is the one case where a trigger may be resent blindly.
    """

    def __init__(self, message: str, *, reached_census: bool) -> None:
        super().__init__(message)
        self.reached_census = reached_census


class CensusApiError(CensusError):
    """Census, or a proxy in front of it, answered with an error.

    ``retry_after`` is Census's ``Retry-After`` wish in seconds, when it sent one (429, 503).
    ``assumed_route`` is True when the request used a route the API version's reference does
    not document (a v1 route sent to V2), so a 404 may mean the route, not the object, is missing.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        request_label: str,
        census_message: str | None = None,
        retry_after: float | None = None,
        assumed_route: bool = False,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.request_label = request_label
        self.census_message = census_message
        self.retry_after = retry_after
        self.assumed_route = assumed_route


class CensusAuthenticationError(CensusApiError):
    """401 or 403: the token is wrong, revoked, or lacks access. Fix the connection."""


class CensusNotFoundError(CensusApiError):
    """404: the sync, run, source or destination named in the request does not exist.

    On V2, a 404 on a route its reference does not document (``assumed_route``) may instead
    mean that Census does not serve that route; the message then says both.
    """


class CensusValidationError(CensusApiError):
    """Census refused the request's content (400, 409, 422...); carries Census's message."""


class CensusRedirectError(CensusApiError):
    """3xx: the base URL points somewhere that forwards the request. Not followed (the token would go
    along) and not retried: the connection must change."""


class CensusRateLimitError(CensusApiError):
    """429: Census asked us to slow down; it did not carry the request out."""


class CensusServerError(CensusApiError):
    """5xx: Census or a proxy failed; the request may or may not have been carried out."""


class CensusResponseError(CensusApiError):
    """A success status with a body we cannot read (HTML, cut-off JSON, the wrong shape)."""


class CensusTriggerUnconfirmedError(CensusError):
    """Every try of a trigger lost its answer and no new run appeared.

    The sync may or may not be running: look at its history in Census before trying again.
    """


class CensusRunError(CensusError):
    """A sync run did not end in a way the task may report as success.

    Each way a run can end badly has its own subclass, so retry rules can tell them apart.
    ``summary`` holds the run's fields: states, counts, ``error_code``, ``error_message``,
    ``error_detail`` and the run's URL in the Census app.
    """

    def __init__(self, message: str, summary: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.summary = dict(summary)


class CensusRunFailedError(CensusRunError):
    """Census reports the run ``failed``; its ``error_code`` and ``error_message`` say why."""


class CensusRunCanceledError(CensusRunError):
    """The run was canceled (``canceled: true``) before it finished its work."""


class CensusRunSkippedError(CensusRunError):
    """Census skipped the run because an earlier run of the same sync was still going."""


class CensusRunUnknownStateError(CensusRunError):
    """The run stayed in a state this provider does not know; it is never taken as success."""


class CensusRunTimeoutError(CensusRunError):
    """The run did not finish before the task's deadline (and was canceled if so configured)."""


class CensusRejectedRecordsError(CensusRunError):
    """The run completed, but more records were rejected than the task allows."""


class CensusSyncRunsFailedError(CensusRunError):
    """Some of the syncs one task ran did not succeed; the message has a line per failed sync.

    ``summary`` holds ``failed`` (the line of each failed sync, by sync id as text) and
    ``runs`` (the summary of every run that ended, by sync id as text).
    """


class CensusPollingError(CensusRunError):
    """Polling the run failed too many times in a row; the run's own outcome is unknown."""


def _subclasses(base: type[CensusError]) -> dict[str, type[CensusError]]:
    found = {base.__name__: base}
    for sub in base.__subclasses__():
        found.update(_subclasses(sub))
    return found


def is_error_name(name: object) -> bool:
    """True for the name of one of this tree's classes (what a trigger event may carry)."""
    return isinstance(name, str) and name in _subclasses(CensusError)


def rebuild_error(
    name: str, message: str, http_status: int | None = None, summary: Mapping[str, Any] | None = None
) -> CensusError:
    """The exception a trigger reported by name, rebuilt in the worker with its message.

    A deferred task then raises the same class as the same failure raises outside the
    triggerer, so retry rules written on the class hold in both modes.
    """
    error_class = _subclasses(CensusError).get(name, CensusPollingError)
    if issubclass(error_class, CensusApiError):
        return error_class(message, http_status=http_status or 0, request_label="")
    if issubclass(error_class, CensusTransportError):
        return error_class(message, reached_census=True)
    if issubclass(error_class, CensusRunError):
        return error_class(message, summary or {})
    return error_class(message)
