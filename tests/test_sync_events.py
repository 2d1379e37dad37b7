"""CensusSyncRunFinishedTrigger: one event per run that ends, across restarts, faults and odd states.

Each watcher runs in an asyncio task as a triggerer runs it and polls the bundled emulator
over real HTTP, on both API versions; runs are started "from outside" with the emulator's
own trigger (as Census's schedule or the app's "Sync now" would) and moved on with its
workspace. Most tests run once per way a triggerer runs a watcher (the ``line`` fixture):
its own loop with the mark in a Variable (Airflow 3.0-3.2), and a shared stream in ack mode
through Airflow's own ``SharedStreamManager`` with the mark in the asset state store
(Airflow 3.3+). A restart is a new trigger instance with the same kwargs and the same store.
Waits are for conditions (so many more polls), never for an amount of time.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import pytest

from airflow_provider_census.api.errors import CensusConfigurationError, CensusInputError
from airflow_provider_census.testing import CensusEmulator, FaultProfile, RunScript
from airflow_provider_census.triggers import sync_events, sync_watch
from airflow_provider_census.triggers.sync_events import CensusSyncRunFinishedTrigger, WatchMark
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

QUICK_POLL = 0.01
GIVE_UP_SECONDS = 30.0
ENDS_AT_ONCE = RunScript(queued_polls=0, working_polls=0)
ALL_OUTCOMES = ["succeeded", "failed", "canceled", "skipped"]
TRIGGER_ID = 1

needs_airflow_3 = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="AssetWatcher and BaseEventTrigger are Airflow 3")
needs_airflow_3_3 = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="shared streams and ack mode are Airflow 3.3")


@pytest.fixture(autouse=True)
def mark_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the mark right after firing; one test puts the delay back to show what it is for."""
    monkeypatch.setattr(sync_events, "MARK_DELAY_SECONDS", 0.0)


class FakeAssetStore:
    """The accessor a triggerer gives a watcher of one asset (Airflow 3.3+): JSON values by key, durable.

    The values are kept as JSON text, as the metadata database keeps them, so a mark that
    does not survive a JSON round trip fails here too.
    """

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)


class SharedAssetStore(FakeAssetStore):
    """The accessor of a trigger that several assets share: it has no single store (Airflow raises ValueError)."""

    async def aget(self, key: str, default: Any = None) -> Any:
        raise ValueError("Task has 2 concrete inlets and outlets")

    async def aset(self, key: str, value: Any) -> None:
        raise ValueError("Task has 2 concrete inlets and outlets")


