"""Every rule of a wait, through every driver that waits: one table of rules x drivers.

Each cell is a real run against the bundled emulator (real HTTP on 127.0.0.1) and asserts the
outcome its rule demands: the task's state and exception, and the emulator's request log
(cancel requests, trigger POSTs, failed reads). Only the provider's public surface is used:
the operators', the sensor's and the triggers' constructors, ``execute``, the method a
``TaskDeferred`` names, ``serialize``, ``run``, ``on_kill``, and Airflow's own ``dag.test()``.

Drivers (columns):

- ``trigger``: the operator's deferral run as Airflow runs it, by hand: ``execute`` until it
  defers, the trigger rebuilt from ``serialize()`` and run as the triggerer does (``async for
  event in trigger.run()``), the event through JSON into the method the deferral names, on a
  fresh copy of the task (a resumed task is a new process);
- ``op-worker`` / ``op-deferred``: ``CensusTriggerSyncOperator`` through ``dag.test()``, waiting
  in the worker / deferred (``dag.test()`` runs the trigger in-process);
- ``sensor-poke`` / ``sensor-reschedule`` / ``sensor-deferred``: ``CensusSyncRunSensor`` through
  ``dag.test()`` on a run started outside Airflow;
- ``syncs-worker`` / ``syncs-deferred``: ``CensusTriggerSyncsOperator`` through ``dag.test()``;
- ``watcher``: ``CensusSyncRunFinishedTrigger`` as Airflow 3.3's triggerer runs an
  ``AssetWatcher`` (a shared stream in ack mode, ``tests/test_sync_events.py``'s harness).

Rules (rows) and what each demands:

- ``wait-deadline`` (``timeout``): the wait ends with a timeout error; the run goes on.
- ``cancel-deadline`` (``execution_timeout``): a task that owns the run cancels it before
  Airflow's kill, and says so; a sensor never cancels (Airflow's own timeout ends it).
- ``skip-fail`` / ``skip-succeed`` / ``skip-wait`` (``on_skipped``): fail naming the skip /
  succeed / the operators wait for the blocking run (never canceling it), then trigger ONE
  fresh run whose end decides; the sensor follows the earlier run, which decides.
- ``failures-borne``: fewer than ``max_poll_failures`` failed polls in a row are borne.
- ``failures-limit``: ``max_poll_failures`` failed polls in a row end the wait, naming them.
  A poll is one request in a trigger's loop, and one hook call (retried within) in a poke.
- ``failures-from-first-look``: the same when Census fails from the task's very first read of
  the run on (the look before waiting, made through the hook, which retries within it).
- ``failure-not-transient``: a 401 on the run ends the wait at once (one request, no retry).
- ``unknown-state``: a run in a state nobody knows is never success: after
  ``unknown_state_timeout`` the task fails naming the state.
- ``unknown-then-known``: a known state before that timeout and the wait goes on normally.
- ``kill``: killing the task cancels its own run (operators, ``cancel_on_kill=True``); a sensor
  or a watcher never cancels the run it watches.
- ``kill-keep``: with ``cancel_on_kill=False`` a kill leaves the run going.
- ``kill-blocked``: a kill while the task waits for the run that made Census skip its own
  (``on_skipped="wait"``) never cancels that run.

How a kill is made: in the worker (``op-worker``, ``sensor-poke``, ``syncs-worker``) this
process gets SIGTERM while ``dag.test()`` runs the task, as Airflow's supervisor kills a task
process: Airflow's task runner calls ``on_kill`` (Airflow 2.11 then fails the task, 3.3 lets the
in-process task run on; a kill that cancels shows in the run either way). Deferred
(``trigger``, ``sensor-deferred``, ``syncs-deferred``), as Airflow 3.3's triggerer does: the
trigger's task is cancelled mid-wait, then ``await trigger.on_kill()``
(``tests/test_trigger.py``'s way).

The table, checked against the data that drives the tests (``ok``: run, and the rule's
outcome asserted; ``obs``: the rule does not apply to the driver, and what it does instead is
asserted (:data:`OBSERVED`); ``n/a``: nothing to run (:data:`NOT_APPLICABLE`); ``3.3``: on
Airflow 3.3 only (:data:`ONLY_ON_3_3`); ``x<3.3``: before Airflow 3.3 the provider cannot keep
the rule there (:data:`DIVERGES_BEFORE_3_3`, ``xfail(strict=True)`` on those lines))::

    rule                     trigger op-w  op-d  s-poke s-resch s-def   syncs-w syncs-d watcher
    wait-deadline            ok      ok    ok    ok     ok      ok      ok      ok      n/a
    cancel-deadline          ok      ok    ok    obs    n/a     obs     ok      ok      n/a
    skip-fail                ok      ok    ok    ok     ok      ok      ok      ok      n/a
    skip-succeed             ok      ok    ok    ok     ok      ok      ok      ok      n/a
    skip-wait                ok      ok    ok    ok     ok      ok      ok      ok      n/a
    failures-borne           ok      ok    ok    ok     ok      ok      ok      ok      3.3
    failures-limit           ok      ok    ok    ok     x<3.3   ok      ok      ok      3.3/obs
    failures-from-first-look ok      ok    ok    ok     x<3.3   ok      ok      ok      n/a
    failure-not-transient    ok      ok    ok    ok     ok      ok      ok      ok      3.3/obs
    unknown-state            ok      ok    ok    ok     x<3.3   ok      ok      ok      3.3/obs
    unknown-then-known       ok      ok    ok    ok     ok      ok      ok      ok      3.3
    kill                     3.3     ok    n/a   obs    n/a     3.3/obs ok      3.3     3.3/obs
    kill-keep                3.3     ok    n/a   n/a    n/a     n/a     ok      3.3     n/a
    kill-blocked             3.3     ok    n/a   n/a    n/a     n/a     ok      3.3     n/a

The ``trigger`` column also runs on every Census a core-flow test meets (the ``v2_routes``
mark: v1, V2 as assumed, V2 as documented); the other columns on V2, whose routes the driver
does not change (``dag.test()`` costs about a second a cell).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred

from airflow_provider_census.api.errors import (
    CensusAuthenticationError,
    CensusPollingError,
    CensusRunFailedError,
    CensusRunSkippedError,
    CensusRunTimeoutError,
    CensusRunUnknownStateError,
    CensusSyncRunsFailedError,
)
from airflow_provider_census.operators import base as operators_base
from airflow_provider_census.operators.census import CensusTriggerSyncOperator, CensusTriggerSyncsOperator
from airflow_provider_census.sensors.census import CensusSyncRunSensor
from airflow_provider_census.testing import CensusEmulator, RecordedRequest, RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_3_PLUS
from tests.airflow_runs import FAILURES, dag_bundle_folder, one_try_dag, parse_built_dag, task_states, xcom
from tests.task_context import FakeTaskInstance, context_for, only_event

POLL = 0.05
"""Every driver's poll (or poke) interval."""
WAIT_TIMEOUT = 0.3
"""``timeout`` of the wait-deadline row."""
EXECUTION_TIMEOUT = 60.0
"""``execution_timeout`` of the cancel-deadline row for a task that owns the run: Airflow's kill comes this
long after the task started, and :data:`CANCEL_AFTER` moves the cancel deadline to just after the start."""
CANCEL_AFTER = 0.5
"""When the cell's cancel deadline falls, in seconds after the task started, instead of a tenth of
``execution_timeout`` before the kill (:func:`~airflow_provider_census.operators.base.execution_timeout_margin`,
checked on its own in ``tests/test_operator.py``). The cancel then comes long before Airflow's kill however
slow the machine: with the shipped margin only a short timeout keeps the cell quick, and a cancel due 0.2 s
before a kill 2 s away raced the machine's speed."""
SENSOR_EXECUTION_TIMEOUT = 1.0
"""``execution_timeout`` of a sensor's cancel-deadline cell: Airflow's kill (poking) ends the wait at it."""
SENSOR_OWN_TIMEOUT = 1.5
"""``timeout`` of a sensor's cancel-deadline cell: its own timeout ends the wait, deferred (no kill there)."""
SENSOR_TIMEOUT = 20.0
"""A sensor's ``timeout`` where the rule under test must end the wait first: a hang becomes a failure."""
RUNS_ON_TIMEOUT = 5.0
"""``timeout`` where, the rule being that nothing happens (no cancel), the wait must still end: after a
kill (Airflow 3.3 lets an in-process task run on). The kill must come first, once the run was read twice:
far sooner than this even on a busy machine."""
RULE_FIRST_TIMEOUT = 10.0
"""``timeout`` where a rule must end the wait well before it (a sensor that breaks the rule then times out):
a rescheduled sensor's few pokes, each a try of its own, take over a second on a busy machine."""
BROKEN_RULE_TIMEOUT = 3.0
"""``timeout`` of a cell where the provider breaks the rule on this Airflow (``xfail``): it is what ends the wait."""
MAX_FAILURES = 3
UNKNOWN_TIMEOUT = 0.3
RETRY_AFTER = 0.01
"""The ``Retry-After`` of the injected 429s: a poll's own retries (the sensor's poke) come at once."""
GIVE_UP_SECONDS = 30.0
TASK_ID = "census"
BUNDLE = "census-rules"
PASSES = "latency"
"""A fault that answers normally (with no delay here): it lets a run's first read through, so
that the faults after it hit the wait, not the task's first look."""


