"""The in-memory Census workspace: its connections, syncs and sync runs.

Everything the HTTP handlers and the test-facing API read or change goes through one
:class:`Workspace`, guarded by one lock. Handlers run on the server's event loop and tests
call in from their own thread, so every public method takes the lock and holds it only
for quick in-memory work.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Iterable, Iterator
from datetime import timedelta

from airflow_provider_census.testing import validation
from airflow_provider_census.testing.catalog import JSON, Catalog
from airflow_provider_census.testing.errors import invalid, not_found
from airflow_provider_census.testing.history import DurationModel, past_run
from airflow_provider_census.testing.runs import Run, RunScript, iso, utcnow

_SEED_MAPPINGS: list[JSON] = [
    {"from": {"type": "column", "data": "EMAIL"}, "to": "external_id", "is_primary_identifier": True},
    {"from": {"type": "column", "data": "RANDOM_PROP"}, "to": "custom_field:random_prop"},
]
_SEED_SYNCS: list[JSON] = [
    {
        "id": 52,
        "label": "Airtable companies to Braze",
        "operation": "upsert",
        "source_attributes": {"connection_id": 4, "object": {"type": "model", "id": 18, "name": "airtable_test"}},
        "destination_attributes": {"connection_id": 15, "object": "user"},
        "created_at": "2021-10-20T02:44:00.000Z",
    },
    {
        "id": 60,
        "label": "Braze test users",
        "operation": "upsert",
        "source_attributes": {"connection_id": 4, "object": {"type": "model", "id": 15, "name": "braze_test"}},
        "destination_attributes": {"connection_id": 15, "object": "user"},
        "created_at": "2021-11-02T09:15:31.412Z",
    },
    {
        "id": 61,
        "label": "Braze test events",
        "operation": "append",
        "source_attributes": {"connection_id": 4, "object": {"type": "model", "id": 15, "name": "braze_test"}},
        "destination_attributes": {"connection_id": 15, "object": "event"},
        "created_at": "2021-11-02T09:20:05.027Z",
    },
]
_MANUAL = {"ui_tag": "Manual", "ui_detail": "Manually triggered by test@getcensus.com"}
_JSON_ARRAY_DETAIL = (
    'Please make sure the field "custom_field:Users" with value "jim" is formatted as a JSON Array. '
    "Don't hesitate to reach out to the Census Support Team if you need help with this."
)
_SEED_RUNS: list[JSON] = [
    {
        "id": 92, "sync_id": 52, "source_record_count": 1, "records_processed": 1, "records_updated": 1,
        "records_failed": 0, "records_invalid": 0, "created_at": "2021-10-20T02:44:35.381Z",
        "updated_at": "2021-10-20T02:45:55.949Z", "completed_at": "2021-10-20T02:45:55.947Z",
        "scheduled_execution_time": None, "error_code": None, "error_message": None, "error_detail": None,
        "status": "completed", "canceled": False, "full_sync": True, "sync_trigger_reason": _MANUAL,
    },
    {
        "id": 93, "sync_id": 52, "source_record_count": 1, "records_processed": None,
        "records_updated": None, "records_failed": None, "records_invalid": 0,
        "created_at": "2021-10-20T02:48:40.373Z", "updated_at": "2021-10-20T02:49:53.430Z",
        "completed_at": None, "scheduled_execution_time": None, "error_code": "JSON_ARRAY_ERROR",
        "error_message": "The array field being used does not appear to be valid JSON: " + _JSON_ARRAY_DETAIL,
        "error_detail": _JSON_ARRAY_DETAIL, "status": "failed", "current_step": "Running sync",
        "canceled": False, "full_sync": True, "sync_trigger_reason": _MANUAL,
    },
    {
        "id": 94, "sync_id": 52, "source_record_count": 1, "records_processed": 1, "records_updated": 1,
        "records_failed": 0, "records_invalid": 0, "created_at": "2021-10-20T02:51:07.546Z",
        "updated_at": "2021-10-20T02:52:29.236Z", "completed_at": "2021-10-20T02:52:29.234Z",
        "scheduled_execution_time": None, "error_code": None, "error_message": None, "error_detail": None,
        "status": "completed", "canceled": False, "full_sync": True, "sync_trigger_reason": _MANUAL,
    },
]  # fmt: skip
# New runs get ids above every seeded one, so ids stay global and increasing.
_FIRST_NEW_RUN_ID = 100
_SYNC_STATUS = {"completed": "Up to date", "failed": "Failing"}


class Workspace:
    """Syncs and runs of one emulated workspace, safe to use from several threads."""

    def __init__(self, *, sync_source_names: bool = True, refuse_paused_triggers: bool = False) -> None:
        self.catalog = Catalog()
        self.sync_source_names = sync_source_names
        self.refuse_paused_triggers = refuse_paused_triggers
        self._lock = threading.RLock()
        self._syncs: dict[int, JSON] = {}
        self._scripts: dict[int, RunScript] = {}
        self._runs: dict[int, Run] = {}
        self._durations: dict[int, tuple[DurationModel, Iterator[float]]] = {}
        self._run_ids = itertools.count(_FIRST_NEW_RUN_ID)
        self._seed()

    def _seed(self) -> None:
        for seed in _SEED_SYNCS:
            sync = self._blank_sync(seed["id"], seed["created_at"])
            sync.update({key: value for key, value in seed.items() if key != "created_at"})
            sync["mappings"] = [dict(mapping) for mapping in _SEED_MAPPINGS]
            self._syncs[sync["id"]] = sync
            self._scripts[sync["id"]] = RunScript()
        for payload in _SEED_RUNS:
            self._runs[payload["id"]] = Run.historical(payload, RunScript())

    @staticmethod
    def _blank_sync(sync_id: int, created_at: str) -> JSON:
        return {
            "id": sync_id,
            "label": None,
            "created_at": created_at,
            "updated_at": created_at,
            "operation": "upsert",
            "schedule_frequency": "never",
            "schedule_day": None,
            "schedule_hour": None,
            "schedule_minute": None,
            "paused": False,
            "source_attributes": {},
            "destination_attributes": {},
            "mappings": [],
        }

    # -- syncs ------------------------------------------------------------------------

    def _sync(self, sync_id: int) -> JSON:
        sync = self._syncs.get(sync_id)
        if sync is None:
            raise not_found("Sync", sync_id)
        return sync

    def _sync_view(self, sync: JSON) -> JSON:
        """A sync as the API shows it, with a ``status`` derived from its latest run.

        Without :attr:`sync_source_names` the source object of a model, segment or dataset
        shows only its ``type`` and ``id``, as a Census answer may: a client must then look
        the object up to learn its name. A table keeps its catalog, schema and name.
        """
        view = dict(sync)
        source = sync.get("source_attributes")
        if not self.sync_source_names and isinstance(source, dict) and isinstance(source.get("object"), dict):
            obj = source["object"]
            if obj.get("type") != "table":
                view["source_attributes"] = {**source, "object": {k: v for k, v in obj.items() if k != "name"}}
        runs = sorted(self._runs_of(sync["id"]), key=lambda run: run.id)
        shown = [run.to_api() for run in runs if run.phase() != "skipped"]
        if not shown:
            view["status"] = "Ready"
        elif shown[-1]["status"] in ("queued", "working"):
            view["status"] = "Working"
        else:
            view["status"] = _SYNC_STATUS.get(shown[-1]["status"], "Failing")
        return view

    def list_syncs(self) -> list[JSON]:
        with self._lock:
            return [self._sync_view(self._syncs[key]) for key in sorted(self._syncs)]

    def get_sync(self, sync_id: int) -> JSON:
        with self._lock:
            return self._sync_view(self._sync(sync_id))

    def stored_sync(self, sync_id: int) -> JSON:
        """What identifies a sync, as stored (source names included, whatever the API shows)."""
        with self._lock:
            sync = self._sync(sync_id)
            keys = ("id", "label", "paused", "operation", "source_attributes", "destination_attributes")
            return copy.deepcopy({key: sync[key] for key in keys})

    def create_sync(self, body: object, *, validate_only: bool = False) -> int | None:
        """Create a sync from a ``POST /syncs`` body; with ``validate_only`` only check it."""
        config = validation.new_sync(self.catalog, body)
        if validate_only:
            return None
        return self._insert_sync(config, RunScript())

    def _insert_sync(self, config: JSON, script: RunScript, sync_id: int | None = None) -> int:
        with self._lock:
            if sync_id is None:
                sync_id = max(self._syncs, default=0) + 1
            elif sync_id in self._syncs or sync_id < 1:
                raise invalid(f"sync id {sync_id} is taken or not a positive number")
            sync = self._blank_sync(sync_id, iso(utcnow()))
            sync.update(config)
            self._syncs[sync_id] = sync
            self._scripts[sync_id] = script
            return sync_id

    def update_sync(self, sync_id: int, body: object) -> JSON:
        with self._lock:
            sync = self._sync(sync_id)
            sync.update(validation.sync_changes(self.catalog, body))
            sync["updated_at"] = iso(utcnow())
            return self._sync_view(sync)

    def delete_sync(self, sync_id: int) -> None:
        with self._lock:
            self._sync(sync_id)
            del self._syncs[sync_id]

    def add_sync(
        self,
        script: RunScript,
        label: str | None = None,
        *,
        source: JSON | None = None,
        destination: JSON | None = None,
        paused: bool = False,
        operation: str = "upsert",
        mappings: list[JSON] | None = None,
        sync_id: int | None = None,
    ) -> int:
        """Create a ready-made sync that follows ``script``; see :meth:`CensusEmulator.add_sync`.

        Bad arguments raise :class:`ApiError` with the message ``POST /syncs`` would give.
        """
        destination_attrs = self._destination_spec(destination)
        config = validation.new_sync(
            self.catalog,
            {
                "label": label,
                "operation": operation,
                "paused": paused,
                "source_attributes": _source_spec(source),
                "destination_attributes": destination_attrs,
                "mappings": mappings if mappings is not None else self._default_mappings(destination_attrs),
            },
        )
        return self._insert_sync(config, script, sync_id)

    def _destination_spec(self, destination: JSON | None) -> JSON:
        """``destination`` with its connection as a v1 id; an activation id (V2's name) is accepted too."""
        if destination is None:
            return {"connection_id": 15, "object": "user"}
        attrs = dict(destination)
        key = attrs.get("connection_id")
        if isinstance(key, str) and self.catalog.destination(key) is None:
            found = self.catalog.destination_for_activation(key)
            if found is not None:
                attrs["connection_id"] = found["id"]
        return attrs

    def _default_mappings(self, destination: JSON) -> list[JSON]:
        """The seed's mappings for Braze users; elsewhere EMAIL to the object's first key field."""
        if destination == {"connection_id": 15, "object": "user"}:
            return [dict(mapping) for mapping in _SEED_MAPPINGS]
        found = self.catalog.destination(str(destination.get("connection_id")))
        fields: list[JSON] = []
        if found is not None:
            objects = self.catalog.objects(found["id"], with_fields=True)
            fields = next((obj["fields"] for obj in objects if obj["full_name"] == destination.get("object")), [])
        key = next((field["full_name"] for field in fields if field["can_be_upsert_key"]), "external_id")
        return [{"from": {"type": "column", "data": "EMAIL"}, "to": key, "is_primary_identifier": True}]

    def script_sync(self, sync_id: int, script: RunScript) -> None:
        """Make the next runs of ``sync_id`` follow ``script`` (runs already started keep theirs)."""
        with self._lock:
            self._sync(sync_id)
            self._scripts[sync_id] = script

    def add_history(self, sync_id: int, durations: Iterable[float], every: float = 3600.0) -> list[int]:
        """Give a sync past completed runs that took ``durations`` seconds (oldest first), one every
        ``every`` seconds, the newest ending ``every`` seconds ago; their ids, oldest first."""
        with self._lock:
            self._sync(sync_id)
            script = self._scripts[sync_id]
            taken = [float(duration) for duration in durations]
            if any(duration <= 0 for duration in taken):
                raise ValueError("the durations of past runs must be positive")
            now, ids = utcnow(), []
            for age, duration in zip(range(len(taken), 0, -1), taken, strict=True):
                created = now - timedelta(seconds=age * every + duration)
                run = Run.historical(past_run(next(self._run_ids), sync_id, created, duration, script), script)
                self._runs[run.id] = run
                ids.append(run.id)
            return ids

    def script_durations(self, sync_id: int, model: DurationModel | None) -> None:
        """Time the next runs of ``sync_id`` by durations drawn from ``model`` (None: by its script alone)."""
        with self._lock:
            self._sync(sync_id)
            if model is None:
                self._durations.pop(sync_id, None)
            else:
                self._durations[sync_id] = (model, model.future())

    def _next_script(self, sync_id: int) -> RunScript:
        """The script of the sync's next run: its own, timed by a drawn duration if it has a model."""
        script = self._scripts[sync_id]
        drawn = self._durations.get(sync_id)
        if drawn is None:
            return script
        model, durations = drawn
        return model.script(next(durations), script)

    # -- runs -------------------------------------------------------------------------

    def _runs_of(self, sync_id: int) -> list[Run]:
        return [run for run in self._runs.values() if run.sync_id == sync_id]

    def _run(self, run_id: int) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise not_found("Sync run", run_id)
        return run

    def trigger(self, sync_id: int, *, full_sync: bool) -> int:
        """Start a run; it is skipped at once if an earlier run of the sync is still going.

        A paused sync runs like any other unless :attr:`refuse_paused_triggers`; then it is
        refused with a 422 and starts no run. Both are the emulator's, not documented Census
        behaviour (Census documents ``paused`` only as "whether or not this sync should be
        paused"), so a client can be tested against either.
        """
        with self._lock:
            if self._sync(sync_id).get("paused") is True and self.refuse_paused_triggers:
                raise invalid(
                    f"Sync {sync_id} is paused, so it cannot be triggered; "
                    f"unpause it first (PATCH /syncs/{sync_id} with paused: false)"
                )
            busy = any(run.in_progress() for run in self._runs_of(sync_id))
            run = Run(next(self._run_ids), sync_id, self._next_script(sync_id), full_sync=full_sync)
            if busy:
                run.mark_skipped()
            self._runs[run.id] = run
            return run.id

    def poll_run(self, run_id: int) -> JSON:
        """The run as one ``GET /sync_runs/{id}`` sees it; this moves it one step on."""
        with self._lock:
            run = self._run(run_id)
            run.poll()
            return run.to_api()

    def run(self, run_id: int) -> JSON:
        """The run as it looks now, without moving it on."""
        with self._lock:
            return self._run(run_id).to_api()

    def runs_of(self, sync_id: int) -> list[JSON]:
        """All runs of a sync, oldest first (the server reverses for the default order)."""
        with self._lock:
            self._sync(sync_id)
            return [run.to_api() for run in sorted(self._runs_of(sync_id), key=lambda run: run.id)]

    def cancel_run(self, run_id: int) -> bool:
        """Cancel a run still going; a finished run is left as it is."""
        with self._lock:
            return self._run(run_id).cancel()

    def run_finished_at(self, run_id: int) -> float | None:
        with self._lock:
            return self._run(run_id).finished_at()


def _source_spec(source: JSON | None) -> JSON:
    """``source_attributes`` from :meth:`Workspace.add_sync`'s short form (or the full one).

    ``{"type": "model", "name": "dim_users"}`` and ``{"connection_id": 10, "type": "table",
    ...}`` name an object of a source (4 unless given); a spec that already has an
    ``object`` is taken as ``source_attributes`` as it is.
    """
    if source is None:
        return {"connection_id": 4, "object": {"type": "model", "id": 15}}
    keys = ("connection_id", "connection_slug")
    connection = {key: source[key] for key in keys if key in source} or {"connection_id": 4}
    if "object" in source:
        return {**source, **connection}
    return {**connection, "object": {key: value for key, value in source.items() if key not in keys}}