class FakeVariables:
    """Airflow Variables as the triggerer's supervisor keeps them: text by name, durable."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, text: str) -> None:
        assert isinstance(text, str), "a Variable holds text"
        self.values[key] = text


@pytest.fixture(autouse=True)
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    """The Variables every watcher reads and writes here (the real ones: tests/test_sync_events_triggerer.py)."""
    fake = FakeVariables()
    monkeypatch.setattr(sync_watch, "aget_variable", fake.get)
    monkeypatch.setattr(sync_watch, "aset_variable", fake.set)
    return fake


class Watcher:
    """A trigger run in a task as a triggerer of Airflow 3.0-3.2 runs a watcher, its event payloads collected."""

    def __init__(self, trigger: CensusSyncRunFinishedTrigger) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    @property
    def fired(self) -> list[int]:
        return [event["sync_run_id"] for event in self.events]

    async def stop(self) -> None:
        """Cancel the task, as a triggerer that stops or hands the watcher over does."""
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task


class AckedWatcher(Watcher):
    """The trigger as Airflow 3.3's triggerer runs a watcher: a shared stream in ack mode, through Airflow's manager.

    As ``run_trigger`` does, each event is bound to the stream as it leaves the filter; the
    supervisor's confirmation that it stored the asset event comes a little later, for the
    first ``stores`` events only (all when None: then the database stops taking them).
    """

    def __init__(
        self,
        trigger: CensusSyncRunFinishedTrigger,
        *,
        stores: int | None = None,
        ack_timeout: float = GIVE_UP_SECONDS,
        manager: Any = None,
        trigger_id: int = TRIGGER_ID,
    ) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = manager or SharedStreamManager(ack_timeout=ack_timeout)
        self.stores = stores
        trigger.trigger_id = trigger_id  # as the triggerer sets it, before it runs the trigger
        super().__init__(trigger)

    async def _collect(self) -> None:
        trigger_id = self.trigger.trigger_id
        key = self.trigger.shared_stream_key()
        stream = self.manager.subscribe(trigger_id=trigger_id, trigger=self.trigger, key=key)
        try:
            async for event in self.trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                assert seq is not None, "the stream is in ack mode: each event waits to be stored"
                self.events.append(event.payload)
                if self.stores is None or len(self.events) <= self.stores:
                    asyncio.get_running_loop().call_soon(self.manager.confirm_persisted, [seq])
        finally:
            await self.manager.unsubscribe(trigger_id, key)


class Line:
    """How the triggerer of one Airflow line runs a watcher, and where the watcher's mark lives.

    ``loop`` (Airflow 3.0-3.2): the trigger's own ``run()``, no asset state store, the mark in
    a Variable. ``acked`` (Airflow 3.3+): an ack-mode shared stream, the mark in the asset
    state store.
    """

    def __init__(self, kind: str, variables: FakeVariables) -> None:
        self.kind = kind
        self.asset_store = FakeAssetStore()
        self.variables = variables

    @property
    def stored(self) -> dict[str, str]:
        """The marks kept across restarts, as JSON text by key."""
        return self.asset_store.values if self.kind == "acked" else self.variables.values

    def covers(self, sync_id: int, run_id: int) -> bool:
        """Whether the kept mark of ``sync_id``'s default watch covers ``run_id`` (fired or passed over)."""
        text = self.stored.get(mark_key(sync_id))
        return text is not None and WatchMark.from_json(json.loads(text)).covers(run_id)

    def watcher(self, sync_id: int, **kwargs: Any) -> Watcher:
        trigger = CensusSyncRunFinishedTrigger(sync_id, **{"poll_interval": QUICK_POLL, **kwargs})
        if self.kind == "loop":
            return Watcher(trigger)
        trigger.asset_state_store = self.asset_store
        return AckedWatcher(trigger)


@pytest.fixture(
    params=[
        pytest.param("loop", marks=needs_airflow_3, id="own-loop-3.0-3.2"),
        pytest.param("acked", marks=needs_airflow_3_3, id="ack-stream-3.3"),
    ]
)
def line(request: pytest.FixtureRequest, variables: FakeVariables) -> Line:
    return Line(str(request.param), variables)


def mark_key(sync_id: int, outcomes: str = "succeeded") -> str:
    return f"census_sync_watch:census_default:{sync_id}:{outcomes}"


def acked_watcher(
    sync_id: int,
    store: Any,
    *,
    stores: int | None = None,
    ack_timeout: float = GIVE_UP_SECONDS,
    manager: Any = None,
    trigger_id: int = TRIGGER_ID,
    **kwargs: Any,
) -> AckedWatcher:
    trigger = CensusSyncRunFinishedTrigger(sync_id, **{"poll_interval": QUICK_POLL, **kwargs})
    trigger.asset_state_store = store
    return AckedWatcher(trigger, stores=stores, ack_timeout=ack_timeout, manager=manager, trigger_id=trigger_id)


def store_covers(store: FakeAssetStore, sync_id: int, run_id: int) -> bool:
    text = store.values.get(mark_key(sync_id))
    return text is not None and WatchMark.from_json(json.loads(text)).covers(run_id)