@dataclass(frozen=True)
class Driver:
    """A way a wait for a Census run is carried out."""

    name: str
    short: str
    """Its column in the module's table."""
    task: str
    """``operator``, ``sensor``, ``syncs`` (the many-syncs operator) or ``watcher``."""
    deferrable: bool = False
    mode: str = "poke"
    in_dag: bool = True
    """Run through ``dag.test()``; else by hand, as the triggerer and the worker do."""

    @property
    def owns_run(self) -> bool:
        return self.task in ("operator", "syncs")

    requests_per_poll = 1
    """Requests one failed look makes, in every driver: the first look before a wait, each poll of
    the wait (trigger or worker), each poke; the rules of the wait, not the hook, retry."""


DRIVERS = [
    Driver("trigger", "trigger", "operator", deferrable=True, in_dag=False),
    Driver("op-worker", "op-w", "operator"),
    Driver("op-deferred", "op-d", "operator", deferrable=True),
    Driver("sensor-poke", "s-poke", "sensor"),
    Driver("sensor-reschedule", "s-resch", "sensor", mode="reschedule"),
    Driver("sensor-deferred", "s-def", "sensor", deferrable=True),
    Driver("syncs-worker", "syncs-w", "syncs"),
    Driver("syncs-deferred", "syncs-d", "syncs", deferrable=True),
    Driver("watcher", "watcher", "watcher", in_dag=False),
]
BY_NAME = {driver.name: driver for driver in DRIVERS}


@dataclass
class Outcome:
    """How a driver's run of the task ended: ``success``, ``failed`` or ``killed`` (a trigger killed mid-wait)."""

    state: str
    error: BaseException | None = None
    value: Any = None
    summary: Any = None
    """XCom ``sync_run`` (``sync_runs`` of the many-syncs operator)."""


# -- running a task: through dag.test(), or by hand as Airflow does --------------------------------

TASK_CLASSES: dict[str, type] = {
    "operator": CensusTriggerSyncOperator,
    "sensor": CensusSyncRunSensor,
    "syncs": CensusTriggerSyncsOperator,
}


def task_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    arguments = dict(kwargs)
    if "execution_timeout" in arguments:
        arguments["execution_timeout"] = timedelta(seconds=arguments["execution_timeout"])
    return arguments


def build_rule_dag(dag_id: str, *, task: str, kwargs: dict[str, Any]) -> Any:
    """The DAG the DAG file builds: the one task under test, never retried."""
    with one_try_dag(dag_id) as dag:
        TASK_CLASSES[task](task_id=TASK_ID, **task_arguments(kwargs))
    return dag


