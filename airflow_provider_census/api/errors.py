"""One exception tree for everything Census can do wrong, under one base.

The base subclasses ``AirflowException`` so a task fails with our message as-is, and the
subclasses let users write retry rules on what actually happened (a rate limit is worth a
task retry; a wrong token is not). No message ever holds the API token: the client scrubs
every text that came from the wire before it reaches an exception.
"""

from __future__ import annotations

from airflow_provider_census.version_compat import AirflowException


class CensusError(AirflowException):
    """Base of every error this provider raises about Census."""


class CensusConfigurationError(CensusError):
    """The Airflow connection is set up wrongly (no token, unknown region, unsafe URL)."""


class CensusInputError(CensusError, ValueError):
    """An argument given to the provider cannot be sent to Census (say, a sync id of 'abc')."""


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
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        request_label: str,
        census_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.request_label = request_label
        self.census_message = census_message
        self.retry_after = retry_after


class CensusAuthenticationError(CensusApiError):
    """401 or 403: the token is wrong, revoked, or lacks access. Fix the connection."""


class CensusNotFoundError(CensusApiError):
    """404: the sync, run, source or destination named in the request does not exist."""


class CensusValidationError(CensusApiError):
    """Census refused the request's content (400, 409, 422...); carries Census's message."""


class CensusRateLimitError(CensusApiError):
    """429: Census asked us to slow down; it did not carry the request out."""


class CensusServerError(CensusApiError):
    """5xx: Census or a proxy failed; the request may or may not have been carried out."""


class CensusResponseError(CensusApiError):
    """A success status with a body we cannot read (HTML, cut-off JSON, the wrong shape)."""


class CensusTriggerUnconfirmedError(CensusError):
    """A trigger's answer was lost and no new run could be found: it was not sent again.

    Raised instead of resending, so that one trigger call never starts two runs.
    """
