"""CensusSyncRunFinishedTrigger in Airflow's own triggerer: a restart keeps what the watcher fired.

Airflow writes the rows of a DAG file's watched asset (asset, trigger, watcher) as its DAG
processor does; then its triggerer runs the watcher against the emulator: the supervisor
(which stores asset events and answers the watcher's Variable and asset state store requests)
in a thread of this process, the runner (which runs the trigger) in the process it forks.
A run fires one asset event; once the mark covering it is stored, the runner is killed
outright (SIGKILL: nothing is cleaned up); a run ends while no runner runs; a new runner of
the same triggerer job builds a new trigger instance from the same kwargs, fires that run
and never the first again.

Where the mark is kept is Airflow's choice per line: a Variable on 3.0-3.2 (written
``MARK_DELAY_SECONDS`` after the events; no delay here, the test waits for the mark), the
asset state store on 3.3+ (written once Airflow confirmed it stored the events), a Variable
again on 3.3+ for a trigger that several assets share.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.triggers import sync_events, sync_watch
from airflow_provider_census.triggers.sync_events import WatchMark
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

pytestmark = [
    pytest.mark.smoke,
    pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="AssetWatcher is Airflow 3"),
]

BUNDLE = "census-watch"
GIVE_UP_SECONDS = 60.0
# Airflow parses a file only if it names both "airflow" and "dag".
DAG_FILE = """\
# An Airflow DAG file written by tests/test_sync_events_triggerer.py.
from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_provider_census.triggers.sync_events import CensusSyncRunFinishedTrigger

watch = CensusSyncRunFinishedTrigger({sync_id}, census_conn_id={conn_id!r}, poll_interval=0.2)
assets = [Asset(name, watchers=[AssetWatcher(name=name, trigger=watch)]) for name in {assets!r}]
# A paused DAG's assets are not watched.
with DAG({dag_id!r}, schedule=assets, catchup=False, is_paused_upon_creation=False):
    pass
"""


@pytest.fixture(params=["v2"])
def census_api_version(request: pytest.FixtureRequest) -> str:
    """One API version: what the triggerer does with the watcher does not depend on it (both: test_sync_events.py)."""
    return str(request.param)


@pytest.fixture
def census_conn_id() -> str:
    """A connection of each test's own: each test's emulator has the same sync ids, and the database lasts the
    session (and outlasts it where AIRFLOW_HOME is kept: the names are new in every session)."""
    return f"census_watch_{SESSION}_{next(CONNECTIONS)}"


CONNECTIONS = itertools.count(1)
SESSION = uuid.uuid4().hex[:8]


def write_to_db(folder: Path) -> None:
    """Parse the folder and write its DAGs, assets and watchers, as Airflow's DAG processor does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:
        import airflow.models.dagbag as dagbag

        DagBag, sync_bag_to_db = dagbag.DagBag, getattr(dagbag, "sync_bag_to_db", None)  # None: 3.0
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    if sync_bag_to_db is None:
        bag.sync_to_db(BUNDLE, None)
    else:
        sync_bag_to_db(bag, BUNDLE, None)


def _fresh_asgiref_thread_in_a_forked_child() -> None:
    """Give a child forked from this process a thread-sensitive executor of its own, as a new process has.

    The triggerer forks its runner from here, where other tests may have run asgiref's
    ``sync_to_async``: its one thread-sensitive executor then has a worker thread, which a
    forked child does not get, so Airflow's own ``sync_to_async`` calls in the runner (reading
    a connection) would wait forever. ``airflow triggerer`` forks before any of that.
    """
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


os.register_at_fork(after_in_child=_fresh_asgiref_thread_in_a_forked_child)


class Triggerer:
    """Airflow's triggerer for one job: its supervisor loop in a thread, its runner in a forked process."""

    def __init__(self, job: Any) -> None:
        from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor

        self.supervisor = TriggerRunnerSupervisor.start(job=job, capacity=4)
        self.thread = threading.Thread(target=self.supervisor.run, name="triggerer-supervisor", daemon=True)
        self.thread.start()

    def kill(self) -> None:
        """Kill the runner outright, as a crash does; the supervisor loop then finds it dead and ends."""
        if self.thread.is_alive():
            os.kill(self.supervisor.pid, signal.SIGKILL)
        self.thread.join(GIVE_UP_SECONDS)
        assert not self.thread.is_alive(), "the supervisor loop did not end"


@pytest.fixture
def triggerers(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Triggerer]]:
    """Start a triggerer of one job, again after a kill; any left running is killed at the end."""
    from airflow.jobs.job import Job
    from airflow.jobs.triggerer_job_runner import TriggererJobRunner

    monkeypatch.setattr(sync_events, "MARK_DELAY_SECONDS", 0.0)  # the forked runner inherits it
    job = Job()
    TriggererJobRunner(job=job, capacity=4)
    job.prepare_for_execution()
    started: list[Triggerer] = []

    def start() -> Triggerer:
        started.append(Triggerer(job))
        return started[-1]

    yield start
    for triggerer in started:
        triggerer.kill()
    job.complete_execution()