def rebuilt(trigger: Any) -> Any:
    """The trigger as the triggerer makes it: its class imported by path, called with its kwargs after JSON."""
    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**json.loads(json.dumps(kwargs)))


def deferral(make_task: Callable[[], Any], context: dict[str, Any], stop_at: Callable[[Any], bool]) -> Any:
    """Run the task as Airflow does until it defers to a trigger ``stop_at`` picks; that ``TaskDeferred``, or
    the task's result if it ended first (``stop_at`` then never picked one)."""
    try:
        return make_task().execute(context)
    except TaskDeferred as deferred:
        pending = deferred
    while not stop_at(pending.trigger):
        assert pending.timeout is None, "tasks defer without a timeout and let the trigger decide"
        event = json.loads(json.dumps(asyncio.run(only_event(rebuilt(pending.trigger)))))
        resume = getattr(make_task(), pending.method_name)  # a resumed task is a fresh copy, in a new process
        try:
            return resume(context, event, **json.loads(json.dumps(pending.kwargs or {})))
        except TaskDeferred as again:
            pending = again
    return pending


async def wait_until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds; a safety net against hanging, not a timing assertion."""
    give_up_at = time.monotonic() + GIVE_UP_SECONDS
    while not condition():
        if time.monotonic() > give_up_at:
            raise AssertionError("the condition never came true")
        await asyncio.sleep(0.01)


async def kill_in_triggerer(trigger: Any, condition: Callable[[], bool]) -> None:
    """Kill a deferred task as Airflow 3.3's triggerer does: cancel the trigger's task mid-wait, then ``on_kill``."""
    waiting = asyncio.create_task(only_event(trigger))
    await wait_until(condition)
    assert not waiting.done(), "the trigger ended before the kill"
    waiting.cancel()
    with suppress(asyncio.CancelledError):
        await waiting
    await trigger.on_kill()


def in_the_metadata_database(frame: FrameType | None) -> bool:
    """Whether the code at ``frame`` runs inside a call to SQLAlchemy (a query of the metadata database)."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("sqlalchemy"):
            return True
        frame = frame.f_back
    return False


@contextmanager
def sigterm_when(condition: Callable[[], bool]) -> Iterator[None]:
    """Send this process's main thread SIGTERM once ``condition`` holds, as Airflow's supervisor kills a task.

    Airflow's task runner handles it with the task's ``on_kill``. Until it installs its handler,
    a SIGTERM would be caught here, and fail the test, instead of ending pytest.

    The kill reaches the task's handler outside the metadata database (in its wait: a request to
    Census, its sleep between polls, its own code), never inside a SQLAlchemy call such as the
    XCom a sensor pushes at every poke: a SIGTERM that lands there is let pass and sent again
    10 ms later. Airflow 2.11's handler raises ``AirflowTaskTerminated`` (a ``BaseException``)
    where the signal lands; inside a query, SQLAlchemy drops the SQLite connection while the
    statement it ran is still referenced by the exception's traceback, so the connection keeps
    its lock on the database file, and Airflow's own write of the task's failure then waits out
    SQLite's busy timeout and fails the cell with "database is locked" (a task process of its
    own would lose that lock with the process; here the test shares it).
    """
    stray: list[int] = []
    install = signal.signal
    delivered, done = threading.Event(), threading.Event()

    def caught_here(signum: int, frame: FrameType | None) -> None:
        stray.append(signum)
        delivered.set()

    def guarded(handler: Callable[[int, FrameType | None], Any]) -> Callable[[int, FrameType | None], Any]:
        def on_sigterm(signum: int, frame: FrameType | None) -> Any:
            if in_the_metadata_database(frame):
                return None  # the killer sends it again
            delivered.set()
            return handler(signum, frame)

        return on_sigterm

    def installing(signum: int, handler: Any) -> Any:
        return install(signum, guarded(handler) if signum == signal.SIGTERM and callable(handler) else handler)

    previous = install(signal.SIGTERM, caught_here)
    main = threading.main_thread().ident
    assert main is not None

    def kill() -> None:
        give_up_at = time.monotonic() + GIVE_UP_SECONDS
        while not done.is_set() and not delivered.is_set() and time.monotonic() < give_up_at:
            if condition():
                signal.pthread_kill(main, signal.SIGTERM)
            time.sleep(0.01)

    killer = threading.Thread(target=kill, name="sigterm-once", daemon=True)
    signal.signal = installing  # type: ignore[assignment]
    killer.start()
    try:
        yield
    finally:
        done.set()
        killer.join()
        signal.signal = install
        install(signal.SIGTERM, previous)
    assert delivered.is_set(), "the task ended before it was killed"
    assert not stray, "the kill came while no task ran"


ESCAPES_DAG_TEST = ("AirflowTaskTerminated", "AirflowTaskTimeout")
"""Airflow 2.11's kill and timeout exceptions derive from BaseException: its ``dag.test()`` records the task's
failure (and calls its failure callback), then lets them out instead of finishing the DAG run."""


def dag_test(dag: Any) -> Any:
    """``dag.test()``; the DAG run, also where Airflow 2.11 let a killed or timed-out task's exception out."""
    try:
        return dag.test()
    except BaseException as exc:
        if type(exc).__name__ not in ESCAPES_DAG_TEST:
            raise
    from airflow.models.dagrun import DagRun

    return max(DagRun.find(dag_id=dag.dag_id), key=lambda run: run.id)