async def wait_until(condition: Callable[[], bool], watch: Watcher | None = None) -> None:
    """Yield to the loop until ``condition`` holds; a safety net against hanging, not a timing assertion."""
    give_up_at = time.monotonic() + GIVE_UP_SECONDS
    while not condition():
        if watch is not None and watch.task.done():
            watch.task.result()
            raise AssertionError("the watcher ended; a watcher must run until it is stopped")
        if time.monotonic() > give_up_at:
            raise AssertionError("the condition never came true")
        await asyncio.sleep(QUICK_POLL)


async def polls_pass(emulator: CensusEmulator, watch: Watcher, count: int = 2) -> None:
    """Wait until the watcher has listed the sync's runs ``count`` more times without a fault.

    A poll's events are collected before the next poll begins, so after two new listings the
    first of them has been fully acted on.
    """
    path = f"/syncs/{watch.trigger.sync_id}/sync_runs"

    def clean() -> int:
        return sum(1 for request in emulator.requests_for("GET", path) if request.fault is None)

    target = clean() + count
    await wait_until(lambda: clean() >= target, watch)


def ended_run(emulator: CensusEmulator, sync_id: int) -> int:
    """Start a run from outside Census's API clients and move it to its end."""
    run_id = emulator.trigger(sync_id)
    finish(emulator, run_id)
    return run_id


def finish(emulator: CensusEmulator, run_id: int) -> None:
    while emulator.run(run_id)["status"] in ("queued", "working"):
        emulator.workspace.poll_run(run_id)


# -- firing ------------------------------------------------------------------------------


async def test_fires_once_per_run_ended_outside_and_never_for_runs_ended_before(
    census_conn: CensusEmulator, line: Line
) -> None:
    sync_id = census_conn.add_sync(RunScript(queued_polls=0, working_polls=0, records_processed=7, records_failed=2))
    before = [ended_run(census_conn, sync_id), ended_run(census_conn, sync_id)]
    watch = line.watcher(sync_id)
    await polls_pass(census_conn, watch)
    assert watch.events == [], "runs that ended before the watch began never fire"

    later = [ended_run(census_conn, sync_id), ended_run(census_conn, sync_id)]
    await wait_until(lambda: len(watch.events) >= 2, watch)
    await polls_pass(census_conn, watch, 3)
    await watch.stop()
    assert watch.fired == later
    assert not set(before) & set(watch.fired)
    event = watch.events[0]
    assert json.loads(json.dumps(event)) == event, "JSON primitives only"
    assert (event["schema_version"], event["sync_id"], event["status"], event["outcome"]) == (
        1,
        sync_id,
        "completed",
        "succeeded",
    )
    assert (event["records_processed"], event["records_failed"]) == (7, 2)
    assert event["url"].endswith(f"/syncs/{sync_id}/history?sync_run_id={later[0]}")
    token = census_conn.token_for(census_conn_version(census_conn))
    assert token not in json.dumps(watch.events)
    assert line.stored, "the mark is kept"
    assert token not in json.dumps(line.stored), "the mark (key and value) never holds the token"


def census_conn_version(emulator: CensusEmulator) -> str:
    """The API version ``census_default`` talks, read back from the environment the fixture set."""
    import os

    return str(json.loads(os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])["extra"]["api_version"])


async def test_a_run_going_when_the_watch_began_fires_when_it_ends(census_conn: CensusEmulator, line: Line) -> None:
    sync_id = census_conn.add_sync(RunScript(queued_polls=1, working_polls=1))
    going = census_conn.trigger(sync_id)
    watch = line.watcher(sync_id)
    await polls_pass(census_conn, watch)
    assert watch.events == []
    finish(census_conn, going)
    await wait_until(lambda: bool(watch.events), watch)
    await polls_pass(census_conn, watch)
    await watch.stop()
    assert watch.fired == [going]


