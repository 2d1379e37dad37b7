"""How a run is read: by the first route this Census serves, in a fixed order.

Fivetran's V2 reference (a Public Preview) documents one way to read a run,
``GET /syncs/test_status?sync_run_id=``, which carries its state, times and error but no counts
and no ``canceled``. v1's richer routes (``GET /sync_runs/{id}``, a sync's run list) are
assumed to exist on V2 too, and are tried first. A run is read by the first route that works,
in that order. On V2 a missing route and a missing run both answer a bare ``404``, so a route
is taken as missing only when a later route found the very run it did not: then
:mod:`.routes` remembers it for the connection's base URL, and it is never asked again in this
process (one extra request per process, not one per poll). A route that once answered is
served, and its 404 means the run does not exist, as on v1, which documents
``GET /sync_runs/{id}``: nothing else is tried then.

The reading is written once, as steps that yield requests and receive their answers
(:func:`read_run`); :func:`drive` and :func:`adrive` carry them out with the synchronous and
the asynchronous client, so the task and the trigger read runs by the same rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api import routes
from airflow_provider_census.api.budget import Priority
from airflow_provider_census.api.endpoints import Endpoint, Request
from airflow_provider_census.api.errors import CensusError, CensusNotFoundError
from airflow_provider_census.api.inputs import PageQuery
from airflow_provider_census.api.models import Page, SyncRun
from airflow_provider_census.api.settings import V2, ClientSettings

T = TypeVar("T")

Steps = Generator[Request[Any], Any, T]
"""Requests to send, one at a time; each answer (or its exception) goes back in."""
RUN_LIST_LOOK = PageQuery(1, 25, "desc")
"""How far back a sync's run list is searched for a run: its first page, newest first."""


def route_missing(settings: ClientSettings, endpoint: Endpoint[Any]) -> bool:
    """Whether this Census was found not to serve ``endpoint`` (only assumed routes ever are)."""
    return routes.is_missing(settings.base_url, endpoint.route)


def is_route_404(exc: BaseException) -> bool:
    """A 404 on a route the connection's API version does not document: the route may be what is missing."""
    return isinstance(exc, CensusNotFoundError) and exc.assumed_route


@dataclass(frozen=True)
class RunRoute:
    """One way to read a run: the call, whether it needs the run's sync, and how to find the run in its answer."""

    endpoint: Endpoint[Any]
    needs_sync_id: bool = False

    def request(
        self, settings: ClientSettings, run_id: int, sync_id: int | None, priority: Priority | None = None
    ) -> Request[Any]:
        if self.endpoint is ep.LIST_SYNC_RUNS:
            return self.endpoint.bind(settings, params=RUN_LIST_LOOK.params(), sync_id=sync_id or 0, priority=priority)
        if self.endpoint is ep.SYNC_RUN_STATUS:
            return self.endpoint.bind(settings, params={"sync_run_id": run_id}, priority=priority)
        return self.endpoint.bind(settings, sync_run_id=run_id, priority=priority)

    def pick(self, answer: Any, run_id: int, sync_id: int | None) -> SyncRun | None:
        """The run from the answer, its sync filled in when known; None when a list does not hold it."""
        if isinstance(answer, Page):
            return next((run for run in answer.items if run.id == run_id), None)
        run: SyncRun = answer
        return run.with_sync_id(sync_id)


BY_ID = RunRoute(ep.GET_SYNC_RUN)
FROM_SYNC_LIST = RunRoute(ep.LIST_SYNC_RUNS, needs_sync_id=True)
BY_STATUS = RunRoute(ep.SYNC_RUN_STATUS)
V2_RUN_ROUTES = (BY_ID, FROM_SYNC_LIST, BY_STATUS)
"""In order: v1's two routes (every field), then the one V2 documents (state and error only)."""


def run_routes(settings: ClientSettings, sync_id: int | None) -> list[RunRoute]:
    """The routes to try for one run on this connection, in order."""
    if settings.api_version != V2:
        return [BY_ID]
    return [
        route
        for route in V2_RUN_ROUTES
        if not route_missing(settings, route.endpoint) and (sync_id is not None or not route.needs_sync_id)
    ]


def read_run(
    settings: ClientSettings, run_id: int, sync_id: int | None = None, *, urgent: bool = False
) -> Steps[SyncRun]:
    """Read one run by the first route that works; see the module's docstring for the rules.

    ``urgent``: the reads go ahead of routine polls when the token's request budget holds
    requests back (a run's final read, which a task waits on); else they are routine.
    """
    priority = Priority.URGENT if urgent else Priority.ROUTINE
    routes = run_routes(settings, sync_id)
    not_found: list[RunRoute] = []
    for route in routes:
        last = route is routes[-1]
        try:
            answer = yield route.request(settings, run_id, sync_id, priority)
        except CensusNotFoundError as exc:
            if last or not is_route_404(exc):
                raise
            not_found.append(route)
            continue
        run = route.pick(answer, run_id, sync_id)
        if run is not None:
            _learn(settings, route, not_found, run)
            return run
    raise AssertionError("the last route returns or raises")  # pragma: no cover


def _learn(settings: ClientSettings, found_by: RunRoute, not_found: list[RunRoute], run: SyncRun) -> None:
    evidence = f"it answered 404 for sync run {run.id}, which {found_by.endpoint.route} found"
    for route in not_found:
        routes.note_missing(settings.base_url, route.endpoint.route, evidence)


def drive(steps: Steps[T], send: Callable[[Request[Any]], Any]) -> T:
    """Carry out ``steps`` with a synchronous ``send``; a failure goes back into the steps to handle."""
    try:
        request = next(steps)
        while True:
            try:
                answer = send(request)
            except CensusError as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result


async def adrive(steps: Steps[T], send: Callable[[Request[Any]], Awaitable[Any]]) -> T:
    """:func:`drive` for the asynchronous client."""
    try:
        request = next(steps)
        while True:
            try:
                answer = await send(request)
            except CensusError as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result