class Cell:
    """One cell of the table: a driver, the emulator, and where its DAG file goes."""

    def __init__(self, rule: str, driver: Driver, census: CensusEmulator, request: pytest.FixtureRequest) -> None:
        self.rule = rule
        self.driver = driver
        self.census = census
        self.request = request

    @property
    def rule_first_timeout(self) -> float:
        """:data:`RULE_FIRST_TIMEOUT`; where this Airflow cannot keep the rule (an xfail), :data:`BROKEN_RULE_TIMEOUT`:
        there the wait ends only at the timeout, and a long one would only make the expected failure slow."""
        if not AIRFLOW_V_3_3_PLUS and (self.rule, self.driver.name) in DIVERGES_BEFORE_3_3:
            return BROKEN_RULE_TIMEOUT
        return RULE_FIRST_TIMEOUT

    @property
    def task(self) -> str:
        return self.driver.task

    def task_kwargs(self, sync_id: int, run_id: int | None, rule_kwargs: dict[str, Any]) -> dict[str, Any]:
        driver = self.driver
        base: dict[str, Any]
        if driver.task == "operator":
            base = {"sync_id": sync_id, "poll_interval": POLL}
        elif driver.task == "syncs":
            base = {"select": [str(sync_id)], "poll_interval": POLL}
        else:
            assert run_id is not None, "a sensor watches a run started outside Airflow"
            base = {"sync_run_id": run_id, "sync_id": sync_id, "poke_interval": POLL, "mode": driver.mode}
            base["timeout"] = SENSOR_TIMEOUT
        return {**base, "deferrable": driver.deferrable, **rule_kwargs}

    def run(
        self,
        sync_id: int,
        run_id: int | None = None,
        *,
        kill_when: Callable[[], bool] | None = None,
        kill_at: Callable[[Any], bool] = lambda trigger: True,
        **rule_kwargs: Any,
    ) -> Outcome:
        """Run the task of this cell's driver to its end (or kill it once ``kill_when`` holds)."""
        kwargs = self.task_kwargs(sync_id, run_id, rule_kwargs)
        if kill_when is not None and self.driver.deferrable:
            return self._kill_deferred(kwargs, kill_when, kill_at)
        if not self.driver.in_dag:
            return self._run_by_hand(kwargs)
        return self._run_in_dag(kwargs, kill_when)

    def _make_task(self, kwargs: dict[str, Any]) -> Callable[[], Any]:
        task_class, arguments = TASK_CLASSES[self.task], task_arguments(kwargs)
        return lambda: task_class(task_id=TASK_ID, **arguments)

    def _run_by_hand(self, kwargs: dict[str, Any]) -> Outcome:
        ti = FakeTaskInstance()
        try:
            value = deferral(self._make_task(kwargs), context_for(ti), stop_at=lambda trigger: False)
        except Exception as exc:
            return Outcome("failed", exc, summary=pushed(ti, self.summary_key))
        return Outcome("success", value=value, summary=pushed(ti, self.summary_key))

    def _kill_deferred(
        self, kwargs: dict[str, Any], condition: Callable[[], bool], kill_at: Callable[[Any], bool]
    ) -> Outcome:
        pending = deferral(self._make_task(kwargs), context_for(), stop_at=kill_at)
        assert isinstance(pending, TaskDeferred), f"the task ended without deferring to the trigger to kill: {pending}"
        asyncio.run(kill_in_triggerer(rebuilt(pending.trigger), condition))
        return Outcome("killed")

    def _run_in_dag(self, kwargs: dict[str, Any], kill_when: Callable[[], bool] | None) -> Outcome:
        self.request.getfixturevalue("airflow_db")
        folder = dag_bundle_folder(self.request.getfixturevalue("tmp_path"), BUNDLE, self.monkeypatch)
        dag_id = "rules_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", self.request.node.name).strip("_")
        dag = parse_built_dag(folder, build_rule_dag, dag_id, task=self.task, kwargs=kwargs)
        FAILURES.clear()
        if kill_when is None:
            dag_run = dag_test(dag)
        else:
            with sigterm_when(kill_when):
                dag_run = dag_test(dag)
        state = task_states(dag_run)[(TASK_ID, -1)]
        summary = xcom(dag_run, TASK_ID, key=self.summary_key)
        if state == "success":
            return Outcome("success", value=xcom(dag_run, TASK_ID), summary=summary)
        assert state == "failed", state
        return Outcome("failed", FAILURES.get(TASK_ID), summary=summary)

    @property
    def monkeypatch(self) -> pytest.MonkeyPatch:
        monkeypatch: pytest.MonkeyPatch = self.request.getfixturevalue("monkeypatch")
        return monkeypatch

    @property
    def summary_key(self) -> str:
        return "sync_runs" if self.task == "syncs" else "sync_run"

    # -- the emulator's side ---------------------------------------------------------------------

    def sync(self, script: RunScript) -> int:
        return self.census.add_sync(script)

    def outside_run(self, sync_id: int) -> int | None:
        """A run started outside Airflow (the app's "Sync now") for a sensor to watch; None for other tasks."""
        return self.census.trigger(sync_id) if self.task == "sensor" else None

    def only_run(self, sync_id: int) -> dict[str, Any]:
        (run,) = self.census.runs_of(sync_id)
        return run

    def trigger_posts(self, sync_id: int) -> list[RecordedRequest]:
        return self.census.requests_for("POST", f"/syncs/{sync_id}/trigger")

    def cancels(self, run_id: int) -> list[RecordedRequest]:
        return self.census.requests_for("POST", f"/sync_runs/{run_id}/cancel")

    def all_cancels(self) -> list[RecordedRequest]:
        return [request for request in self.census.requests if request.api_path.endswith("/cancel")]

    @property
    def read_prefix(self) -> str:
        """Where a run is read: by id, or by V2's documented test_status where that is all there is."""
        return "/syncs/test_status" if self.census.v2_routes == "documented" else "/sync_runs/"

    def fail_reads_after_the_first(self, kind: str, count: int) -> None:
        """Let a run's first read through (the task's first look), then fail the next ``count`` reads with ``kind``."""
        self.census.fail_next(PASSES, count=1, method="GET", path_prefix=self.read_prefix, latency=0.0)
        self.census.fail_next(kind, count=count, method="GET", path_prefix=self.read_prefix, retry_after=RETRY_AFTER)

    def failed_reads(self, run_id: int) -> list[str | None]:
        return [request.fault for request in self.census.reads_of(run_id) if request.fault not in (None, PASSES)]

    def waited_for(self, sync_id: int, run_id: int | None = None, reads: int = 2) -> Callable[[], bool]:
        """A condition: the run (the sync's first, unless given) has been read ``reads`` times: it is waited for."""

        def condition() -> bool:
            runs = self.census.runs_of(sync_id)
            target = run_id if run_id is not None else (runs[-1]["id"] if runs else None)
            return target is not None and len(self.census.reads_of(target)) >= reads

        return condition

    # -- what the task raised --------------------------------------------------------------------

    def expect_error(
        self, outcome: Outcome, error: type[BaseException] | str, *fragments: str, syncs: bool = True
    ) -> BaseException:
        """The task failed with ``error`` (the many-syncs operator: one line per sync, which holds the fragments)."""
        assert outcome.state == "failed", outcome
        raised = outcome.error
        assert raised is not None, "the task failed without an exception"
        expected = CensusSyncRunsFailedError if syncs and self.task == "syncs" else error
        if isinstance(expected, str):
            assert type(raised).__name__ == expected, repr(raised)
        else:
            assert isinstance(raised, expected), repr(raised)
        for fragment in fragments:
            assert fragment in str(raised), (fragment, str(raised))
        return raised


