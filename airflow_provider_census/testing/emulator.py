"""The test-facing handle on an emulated Census: start it, script it, inspect it.

The server runs on its own event loop in a background thread, so tests written in plain
synchronous code (and Airflow tasks under test) can talk to it over real HTTP while the
test thread scripts syncs and reads the request log. One emulator is one workspace that
answers both API versions, v1 under ``/api/v1`` and V2 (Activations) under ``/api/v2``,
each with its own token, so a client can be tested against either, or migrated from one
to the other, over the same syncs and runs. aiohttp is imported only in
:meth:`CensusEmulator.start`, which keeps ``import airflow_provider_census.testing`` cheap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_provider_census.testing import versions
from airflow_provider_census.testing.errors import ApiError
from airflow_provider_census.testing.faults import FaultPlan, FaultProfile, PathPrefix
from airflow_provider_census.testing.history import DurationModel
from airflow_provider_census.testing.ratelimit import RateLimit, busiest_window
from airflow_provider_census.testing.requestlog import RecordedRequest, RequestLog
from airflow_provider_census.testing.runs import RunScript
from airflow_provider_census.testing.workspace import Workspace

if TYPE_CHECKING:
    from aiohttp import web

    from airflow_provider_census.testing import server

DEFAULT_TOKEN = "secret-token:emulator"  # noqa: S105 - a fixed test token, not a secret
DEFAULT_PAT = "emulator-pat:activations"
DEFAULT_GROUP_ID = "projected_sickle"
_START_TIMEOUT = 30.0


class CensusEmulator:
    """A Census API (v1 and V2) on ``127.0.0.1``, for tests, demos and benchmarks.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``port=0``
    picks a free port; read :meth:`api_base_url` (or :attr:`base_url`) after starting.
    ``token`` is the v1 workspace API key and ``pat`` the V2 Activations personal access
    token; each version takes only its own. ``group_id`` is the Fivetran group the
    workspace belongs to on V2, and ``api_versions`` the versions it serves (paths under
    any other answer 404), e.g. ``("v2",)`` for a Census after v1 has retired.
    ``sync_source_names=False`` leaves the name of a sync's model, segment or dataset
    out of the sync answers (see :attr:`sync_source_names`); ``refuse_paused_triggers=True``
    makes triggering a paused sync fail (see :attr:`refuse_paused_triggers`).
    ``v2_routes="documented"`` serves on V2 only the routes Fivetran's V2 reference documents
    (trigger, cancel, ``GET /syncs/test_status``, ``PATCH /syncs/{id}``, activations, datasets;
    see ``server.V2_DOCUMENTED``) and answers every other V2 path ``404 {"status": 404}``; the
    default ``"all"`` also serves v1's routes on V2 (reading runs and syncs), as the provider
    assumes Census does.
    ``require_group=True`` makes V2's lists of sources and activations answer 400 without a
    ``group_id`` (no V2 page says they need one; this shows what users would see if they did).
    ``rate_limit=N`` accepts at most N requests per token in any second and answers the others
    429 with a ``Retry-After`` in whole seconds, as Census does (see :attr:`rate_limit`).

    Everything a test adds (models, tables, segments, datasets, destinations, syncs) lives
    in this emulator only; another emulator starts again from the seed.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        port: int = 0,
        host: str = "127.0.0.1",
        faults: FaultProfile | None = None,
        keepalive_timeout: float = 300.0,
        *,
        pat: str = DEFAULT_PAT,
        group_id: str = DEFAULT_GROUP_ID,
        api_versions: Iterable[str] = versions.API_VERSIONS,
        sync_source_names: bool = True,
        refuse_paused_triggers: bool = False,
        v2_routes: str = "all",
        require_group: bool = False,
        rate_limit: int | None = None,
    ) -> None:
        if v2_routes not in versions.V2_ROUTE_MODES:
            raise ValueError(f"v2_routes must be one of {versions.V2_ROUTE_MODES}, got {v2_routes!r}")
        self.v2_routes = v2_routes
        self.token = token
        self.pat = pat
        self.group_id = group_id
        self.require_group = require_group
        self.api_versions = versions.checked(api_versions)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._keepalive_timeout = keepalive_timeout
        self.workspace = Workspace(sync_source_names=sync_source_names, refuse_paused_triggers=refuse_paused_triggers)
        self._faults = FaultPlan()
        self._faults.set_profile(faults)
        self._log = RequestLog()
        self._rate_limit = RateLimit(rate_limit)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._state: server.EmulatorState | None = None

    # -- life cycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """v1's :meth:`api_base_url`, or V2's when v1 is not served: what callers of old expect."""
        return self.api_base_url(self.api_versions[0])

    def api_base_url(self, version: str) -> str:
        """``http://127.0.0.1:PORT/api/v1`` (or ``.../api/v2``): a connection's base URL for ``version``."""
        self._check_served(version)
        return f"http://{self.host}:{self.port}{versions.prefix(version)}"

    def token_for(self, version: str) -> str:
        """The bearer token ``version`` takes: the workspace API key on v1, the PAT on V2."""
        self._check_served(version)
        return self.token if version == "v1" else self.pat

    def _check_served(self, version: str) -> None:
        if version not in self.api_versions:
            raise ValueError(f"this emulator serves API {', '.join(self.api_versions)}, not {version!r}")

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> CensusEmulator:
        """Start serving in a background thread; returns once the port is listening."""
        if self._thread is not None:
            return self
        from airflow_provider_census.testing import server

        state = self._state = server.EmulatorState(
            self.token,
            self.pat,
            self.group_id,
            self.api_versions,
            self.workspace,
            self._faults,
            self._log,
            v2_routes=self.v2_routes,
            require_group=self.require_group,
            rate_limit=self._rate_limit,
        )
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                runner = loop.run_until_complete(
                    server.serve(state, self.host, self._requested_port, self._keepalive_timeout)
                )
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self._loop, self._runner = loop, runner
            self._port = int(runner.addresses[0][1])
            ready.set()
            try:
                loop.run_forever()
            finally:
                _close_loop(loop)

        thread = threading.Thread(target=main, name="census-emulator", daemon=True)
        thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("the Census emulator did not start in time")
        if failure:
            thread.join()
            raise RuntimeError(f"the Census emulator could not start: {failure[0]}") from failure[0]
        self._thread = thread
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        thread, loop, runner = self._thread, self._loop, self._runner
        if thread is None or loop is None or runner is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = self._loop = self._runner = None
            self._port = None

    def __enter__(self) -> CensusEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting ----------------------------------------------------------------------

    @property
    def sync_source_names(self) -> bool:
        """Whether sync answers name the model, segment or dataset a sync reads (default True).

        Census's sync answers have carried the model's name beside its id, but a client must
        not count on it: with False, ``source_attributes.object`` of such a sync shows only
        ``type`` and ``id``, and the client has to look the object up (``GET
        /sources/{id}/models/{model_id}``, ``.../filter_segments/{id}``, ``/datasets/{id}``).
        A table keeps its ``table_catalog``, ``table_schema`` and ``table_name``. It can be
        changed while the emulator serves.
        """
        return self.workspace.sync_source_names

    @sync_source_names.setter
    def sync_source_names(self, shown: bool) -> None:
        self.workspace.sync_source_names = shown

    @property
    def refuse_paused_triggers(self) -> bool:
        """Whether triggering a paused sync is refused (default False: it runs like any other).

        Census does not document what ``POST /syncs/{id}/trigger`` does to a paused sync,
        so the emulator offers both answers; which one Census gives is not known here. When
        True, the trigger answers 422 ``{"status": "error", "message": "Sync N is paused,
        ..."}`` on both API versions and starts no run, and :meth:`trigger` raises
        ``ApiError``. It can be changed while the emulator serves.
        """
        return self.workspace.refuse_paused_triggers

    @refuse_paused_triggers.setter
    def refuse_paused_triggers(self, refused: bool) -> None:
        self.workspace.refuse_paused_triggers = refused

    @property
    def rate_limit(self) -> int | None:
        """Requests per token accepted in any one second (None: no limit); it can be changed while serving.

        Beyond it a request is answered 429 with ``Retry-After`` in whole seconds (until the oldest
        accepted request leaves the window) and recorded with ``fault="rate_limit"``; it changes
        nothing and does not count. A request with a wrong token is a 401 before the limit.
        """
        return self._rate_limit.per_second

    @rate_limit.setter
    def rate_limit(self, per_second: int | None) -> None:
        self._rate_limit.per_second = per_second

    @property
    def rate_limited(self) -> int:
        """How many requests the :attr:`rate_limit` refused so far."""
        return self._rate_limit.refused

    def busiest_second(self, method: str | None = None, path: str | None = None) -> int:
        """The most requests (these, or all) that arrived in any one-second window, refused ones too.

        What a client sent, whatever was accepted: with a :attr:`rate_limit` of N, a client that
        keeps to it shows at most N here and :attr:`rate_limited` stays 0.
        """
        return busiest_window(request.started_at for request in self.requests_for(method, path))

    def add_sync(
        self,
        script: RunScript | None = None,
        label: str | None = None,
        *,
        source: dict[str, Any] | None = None,
        destination: dict[str, Any] | None = None,
        paused: bool = False,
        operation: str = "upsert",
        mappings: list[dict[str, Any]] | None = None,
        sync_id: int | None = None,
    ) -> int:
        """Add a sync whose runs follow ``script`` (default: complete after a few polls).

        By default it reads model 15 (``braze_test``) of source 4 and writes Braze users.
        ``source`` names another object, of source 4 unless it gives a ``connection_id``
        (or ``connection_slug``): ``{"type": "model", "name": "dim_users"}`` (or ``"id"``),
        ``{"type": "table", "table_catalog": "prod", "table_schema": "analytics",
        "table_name": "dim_users"}`` (or ``"id"``; the name alone when it is unambiguous),
        ``{"type": "segment", "name": ...}``, ``{"type": "dataset", "name": ...}``, or
        Census's own form ``{"connection_id": 4, "object": {...}}``. ``destination`` is
        ``{"connection_id": 15, "object": "user"}``, the connection by v1 id, slug or V2
        activation id. ``paused`` and ``operation`` are the sync's; ``mappings`` default to
        EMAIL mapped to the object's first key field. Whatever ``POST /syncs`` would refuse
        raises ValueError with its message. A paused sync still runs when triggered unless
        :attr:`refuse_paused_triggers`. ``sync_id`` gives the sync that id (one your DAG
        names, say ``1234``) instead of the next free one.
        """
        try:
            return self.workspace.add_sync(
                script or RunScript(),
                label=label,
                source=source,
                destination=destination,
                paused=paused,
                operation=operation,
                mappings=mappings,
                sync_id=sync_id,
            )
        except ApiError as exc:
            raise ValueError(exc.message) from None

    def add_model(
        self,
        name: str,
        *,
        source_id: int = 4,
        query: str | None = None,
        columns: Iterable[tuple[str, str]] | None = None,
    ) -> int:
        """Add a model to a source (Snowflake, 4, by default) and return its id.

        ``columns`` are ``(name, type)`` pairs (default ``ID`` and ``EMAIL``); ``query``
        defaults to ``select * from <name>``. A source's model names are unique (ValueError).
        """
        return self.workspace.catalog.add_model(source_id, name, query, columns)

    def add_table(
        self,
        name: str,
        *,
        source_id: int = 4,
        catalog: str = "prod",
        schema: str = "analytics",
        columns: Iterable[tuple[str, str]] | None = None,
    ) -> int:
        """Add the warehouse table ``catalog.schema.name`` to a source and return its id."""
        return self.workspace.catalog.add_table(source_id, catalog, schema, name, columns)

    def add_dataset(self, name: str, *, source_id: int = 4, query: str | None = None) -> int:
        """Add a SQL dataset built on a source (``GET /datasets`` lists them) and return its id."""
        return self.workspace.catalog.add_dataset(source_id, name, query)

    def add_segment(
        self,
        name: str,
        *,
        source_id: int = 4,
        model_id: int | None = None,
        dataset_id: int | None = None,
        query: str | None = None,
    ) -> int:
        """Add a filter segment (over a model or dataset of the source) and return its id.

        ``GET /sources/{id}/filter_segments`` lists them, as Census's v1 reference has it.
        """
        return self.workspace.catalog.add_segment(
            source_id, name, model_id=model_id, dataset_id=dataset_id, query=query
        )

    def add_destination(
        self,
        name: str,
        objects: Iterable[str],
        *,
        slug: str | None = None,
        service: str | None = None,
        activation_id: str | None = None,
        credentials: dict[str, Any] | None = None,
    ) -> int:
        """Add a destination connection with the objects ``objects`` (full names); returns its v1 id.

        ``service`` is the connection's ``type`` (``salesforce``; default: the slug's first word).
        ``activation_id`` is what API V2 calls it (default: from the slug and id).
        """
        return self.workspace.catalog.add_destination(
            name, objects, slug=slug, service=service, activation_id=activation_id, credentials=credentials
        )

    def seed_post_dbt_workspace(self, models: int = 30, syncs: int = 80) -> dict[str, Any]:
        """Fill the workspace as a team running dbt before Census has it; once per emulator.

        See :func:`airflow_provider_census.testing.seeds.seed_post_dbt_workspace` for what
        is made and the dict returned (ids by name and label, the paused ids, each sync).
        """
        from airflow_provider_census.testing.seeds import seed_post_dbt_workspace

        return seed_post_dbt_workspace(self.workspace, models=models, syncs=syncs)

    def script_sync(self, sync_id: int, script: RunScript) -> None:
        """Make the next runs of an existing sync (seeded ones too) follow ``script``."""
        self.workspace.script_sync(sync_id, script)

    def add_history(self, sync_id: int, durations: Iterable[float], *, every: float = 3600.0) -> list[int]:
        """Give a sync past completed runs that took ``durations`` seconds, oldest first; their ids.

        They ended one every ``every`` seconds, the newest ``every`` seconds ago, and ``GET
        /syncs/{id}/sync_runs`` lists them (newest first) with ``created_at`` and ``completed_at``
        that far apart, as a client reads the history of a sync. ``DurationModel(...).sample(20)``
        gives seeded durations.
        """
        return self.workspace.add_history(sync_id, durations, every)

    def script_durations(self, sync_id: int, model: DurationModel | None) -> None:
        """Time the runs of ``sync_id`` triggered from now on by durations drawn from ``model``.

        Each run then keeps its script's outcome and counts but advances in wall-clock time: queued
        for ``model.queued_seconds`` (at most half its duration), then working, ending its drawn
        duration after its trigger (:meth:`run_finished_at` tells when). None goes back to the
        sync's script alone. The draws are seeded and separate from :meth:`DurationModel.sample`.
        """
        self.workspace.script_durations(sync_id, model)

    def trigger(self, sync_id: int, full_sync: bool = False) -> int:
        """Start a run directly, as if someone pressed "Sync now" in the Census app.

        With :attr:`refuse_paused_triggers` a paused sync is refused here as over HTTP,
        by raising ``ApiError`` (422).
        """
        return self.workspace.trigger(sync_id, full_sync=full_sync)

    def rotate_token(self, version: str, new_token: str) -> None:
        """Replace the token ``version`` takes, as when a user revokes a key and makes another."""
        self.token_for(version)  # the version must be served
        if version == "v1":
            self.token = new_token
        else:
            self.pat = new_token
        if self._state is not None:
            self._state.token, self._state.pat = self.token, self.pat

    def set_faults(self, profile: FaultProfile | None) -> None:
        """Replace the random fault profile (None: no random faults, no added latency)."""
        self._faults.set_profile(profile)

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        path_prefix: PathPrefix = None,
        retry_after: float = 1.0,
        latency: float = 1.0,
    ) -> None:
        """Give the next ``count`` matching requests the fault ``kind``, for certain.

        ``path_prefix`` matches the full path or the path after ``/api/vN``: ``/sync_runs/``
        hits both versions, ``/api/v2/sync_runs/`` only V2; a tuple matches any of its prefixes
        (``faults.RUN_READS`` with ``method="GET"``: every read of one run, whichever route).
        """
        self._faults.fail_next(
            kind, count, method=method, path_prefix=path_prefix, retry_after=retry_after, latency=latency
        )

    def clear_faults(self) -> None:
        """Forget the fault profile and every pending :meth:`fail_next`."""
        self._faults.clear()

    # -- inspection ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in the order their answers were decided."""
        return self._log.all()

    def requests_for(
        self, method: str | None = None, path: str | None = None, *, api_version: str | None = None
    ) -> list[RecordedRequest]:
        """The requests with this method, path (full, or after ``/api/vN``) and API version."""
        return self._log.matching(method, path, api_version)

    def reads_of(self, run_id: int) -> list[RecordedRequest]:
        """The polls of one run: ``GET /sync_runs/{id}`` and ``GET /syncs/test_status?sync_run_id={id}``.

        With ``v2_routes="documented"`` a V2 ``GET /sync_runs/{id}`` reaches no route (it answers
        404 unless a fault was injected): such requests are not counted, as they read nothing.
        """
        by_id, by_status = f"/sync_runs/{run_id}", "/syncs/test_status"
        return [
            request
            for request in self.requests_for("GET")
            if (request.api_path == by_id and not self._unserved_read(request))
            or (request.api_path == by_status and request.query.get("sync_run_id") == str(run_id))
        ]

    def _unserved_read(self, request: RecordedRequest) -> bool:
        return self.v2_routes == "documented" and request.api_version == "v2" and request.fault is None

    def clear_requests(self) -> None:
        self._log.clear()

    def run(self, run_id: int) -> dict[str, Any]:
        """A run's JSON as ``GET /sync_runs/{id}`` would show it, without moving it on."""
        return self.workspace.run(run_id)

    def runs_of(self, sync_id: int) -> list[dict[str, Any]]:
        """Every run of a sync, newest first, as ``GET /syncs/{id}/sync_runs`` orders them.

        Runs are the same through both versions, so this holds whichever one started them.
        """
        return list(reversed(self.workspace.runs_of(sync_id)))

    def run_finished_at(self, run_id: int) -> float | None:
        """``time.monotonic()`` when the run ended (known ahead for time-driven runs)."""
        return self.workspace.run_finished_at(run_id)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the loop and close it, so no task is destroyed pending."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