async def test_runs_that_end_out_of_order_each_fire_once(census_conn: CensusEmulator, line: Line) -> None:
    first = census_conn.add_sync(RunScript(queued_polls=1, working_polls=1))
    watch = line.watcher(first, outcomes=ALL_OUTCOMES)
    await polls_pass(census_conn, watch)
    older = census_conn.trigger(first)
    newer = census_conn.trigger(first)  # skipped at once by Census: the older run is still going
    await wait_until(lambda: watch.fired == [newer], watch)
    finish(census_conn, older)
    await wait_until(lambda: len(watch.events) >= 2, watch)
    await polls_pass(census_conn, watch)
    await watch.stop()
    assert watch.fired == [newer, older]
    assert [event["outcome"] for event in watch.events] == ["skipped", "succeeded"]


async def test_outcomes_choose_what_fires_and_the_payload_tells_them_apart(
    census_conn: CensusEmulator, line: Line
) -> None:
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    successes = line.watcher(sync_id)
    failures = line.watcher(sync_id, outcomes=["failed", "canceled"])
    await polls_pass(census_conn, successes)
    await polls_pass(census_conn, failures)
    completed = ended_run(census_conn, sync_id)
    census_conn.script_sync(sync_id, RunScript(outcome="failed", queued_polls=0, working_polls=0, error_code="E_DEST"))
    failed = ended_run(census_conn, sync_id)
    census_conn.script_sync(sync_id, RunScript(outcome="canceled", queued_polls=0, working_polls=0))
    canceled = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(successes.events) and len(failures.events) >= 2, failures)
    await polls_pass(census_conn, successes)
    await polls_pass(census_conn, failures)
    await successes.stop()
    await failures.stop()
    assert successes.fired == [completed]
    assert failures.fired == [failed, canceled]
    assert [(event["outcome"], event["error_code"]) for event in failures.events] == [
        ("failed", "E_DEST"),
        ("canceled", None),
    ]
    assert failures.events[1]["canceled"] is True
    assert len(line.stored) == 2, "each filter keeps its own mark"


async def test_a_run_in_an_unknown_state_never_fires_and_holds_no_later_run_back(
    census_conn: CensusEmulator, line: Line
) -> None:
    sync_id = census_conn.add_sync(
        RunScript(outcome="unknown", status_name="exploded", queued_polls=0, working_polls=0)
    )
    watch = line.watcher(sync_id, outcomes=ALL_OUTCOMES)
    await polls_pass(census_conn, watch)
    odd = ended_run(census_conn, sync_id)
    assert census_conn.run(odd)["status"] == "exploded"
    await polls_pass(census_conn, watch, 3)
    assert watch.events == [], "an unknown state is never an end, let alone a success"
    census_conn.script_sync(sync_id, ENDS_AT_ONCE)
    completed = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(watch.events), watch)
    await polls_pass(census_conn, watch)
    await watch.stop()
    assert watch.fired == [completed]


# -- restarts ----------------------------------------------------------------------------


async def test_a_restart_fires_what_ended_while_down_and_nothing_twice(census_conn: CensusEmulator, line: Line) -> None:
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    first = line.watcher(sync_id, outcomes=["succeeded", "failed"])
    await polls_pass(census_conn, first)
    fired_before = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(first.events), first)
    await polls_pass(census_conn, first)
    await first.stop()

    while_down = [ended_run(census_conn, sync_id)]
    census_conn.script_sync(sync_id, RunScript(outcome="failed", queued_polls=0, working_polls=0))
    while_down.append(ended_run(census_conn, sync_id))

    second = line.watcher(sync_id, outcomes=["failed", "succeeded"])  # the same watch, listed in another order
    await wait_until(lambda: len(second.events) >= 2, second)
    await polls_pass(census_conn, second, 3)
    await second.stop()
    assert first.fired == [fired_before]
    assert second.fired == while_down
    assert list(line.stored) == [mark_key(sync_id, "failed+succeeded")]