def pushed(ti: FakeTaskInstance, key: str) -> Any:
    return ti.xcom(key) if any(pushed_key == key for pushed_key, _ in ti.pushed) else None


def assert_going(run: dict[str, Any]) -> None:
    """The run goes on in Census: not canceled, not ended."""
    assert (run["status"], run["canceled"]) in (("queued", False), ("working", False)), run


def summary_of(cell: Cell, outcome: Outcome, sync_id: int) -> dict[str, Any]:
    """The run's summary the task pushed (the many-syncs operator: its sync's)."""
    summary = outcome.summary
    assert summary is not None, outcome
    return dict(summary[str(sync_id)] if cell.task == "syncs" else summary)


# -- the rules ---------------------------------------------------------------------------------------


def wait_deadline(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(outcome="never"))
    outcome = cell.run(sync_id, cell.outside_run(sync_id), timeout=WAIT_TIMEOUT)
    if cell.task == "sensor":
        cell.expect_error(outcome, AirflowSensorTimeout)
    else:
        cell.expect_error(outcome, CensusRunTimeoutError, "did not finish in time", "still going")
    run = cell.only_run(sync_id)
    assert cell.cancels(run["id"]) == []
    assert_going(run)


def cancel_deadline(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(outcome="never"))
    if cell.task == "sensor":
        # Not the sensor's rule: it only watches the run. Airflow's kill (poking) or the sensor's own
        # timeout (deferred: the trigger has no cancel deadline) ends the wait; the run is never canceled.
        outcome = cell.run(
            sync_id, cell.outside_run(sync_id), execution_timeout=SENSOR_EXECUTION_TIMEOUT, timeout=SENSOR_OWN_TIMEOUT
        )
        cell.expect_error(outcome, AirflowSensorTimeout if cell.driver.deferrable else "AirflowTaskTimeout")
        run = cell.only_run(sync_id)
        assert cell.cancels(run["id"]) == []
        assert_going(run)
        return
    cell.monkeypatch.setattr(operators_base, "execution_timeout_margin", lambda total: total - CANCEL_AFTER)
    outcome = cell.run(sync_id, execution_timeout=EXECUTION_TIMEOUT)
    run = cell.only_run(sync_id)
    cell.expect_error(
        outcome, CensusRunTimeoutError, "execution_timeout passed", f"Census sync run {run['id']} was canceled"
    )
    assert len(cell.cancels(run["id"])) == 1
    assert run["canceled"] is True


def blocked_sync(cell: Cell, script: RunScript) -> tuple[int, int, int | None]:
    """A sync with a run going (started outside Airflow), so that Census skips the next one.

    For a sensor, that next run is started outside too: the skipped run it watches.
    """
    sync_id = cell.sync(script)
    blocker = cell.census.trigger(sync_id)
    skipped = cell.census.trigger(sync_id) if cell.task == "sensor" else None
    if skipped is not None:
        assert cell.census.run(skipped)["status"] == "skipped"
    return sync_id, blocker, skipped


def skip_fail(cell: Cell) -> None:
    sync_id, blocker, skipped = blocked_sync(cell, RunScript(outcome="never"))
    outcome = cell.run(sync_id, skipped, on_skipped="fail")
    cell.expect_error(outcome, CensusRunSkippedError, "skipped")
    assert len(cell.trigger_posts(sync_id)) == (1 if cell.driver.owns_run else 0)
    assert cell.all_cancels() == []
    assert_going(cell.census.run(blocker))


def skip_succeed(cell: Cell) -> None:
    sync_id, blocker, skipped = blocked_sync(cell, RunScript(outcome="never"))
    outcome = cell.run(sync_id, skipped, on_skipped="succeed")
    assert outcome.state == "success", outcome
    assert summary_of(cell, outcome, sync_id)["outcome"] == "skipped"
    assert len(cell.trigger_posts(sync_id)) == (1 if cell.driver.owns_run else 0)
    assert cell.all_cancels() == []
    assert_going(cell.census.run(blocker))


FRESH_RUN_FAILS = RunScript(outcome="failed", error_code="E_FRESH_RUN", error_message="the fresh run failed")


def skip_wait(cell: Cell) -> None:
    sync_id, blocker, skipped = blocked_sync(cell, RunScript(outcome="completed", queued_polls=0, working_polls=2))
    if cell.task == "sensor":
        outcome = cell.run(sync_id, skipped, on_skipped="wait")
        assert outcome.state == "success", outcome
        summary = summary_of(cell, outcome, sync_id)
        assert (summary["sync_run_id"], summary["outcome"]) == (blocker, "succeeded"), "the earlier run decides"
        assert cell.trigger_posts(sync_id) == [], "a sensor never triggers a run"
        assert cell.all_cancels() == []
        return
    # The blocking run succeeds; the fresh run fails: only if the fresh run decides does the task fail.
    cell.census.script_sync(sync_id, FRESH_RUN_FAILS)
    outcome = cell.run(sync_id, on_skipped="wait", reattach_on_retry=False)
    posts = cell.trigger_posts(sync_id)
    assert cell.all_cancels() == [], "the blocking run is never canceled"
    if cell.census.v2_routes == "documented":
        # Without a run list the blocking run cannot be found: the skip stands, with no second trigger.
        cell.expect_error(outcome, CensusRunSkippedError, "no earlier run was left to wait for")
        assert len(posts) == 1
        return
    fresh, own_skipped, first = cell.census.runs_of(sync_id)
    assert (first["id"], own_skipped["status"]) == (blocker, "skipped")
    assert (first["status"], fresh["status"]) == ("completed", "failed")
    error = cell.expect_error(outcome, CensusRunFailedError, "E_FRESH_RUN", f"run {fresh['id']}")
    if cell.task == "operator":
        assert error.summary["sync_run_id"] == fresh["id"]  # type: ignore[attr-defined]
    assert len(posts) == 2, "exactly one fresh run"
    finished = cell.census.run_finished_at(blocker)
    assert finished is not None and finished <= posts[1].started_at, "the fresh run came after the blocking run ended"