class Watched:
    """The assets of a DAG file that one trigger on a new sync watches, in Airflow's database."""

    def __init__(self, emulator: CensusEmulator, conn_id: str, folder: Path, assets: int) -> None:
        self.sync_id = emulator.add_sync(RunScript(queued_polls=0, working_polls=0))
        self.assets = [f"{conn_id}_sync_{self.sync_id}_finished_{number}" for number in range(assets)]
        self.key = f"census_sync_watch:{conn_id}:{self.sync_id}:succeeded"
        self.folder = folder
        self.dag_id = f"after_{conn_id}_sync_{self.sync_id}"
        source = DAG_FILE.format(sync_id=self.sync_id, conn_id=conn_id, assets=self.assets, dag_id=self.dag_id)
        (folder / f"{self.dag_id}.py").write_text(source)
        write_to_db(folder)
        write_to_db(folder)  # the first write activates the assets; Airflow links watchers of active assets only

    def unwatch(self) -> None:
        """Pause the DAG, as a user does: Airflow then drops its watchers, so no later triggerer runs them."""
        from airflow.models.dag import DagModel
        from airflow.models.trigger import Trigger
        from airflow.utils.session import create_session
        from sqlalchemy import update

        with create_session() as session:
            session.execute(update(DagModel).where(DagModel.dag_id == self.dag_id).values(is_paused=True))
        write_to_db(self.folder)
        Trigger.clean_unused()

    def fired(self) -> list[list[int]]:
        """Per asset, the sync run of each of its events, in the order Airflow stored them."""
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return [
                [
                    extra["payload"]["sync_run_id"]
                    for extra in session.scalars(
                        select(AssetEvent.extra)
                        .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                        .where(AssetModel.name == asset)
                        .order_by(AssetEvent.id)
                    )
                ]
                for asset in self.assets
            ]

    def stored_text(self) -> str | None:
        """The mark where Airflow keeps it: the asset's state store (3.3+, one asset), else the Variable."""
        from airflow.models.asset import AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            if AIRFLOW_V_3_3_PLUS and len(self.assets) == 1:
                from airflow.models.asset_state_store import AssetStateStoreModel

                query = (
                    select(AssetStateStoreModel.value)
                    .join(AssetModel, AssetStateStoreModel.asset_id == AssetModel.id)
                    .where(AssetModel.name == self.assets[0], AssetStateStoreModel.key == self.key)
                )
                return session.scalars(query).one_or_none()
            from airflow.models.variable import Variable

            variable = session.scalars(select(Variable).where(Variable.key == self.key)).one_or_none()
            return None if variable is None else str(variable.val)

    def covers(self, run_id: int) -> bool:
        text = self.stored_text()
        return text is not None and WatchMark.from_json(json.loads(text)).covers(run_id)


@pytest.fixture
def watched(
    request: pytest.FixtureRequest,
    census_conn: CensusEmulator,
    census_conn_id: str,
    tmp_path: Path,
    airflow_db: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Watched]:
    """The assets (as many as the test's ``assets`` parameter) one trigger watches, unwatched at the end."""
    from tests.airflow_runs import dag_bundle_folder

    watched = Watched(census_conn, census_conn_id, dag_bundle_folder(tmp_path, BUNDLE, monkeypatch), request.param)
    yield watched
    watched.unwatch()


class Waits:
    """Waits for conditions that fail at once, with its error, when the watcher fails a poll.

    The watcher's log goes to the triggerer's output; what it notes of each failure is also
    written to a file here, by a patch the forked runner inherits. No fault is injected, so
    any failure is a real one.
    """

    def __init__(self, failures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failures = failures
        note_failure = sync_watch.SyncWatch._note_failure

        def noted(watch: Any, exc: BaseException) -> None:
            with failures.open("a") as written:
                written.write(f"{type(exc).__name__}: {exc}\n")
            note_failure(watch, exc)

        monkeypatch.setattr(sync_watch.SyncWatch, "_note_failure", noted)

    def __call__(self, what: str, condition: Callable[[], bool]) -> None:
        give_up_at = time.monotonic() + GIVE_UP_SECONDS
        while not condition():
            noted = self.failures.read_text() if self.failures.exists() else ""
            assert not noted, f"waiting for {what}, the watcher failed a poll: {noted.splitlines()[0]}"
            assert time.monotonic() < give_up_at, f"waited in vain for {what}"
            time.sleep(0.1)


def finished_run(emulator: CensusEmulator, sync_id: int) -> int:
    run_id = emulator.trigger(sync_id)
    while emulator.run(run_id)["status"] in ("queued", "working"):
        emulator.workspace.poll_run(run_id)
    return run_id


@pytest.mark.parametrize(
    "watched",
    [
        pytest.param(1, id="one-asset"),
        pytest.param(
            2,
            id="two-assets",
            marks=pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the same Variable as one asset before 3.3"),
        ),
    ],
    indirect=True,
)
def test_a_restarted_watcher_fires_what_ended_while_down_and_nothing_twice(
    census_conn: CensusEmulator,
    watched: Watched,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    triggerers: Callable[[], Triggerer],
) -> None:
    assets = len(watched.assets)
    wait = Waits(tmp_path / "failed-polls.txt", monkeypatch)
    listing = f"/syncs/{watched.sync_id}/sync_runs"
    first = triggerers()
    wait("the watch to begin", lambda: watched.stored_text() is not None)
    fired_before = finished_run(census_conn, watched.sync_id)
    wait("the asset events of the first run", lambda: watched.fired() == [[fired_before]] * assets)
    wait("the mark to cover it", lambda: watched.covers(fired_before))
    first.kill()

    while_down = finished_run(census_conn, watched.sync_id)
    second = triggerers()
    wait("the run that ended while down", lambda: all(len(runs) >= 2 for runs in watched.fired()))
    wait("the mark to cover it", lambda: watched.covers(while_down))
    polled = len(census_conn.requests_for("GET", listing))
    wait("a few more polls", lambda: len(census_conn.requests_for("GET", listing)) >= polled + 3)
    second.kill()
    assert watched.fired() == [[fired_before, while_down]] * assets
    assert census_conn.token_for("v2") not in f"{watched.key} {watched.stored_text()}"