async def test_a_restart_before_the_first_run_ends_still_fires_it(census_conn: CensusEmulator, line: Line) -> None:
    """The mark of a new watch is stored at once, so what ends before a restart is not taken as old."""
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    first = line.watcher(sync_id)
    await polls_pass(census_conn, first)
    await first.stop()
    while_down = ended_run(census_conn, sync_id)
    second = line.watcher(sync_id)
    await wait_until(lambda: bool(second.events), second)
    await polls_pass(census_conn, second)
    await second.stop()
    assert second.fired == [while_down]


async def test_a_stop_right_after_firing(
    census_conn: CensusEmulator, line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On its own loop the mark trails the events by the delay: a stop within it fires that run again.

    In ack mode the mark is written as soon as Airflow stored the event, whatever the delay.
    """
    monkeypatch.setattr(sync_events, "MARK_DELAY_SECONDS", 3600.0)
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    first = line.watcher(sync_id)
    await polls_pass(census_conn, first)
    run_id = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(first.events), first)
    if line.kind == "acked":
        await wait_until(lambda: line.covers(sync_id, run_id), first)
    await first.stop()
    monkeypatch.setattr(sync_events, "MARK_DELAY_SECONDS", 0.0)
    second = line.watcher(sync_id)
    if line.kind == "loop":
        await wait_until(lambda: bool(second.events), second)
    await polls_pass(census_conn, second, 3)
    await second.stop()
    assert first.fired == [run_id]
    assert second.fired == ([run_id] if line.kind == "loop" else [])


@needs_airflow_3_3
@pytest.mark.parametrize("end", ["stopped", "ack timeout"])
async def test_events_airflow_did_not_store_fire_again_after_a_restart(census_conn: CensusEmulator, end: str) -> None:
    """Ack mode: the mark covers an event once Airflow confirmed storing it and the ones before, never sooner.

    Three runs fire in one poll and Airflow stores the first event only; then the triggerer
    stops, or its ack timeout fails the watcher (the triggerer then starts it again).
    """
    from airflow.triggers.shared_stream import AckTimeout

    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    store = FakeAssetStore()
    first = acked_watcher(sync_id, store, stores=1, ack_timeout=0.5 if end == "ack timeout" else GIVE_UP_SECONDS)
    await polls_pass(census_conn, first)
    runs = [ended_run(census_conn, sync_id) for _ in range(3)]
    await wait_until(lambda: len(first.events) == 3, first)
    await wait_until(lambda: store_covers(store, sync_id, runs[0]), first)
    if end == "stopped":
        await polls_pass(census_conn, first, 3)
        await first.stop()
    else:
        await wait_until(first.task.done)
        with pytest.raises(AckTimeout):
            first.task.result()
    assert [store_covers(store, sync_id, run_id) for run_id in runs] == [True, False, False]

    second = acked_watcher(sync_id, store)
    await wait_until(lambda: len(second.events) >= 2, second)
    await polls_pass(census_conn, second, 3)
    await second.stop()
    third = acked_watcher(sync_id, store)
    await polls_pass(census_conn, third, 3)
    await third.stop()
    assert (first.fired, second.fired, third.fired) == (runs, runs[1:], [])
    assert all(store_covers(store, sync_id, run_id) for run_id in runs)


@needs_airflow_3_3
async def test_two_watchers_of_the_same_watch_in_one_triggerer_each_keep_their_own_mark(
    census_conn: CensusEmulator,
) -> None:
    """Two triggers with the same kwargs, each watching its own asset: each fires each run and marks it in its store.

    Airflow stores one watch twice when two DAG files declare it for their own assets (with a
    Fernet key, it never finds the first trigger row again); one triggerer then runs both,
    their stream keys equal. A restart of either one alone must not fire a run twice.
    """
    from airflow.triggers.shared_stream import SharedStreamManager

    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    manager = SharedStreamManager(ack_timeout=GIVE_UP_SECONDS)
    stores = [FakeAssetStore(), FakeAssetStore()]
    watchers = [
        acked_watcher(sync_id, store, manager=manager, trigger_id=trigger_id)
        for trigger_id, store in enumerate(stores, start=1)
    ]
    for watcher in watchers:
        await polls_pass(census_conn, watcher)
    run_id = ended_run(census_conn, sync_id)
    await wait_until(lambda: all(store_covers(store, sync_id, run_id) for store in stores), watchers[0])
    await polls_pass(census_conn, watchers[0], 3)
    for watcher in watchers:
        await watcher.stop()
    assert [watcher.fired for watcher in watchers] == [[run_id], [run_id]]

    restarted = acked_watcher(sync_id, stores[0])
    await polls_pass(census_conn, restarted, 3)
    await restarted.stop()
    assert restarted.fired == []


@needs_airflow_3_3
async def test_a_trigger_shared_by_several_assets_keeps_its_mark_in_a_variable(
    census_conn: CensusEmulator, variables: FakeVariables
) -> None:
    """Airflow's accessor has no single store then; the Variable of the same key keeps the watch durable."""
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    first = acked_watcher(sync_id, SharedAssetStore())
    await polls_pass(census_conn, first)
    fired_before = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(first.events), first)
    await polls_pass(census_conn, first)
    await first.stop()
    while_down = ended_run(census_conn, sync_id)
    second = acked_watcher(sync_id, SharedAssetStore())
    await wait_until(lambda: bool(second.events), second)
    await polls_pass(census_conn, second, 3)
    await second.stop()
    assert (first.fired, second.fired) == ([fired_before], [while_down])
    assert list(variables.values) == [mark_key(sync_id)]