def failures_borne(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(queued_polls=0, working_polls=2))
    run_id = cell.outside_run(sync_id)
    injected = (MAX_FAILURES - 1) * cell.driver.requests_per_poll
    cell.fail_reads_after_the_first("429", injected)
    outcome = cell.run(sync_id, run_id, max_poll_failures=MAX_FAILURES)
    assert outcome.state == "success", outcome
    run = cell.only_run(sync_id)
    assert run["status"] == "completed"
    assert cell.failed_reads(run["id"]) == ["429"] * injected, "every injected failure met the wait"


def failures_limit(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(outcome="never"))
    run_id = cell.outside_run(sync_id)
    cell.fail_reads_after_the_first("429", 1000)
    outcome = cell.run(sync_id, run_id, max_poll_failures=MAX_FAILURES, timeout=cell.rule_first_timeout)
    cell.expect_error(outcome, CensusPollingError, f"failed {MAX_FAILURES} times in a row", "429")
    run = cell.only_run(sync_id)
    assert cell.failed_reads(run["id"]) == ["429"] * (MAX_FAILURES * cell.driver.requests_per_poll)


def failures_from_first_look(cell: Cell) -> None:
    """The limit when Census fails from the task's first read of the run on: that read is one of the failures."""
    sync_id = cell.sync(RunScript(outcome="never"))
    run_id = cell.outside_run(sync_id)
    cell.census.fail_next("429", count=1000, method="GET", path_prefix=cell.read_prefix, retry_after=RETRY_AFTER)
    outcome = cell.run(sync_id, run_id, max_poll_failures=MAX_FAILURES, timeout=cell.rule_first_timeout)
    cell.expect_error(outcome, CensusPollingError, f"failed {MAX_FAILURES} times in a row", "429")
    run = cell.only_run(sync_id)
    expected = MAX_FAILURES * cell.driver.requests_per_poll
    failed = cell.failed_reads(run["id"])
    assert set(failed) == {"429"}
    assert len(failed) == expected, f"{len(failed)} failed requests, not {expected}: {MAX_FAILURES} reads in a row"


def failure_not_transient(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(outcome="never"))
    run_id = cell.outside_run(sync_id)
    cell.fail_reads_after_the_first("401", 1000)
    outcome = cell.run(sync_id, run_id, max_poll_failures=MAX_FAILURES)
    cell.expect_error(outcome, CensusAuthenticationError, "401")
    run = cell.only_run(sync_id)
    assert cell.failed_reads(run["id"]) == ["401"], "no retry, no further poll"


def unknown_state(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(outcome="unknown", status_name="exploded", queued_polls=0, working_polls=0))
    outcome = cell.run(
        sync_id, cell.outside_run(sync_id), unknown_state_timeout=UNKNOWN_TIMEOUT, timeout=cell.rule_first_timeout
    )
    cell.expect_error(outcome, CensusRunUnknownStateError, "'exploded'")
    assert cell.only_run(sync_id)["status"] == "exploded"


def unknown_then_known(cell: Cell) -> None:
    # "retired" runs show status_name while going: an unknown name, for two reads, then "completed".
    sync_id = cell.sync(RunScript(outcome="retired", status_name="exploded", queued_polls=0, working_polls=2))
    outcome = cell.run(sync_id, cell.outside_run(sync_id), unknown_state_timeout=SENSOR_TIMEOUT)
    assert outcome.state == "success", outcome
    run = cell.only_run(sync_id)
    assert summary_of(cell, outcome, sync_id)["status"] == run["status"] == "completed"
    assert len(cell.census.reads_of(run["id"])) >= 3, "the unknown state was read, and waited through"


def kill(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(outcome="never"))
    run_id = cell.outside_run(sync_id)
    outcome = cell.run(sync_id, run_id, kill_when=cell.waited_for(sync_id, run_id), timeout=RUNS_ON_TIMEOUT)
    run = cell.only_run(sync_id)
    if cell.driver.owns_run:
        assert len(cell.cancels(run["id"])) == 1
        assert run["canceled"] is True
    else:
        assert cell.cancels(run["id"]) == [], "a sensor never cancels the run it watches"
        assert_going(run)
    assert outcome.state in ("failed", "killed"), outcome


def kill_keep(cell: Cell) -> None:
    sync_id = cell.sync(RunScript(outcome="never"))
    outcome = cell.run(sync_id, kill_when=cell.waited_for(sync_id), cancel_on_kill=False, timeout=RUNS_ON_TIMEOUT)
    run = cell.only_run(sync_id)
    assert cell.all_cancels() == []
    assert_going(run)
    assert outcome.state in ("failed", "killed"), outcome


def kill_blocked(cell: Cell) -> None:
    sync_id, blocker, _ = blocked_sync(cell, RunScript(outcome="never"))
    if cell.census.v2_routes == "documented":
        # Without a run list the blocking run cannot be found: nothing is waited for, nothing to kill.
        outcome = cell.run(sync_id, on_skipped="wait", reattach_on_retry=False)
        cell.expect_error(outcome, CensusRunSkippedError, "no earlier run was left to wait for")
        assert cell.all_cancels() == []
        return
    outcome = cell.run(
        sync_id,
        on_skipped="wait",
        reattach_on_retry=False,
        timeout=RUNS_ON_TIMEOUT,
        kill_when=cell.waited_for(sync_id, blocker, reads=3),
        kill_at=lambda trigger: blocker in runs_waited_for(trigger),
    )
    assert cell.all_cancels() == [], "the run that made Census skip the task's is only watched"
    assert cell.census.run(blocker)["canceled"] is False
    assert outcome.state in ("failed", "killed"), outcome


