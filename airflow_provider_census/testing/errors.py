"""The one exception the workspace raises to make the server answer with a Census error."""

from __future__ import annotations


class ApiError(Exception):
    """A request Census would refuse; the server turns it into ``{"status": "error"}``.

    Keeping the HTTP status on the exception lets the workspace stay free of any web
    framework while still choosing between 400, 404 and 422 as Census does.
    """

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message


def not_found(what: str, key: object) -> ApiError:
    """A 404 whose message names the missing resource, e.g. ``Sync 7 not found``."""
    return ApiError(404, f"{what} {key} not found")


def invalid(message: str) -> ApiError:
    """A 422 for a well-formed request whose content Census would reject."""
    return ApiError(422, message)