@pytest.mark.parametrize("garbage", ['{"settled_through": "12", "decided": []}', "[1, 2]", "not json {"])
async def test_an_unreadable_stored_mark_starts_the_watch_afresh(
    census_conn: CensusEmulator, line: Line, capsys: pytest.CaptureFixture[str], garbage: str
) -> None:
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    line.stored[mark_key(sync_id)] = written = as_stored(line, garbage)
    old = ended_run(census_conn, sync_id)
    log = LogText(capsys)
    watch = line.watcher(sync_id)
    await wait_until(lambda: line.stored[mark_key(sync_id)] != written, watch)
    later = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(watch.events), watch)
    await polls_pass(census_conn, watch)
    await watch.stop()
    assert watch.fired == [later], "what ended before the new start does not fire"
    assert old not in watch.fired
    assert f"The stored mark {mark_key(sync_id)} cannot be read" in log.text
    assert line.covers(sync_id, later)


def as_stored(line: Line, text: str) -> str:
    """``text`` as the line's store holds it: a Variable any text, the asset store JSON only (else as a JSON string)."""
    if line.kind == "loop":
        return text
    try:
        json.loads(text)
    except ValueError:
        return json.dumps(text)
    return text


@needs_airflow_3_3
async def test_a_failed_mark_write_is_tried_again(census_conn: CensusEmulator) -> None:
    """Until it is written, a stop fires the run again: the store's failure, not Airflow's, is the limit."""

    class FlakyStore(FakeAssetStore):
        failures_left = 2

        async def aset(self, key: str, value: Any) -> None:
            if self.failures_left:
                self.failures_left -= 1
                raise ConnectionError("the supervisor did not answer")
            await super().aset(key, value)

    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    store = FlakyStore()
    watch = acked_watcher(sync_id, store)
    await wait_until(lambda: bool(store.values), watch)
    assert store.failures_left == 0
    run_id = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(watch.events), watch)
    await polls_pass(census_conn, watch)
    await watch.stop()
    assert WatchMark.from_json(json.loads(store.values[mark_key(sync_id)])).covers(run_id)