def runs_waited_for(trigger: Any) -> set[int]:
    """The runs a trigger waits for, owned or watched, read from its serialized kwargs (what the triggerer gets)."""
    _, kwargs = trigger.serialize()
    single = [kwargs["sync_run_id"]] if "sync_run_id" in kwargs else []
    return {*single, *kwargs.get("sync_run_ids", ()), *kwargs.get("watched_run_ids", ())}


RULES: dict[str, Callable[[Cell], None]] = {
    "wait-deadline": wait_deadline,
    "cancel-deadline": cancel_deadline,
    "skip-fail": skip_fail,
    "skip-succeed": skip_succeed,
    "skip-wait": skip_wait,
    "failures-borne": failures_borne,
    "failures-limit": failures_limit,
    "failures-from-first-look": failures_from_first_look,
    "failure-not-transient": failure_not_transient,
    "unknown-state": unknown_state,
    "unknown-then-known": unknown_then_known,
    "kill": kill,
    "kill-keep": kill_keep,
    "kill-blocked": kill_blocked,
}


# -- the watcher's cells ---------------------------------------------------------------------------


async def watcher_cell(census: CensusEmulator, rule: str) -> None:
    from tests.test_sync_events import FakeAssetStore, acked_watcher, ended_run, polls_pass
    from tests.test_sync_events import wait_until as wait_for_watch

    script = {
        "unknown-state": RunScript(outcome="unknown", status_name="exploded", queued_polls=0, working_polls=0),
        "unknown-then-known": RunScript(outcome="retired", status_name="exploded", queued_polls=1, working_polls=1),
        "kill": RunScript(outcome="never"),
    }.get(rule, RunScript(queued_polls=0, working_polls=0))
    sync_id = census.add_sync(script)
    listing = f"/syncs/{sync_id}/sync_runs"
    watch = acked_watcher(sync_id, FakeAssetStore(), poll_interval=POLL, outcomes=["succeeded", "failed"])
    await polls_pass(census, watch)
    faults = {
        "failures-borne": ("429", MAX_FAILURES - 1),
        # More failed polls in a row than any task bears (max_poll_failures is 5 by default): a watcher has
        # no task to fail, so it never ends; it backs off and fires once Census answers again.
        "failures-limit": ("429", 6),
        "failure-not-transient": ("401", 3),
    }
    if rule in faults:
        kind, count = faults[rule]
        census.fail_next(kind, count=count, method="GET", path_prefix=listing, retry_after=RETRY_AFTER)
        run_id = ended_run(census, sync_id)
        await wait_for_watch(lambda: bool(watch.events), watch)
        await watch.stop()
        assert watch.fired == [run_id]
        assert [request.fault for request in census.requests_for("GET", listing) if request.fault] == [kind] * count
    elif rule == "unknown-state":
        odd = ended_run(census, sync_id)
        assert census.run(odd)["status"] == "exploded"
        await polls_pass(census, watch, 3)
        assert watch.events == [], "an unknown state is never an end: it never fires"
        census.script_sync(sync_id, RunScript(queued_polls=0, working_polls=0))
        completed = ended_run(census, sync_id)
        await wait_for_watch(lambda: bool(watch.events), watch)
        await watch.stop()
        assert watch.fired == [completed]
    elif rule == "unknown-then-known":
        run_id = census.trigger(sync_id)
        census.workspace.poll_run(run_id)
        assert census.run(run_id)["status"] == "exploded"
        await polls_pass(census, watch, 3)
        assert watch.events == []
        census.workspace.poll_run(run_id)
        census.workspace.poll_run(run_id)
        assert census.run(run_id)["status"] == "completed"
        await wait_for_watch(lambda: bool(watch.events), watch)
        await watch.stop()
        assert watch.fired == [run_id]
    else:
        assert rule == "kill", rule
        going = census.trigger(sync_id)
        await polls_pass(census, watch, 2)
        await watch.stop()
        assert [request for request in census.requests if request.api_path.endswith("/cancel")] == []
        assert census.run(going)["canceled"] is False


# -- the table ---------------------------------------------------------------------------------------