async def test_catching_up_stops_at_the_newest_runs(
    census_conn: CensusEmulator, line: Line, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    first = line.watcher(sync_id)
    await polls_pass(census_conn, first)
    await first.stop()
    while_down = [ended_run(census_conn, sync_id) for _ in range(sync_events.CATCH_UP_RUNS + 30)]
    log = LogText(capsys)
    second = line.watcher(sync_id)
    await wait_until(lambda: len(second.events) >= sync_events.CATCH_UP_RUNS, second)
    await polls_pass(census_conn, second, 3)
    await second.stop()
    assert second.fired == while_down[-sync_events.CATCH_UP_RUNS :]
    assert f"More than {sync_events.CATCH_UP_RUNS} runs of Census sync {sync_id}" in log.text


async def test_a_mark_survives_json() -> None:
    with pytest.raises(ValueError, match="not a watch mark"):
        WatchMark.from_json({"settled_through": "12", "decided": []})
    assert WatchMark.from_json(WatchMark(12, frozenset({14, 15})).to_json()) == WatchMark(12, frozenset({14, 15}))


# -- faults ------------------------------------------------------------------------------


async def test_passing_faults_neither_lose_nor_repeat_a_run(census_conn: CensusEmulator, line: Line) -> None:
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    listing = f"/syncs/{sync_id}/sync_runs"
    watch = line.watcher(sync_id)
    await polls_pass(census_conn, watch)
    census_conn.fail_next("503", count=2, path_prefix=listing)
    census_conn.fail_next("429", count=1, path_prefix=listing, retry_after=0.05)
    census_conn.fail_next("cut_json", count=1, path_prefix=listing)
    census_conn.fail_next("drop", count=1, path_prefix=listing)
    first = ended_run(census_conn, sync_id)
    await wait_until(lambda: bool(watch.events), watch)
    census_conn.set_faults(FaultProfile(rate=0.4, kinds=("500", "html", "empty", "drop"), seed=7, path_prefix=listing))
    more = [ended_run(census_conn, sync_id) for _ in range(3)]
    await wait_until(lambda: len(watch.events) >= 4, watch)
    census_conn.set_faults(None)
    await polls_pass(census_conn, watch, 3)
    await watch.stop()
    faults = [request.fault for request in census_conn.requests_for("GET", listing) if request.fault]
    assert faults[:5] == ["503", "503", "429", "cut_json", "drop"]
    assert len(faults) > 5, "the random faults hit some listings"
    assert watch.fired == [first, *more]


async def test_a_refused_token_is_logged_without_it_and_the_watch_goes_on(
    census_conn: CensusEmulator, line: Line, capsys: pytest.CaptureFixture[str]
) -> None:
    version = census_conn_version(census_conn)
    token = census_conn.token_for(version)
    sync_id = census_conn.add_sync(ENDS_AT_ONCE)
    watch = line.watcher(sync_id)
    await polls_pass(census_conn, watch)
    log = LogText(capsys)
    census_conn.rotate_token(version, "revoked-for-now")
    run_id = ended_run(census_conn, sync_id)
    await wait_until(lambda: "failed (2 in a row)" in log.text, watch)
    census_conn.rotate_token(version, token)
    await wait_until(lambda: bool(watch.events), watch)
    await watch.stop()
    assert watch.fired == [run_id]
    assert "CensusAuthenticationError" in log.text or "401" in log.text
    assert token not in log.text
    assert "revoked-for-now" not in log.text


class LogText:
    """Everything logged from now on: Airflow 3 renders its log lines to standard output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.seen = ""
        capsys.readouterr()

    @property
    def text(self) -> str:
        captured = self.capsys.readouterr()
        self.seen += captured.out + captured.err
        return self.seen


# -- construction, serialization, Airflow ----------------------------------------------------


def test_on_airflow_2_the_trigger_says_what_to_use_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real on 2.11; on Airflow 3 the version check is switched to 2's answer to run the same test."""
    monkeypatch.setattr(sync_events, "AIRFLOW_V_3_0_PLUS", False)
    with pytest.raises(CensusConfigurationError) as raised:
        CensusSyncRunFinishedTrigger(1234)
    message = str(raised.value)
    assert "Airflow 3.0" in message
    assert "CensusSyncRunSensor" in message
    assert "census_sync_asset" in message


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="the version check itself, on Airflow 2")
def test_on_airflow_2_the_real_version_check_refuses() -> None:
    with pytest.raises(CensusConfigurationError, match=r"needs Airflow 3\.0 or later"):
        CensusSyncRunFinishedTrigger(1234)


@needs_airflow_3
@pytest.mark.parametrize("outcomes", [[], ["completed"], ["unknown"], ["succeeded", "nope"]])
def test_outcomes_outside_the_terminal_ones_are_refused(outcomes: list[str]) -> None:
    with pytest.raises(CensusInputError, match="outcomes must be"):
        CensusSyncRunFinishedTrigger(1234, outcomes=outcomes)


def from_classpath(classpath: str, kwargs: dict[str, Any]) -> CensusSyncRunFinishedTrigger:
    module_name, _, class_name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    assert isinstance(trigger, CensusSyncRunFinishedTrigger)
    return trigger


@needs_airflow_3
def test_serialized_kwargs_rebuild_the_same_watch_and_hash() -> None:
    from airflow.triggers.base import BaseEventTrigger

    trigger = CensusSyncRunFinishedTrigger("42", census_conn_id="census_eu", outcomes=["failed", "succeeded", "failed"])
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_census.triggers.sync_events.CensusSyncRunFinishedTrigger"
    assert kwargs == {
        "sync_id": 42,
        "census_conn_id": "census_eu",
        "poll_interval": 60.0,
        "outcomes": ["failed", "succeeded"],
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = from_classpath(classpath, kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert BaseEventTrigger.hash(*rebuilt.serialize()) == BaseEventTrigger.hash(classpath, kwargs)
    assert isinstance(rebuilt, BaseEventTrigger)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the DAG serialization of Airflow 3.3")
def test_a_dag_scheduled_on_a_watched_asset_serializes_and_gives_back_the_trigger() -> None:
    from airflow.sdk import DAG, Asset, AssetWatcher
    from airflow.serialization.serialized_objects import DagSerialization

    trigger = CensusSyncRunFinishedTrigger(1234, poll_interval=30, outcomes=["succeeded", "failed"])
    asset = Asset("census_sync_1234_finished", watchers=[AssetWatcher(name="census_1234", trigger=trigger)])
    with DAG("after_census_sync_1234", schedule=[asset]) as dag:
        pass
    serialized = DagSerialization.to_dict(dag)
    DagSerialization.validate_schema(serialized)
    watchers = list(found_watchers(json.loads(json.dumps(serialized))))
    assert len(watchers) == 1, watchers
    stored = watchers[0]["trigger"]
    classpath, kwargs = trigger.serialize()
    assert stored["classpath"] == classpath
    assert decoded_kwargs(stored["kwargs"]) == kwargs
    assert from_classpath(stored["classpath"], decoded_kwargs(stored["kwargs"])).serialize() == (classpath, kwargs)
    rebuilt = DagSerialization.from_dict(serialized)
    assert rebuilt.dag_id == dag.dag_id


def found_watchers(node: Any) -> Iterator[dict[str, Any]]:
    """Every serialized asset watcher anywhere in a serialized DAG."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "watchers" and isinstance(value, list):
                yield from value
            else:
                yield from found_watchers(value)
    elif isinstance(node, list):
        for item in node:
            yield from found_watchers(item)


def decoded_kwargs(kwargs: Any) -> dict[str, Any]:
    """The trigger kwargs as the triggerer hands them to the class, serde markers stripped."""
    from airflow.serialization.decoders import smart_decode_trigger_kwargs

    decoded = smart_decode_trigger_kwargs(kwargs)
    assert isinstance(decoded, dict), decoded
    return {key: smart_decode_trigger_kwargs(value) for key, value in decoded.items()}