SENSOR_DRIVERS = ("sensor-poke", "sensor-reschedule", "sensor-deferred")
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("failures-from-first-look", "watcher"): (
        "a watcher has no look before its polls, and no limit (rows failures-limit, failure-not-transient)"
    ),
    **{
        (rule, "watcher"): "a watcher starts no run and waits for none to end: no deadline, no skip policy"
        for rule in ("wait-deadline", "cancel-deadline", "skip-fail", "skip-succeed", "skip-wait")
    },
    ("cancel-deadline", "sensor-reschedule"): (
        "execution_timeout bounds one poke in reschedule mode, not the wait; and a sensor never cancels "
        "(asserted in sensor-poke and sensor-deferred)"
    ),
    **{
        (rule, "op-deferred"): (
            "dag.test() runs a trigger in-process to its event and has no way to kill it; the triggerer's kill "
            "of the operator's trigger is the 'trigger' column"
        )
        for rule in ("kill", "kill-keep", "kill-blocked")
    },
    ("kill", "sensor-reschedule"): (
        "between pokes no process runs to kill; a kill during a poke is sensor-poke's cell (the same poke)"
    ),
    **{
        (rule, driver): "a sensor has no cancel_on_kill and only watches runs: its kill never cancels (row 'kill')"
        for rule in ("kill-keep", "kill-blocked")
        for driver in SENSOR_DRIVERS
    },
    **{
        (rule, "watcher"): "a watcher owns no run and has no cancel_on_kill (row 'kill': stopping it cancels nothing)"
        for rule in ("kill-keep", "kill-blocked")
    },
}
TRIGGER_ON_KILL = (
    "Airflow 3.3's triggerer calls a trigger's on_kill when its deferred task is killed; 2.11's never does"
)
WATCHER_LINE = "the AssetWatcher (ack-mode shared stream) is Airflow 3.3's; Airflow 2 has no AssetWatcher"
ONLY_ON_3_3: dict[tuple[str, str], str] = {
    key: reason
    for key, reason in {
        **{
            (rule, driver): TRIGGER_ON_KILL
            for rule in ("kill", "kill-keep", "kill-blocked")
            for driver in ("trigger", "sensor-deferred", "syncs-deferred")
        },
        **{(rule, "watcher"): WATCHER_LINE for rule in RULES},
    }.items()
    if key not in NOT_APPLICABLE
}
RESCHEDULED_POKES_FORGET = (
    "before Airflow 3.3 a rescheduled sensor has no task_state_store to keep its count in: each poke is a fresh "
    "task that counts its failed polls and the unknown-state clock from 0, so the wait ends only at the sensor's "
    "timeout, with AirflowSensorTimeout instead of the rule's error (the sensor's docstring says so)"
)
DIVERGES_BEFORE_3_3: dict[tuple[str, str], str] = {
    (rule, "sensor-reschedule"): RESCHEDULED_POKES_FORGET
    for rule in ("failures-limit", "failures-from-first-look", "unknown-state")
}
"""Cells where the provider breaks the rule before Airflow 3.3: ``xfail(strict=True)`` there, with the reason."""
OBSERVED: dict[tuple[str, str], str] = {
    ("cancel-deadline", "sensor-poke"): (
        "a sensor only watches the run: Airflow's own kill at execution_timeout ends the poking, the run goes on"
    ),
    ("cancel-deadline", "sensor-deferred"): (
        "a sensor only watches the run: its trigger has no cancel deadline, its timeout ends the wait, the run goes on"
    ),
    ("kill", "sensor-poke"): "a sensor only watches the run: killing it never cancels the run",
    ("kill", "sensor-deferred"): "a sensor only watches the run: killing its trigger never cancels the run",
    ("failures-limit", "watcher"): (
        "a watcher has no task to fail: it outlives more failed polls in a row than any task bears, and fires once "
        "Census answers again"
    ),
    (
        "failure-not-transient",
        "watcher",
    ): "a watcher has no task to fail: a 401 passes, and it fires once Census answers",
    ("unknown-state", "watcher"): (
        "a watcher has no unknown_state_timeout: a run in an unknown state never fires, and a later run still does"
    ),
    ("kill", "watcher"): "a watcher owns no run: stopping it (a triggerer's stop or hand-over) cancels nothing",
}
"""Cells where the rule does not apply to the driver, and what the driver does instead is asserted."""


def table(drivers: list[Driver]) -> list[Any]:
    cells = []
    for rule in RULES:
        for driver in drivers:
            key = (rule, driver.name)
            if key in NOT_APPLICABLE:
                continue
            marks = []
            if key in ONLY_ON_3_3:
                marks.append(pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason=ONLY_ON_3_3[key]))
            if key in DIVERGES_BEFORE_3_3:
                marks.append(
                    pytest.mark.xfail(
                        not AIRFLOW_V_3_3_PLUS, strict=True, raises=AssertionError, reason=DIVERGES_BEFORE_3_3[key]
                    )
                )
            cells.append(pytest.param(rule, driver.name, id=f"{rule}-{driver.name}", marks=marks))
    return cells


@pytest.fixture
def census_api_version() -> str:
    """V2, as the provider assumes it, outside the trigger column (see the module's docstring)."""
    return "v2"


def run_cell(rule: str, driver_name: str, census: CensusEmulator, request: pytest.FixtureRequest) -> None:
    driver = BY_NAME[driver_name]
    if driver.task == "watcher":
        asyncio.run(watcher_cell(census, rule))
        return
    RULES[rule](Cell(rule, driver, census, request))


@pytest.mark.v2_routes
@pytest.mark.parametrize(("rule", "driver"), table([BY_NAME["trigger"]]))
def test_rule_through_the_triggerer(
    census_conn: CensusEmulator, request: pytest.FixtureRequest, rule: str, driver: str
) -> None:
    run_cell(rule, driver, census_conn, request)


@pytest.mark.parametrize(("rule", "driver"), table([d for d in DRIVERS if d.name != "trigger"]))
def test_rule_through_airflow(
    census_conn: CensusEmulator, request: pytest.FixtureRequest, rule: str, driver: str
) -> None:
    run_cell(rule, driver, census_conn, request)


def table_status(key: tuple[str, str]) -> str:
    """What the module's table shows for a cell, from the data that drives the tests."""
    if key in NOT_APPLICABLE:
        return "n/a"
    if key in DIVERGES_BEFORE_3_3:
        return "x<3.3"
    status = "obs" if key in OBSERVED else "ok"
    if key in ONLY_ON_3_3:
        return "3.3" if status == "ok" else f"3.3/{status}"
    return status


def test_the_documented_table_is_the_one_the_tests_run() -> None:
    """Every rule meets every driver, and the module's table says how, as the data does; every reason is written."""
    lines = __doc__.split("    rule ", 1)[1].split("\n\n", 1)[0].splitlines()
    header, rows = lines[0].split(), [line.split() for line in lines[1:]]
    assert header == [driver.short for driver in DRIVERS]
    documented = {(row[0], driver.name): cell for row in rows for driver, cell in zip(DRIVERS, row[1:], strict=True)}
    assert [row[0] for row in rows] == list(RULES)
    assert documented == {
        (rule, driver.name): table_status((rule, driver.name)) for rule in RULES for driver in DRIVERS
    }
    reasons = [*NOT_APPLICABLE.values(), *ONLY_ON_3_3.values(), *DIVERGES_BEFORE_3_3.values(), *OBSERVED.values()]
    assert all(reason.strip() for reason in reasons)
    assert not set(OBSERVED) & set(NOT_APPLICABLE), "a cell that is run is not 'not applicable'"
