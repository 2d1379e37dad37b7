"""One population of waits in its own process: N runs watched in one event loop, like a triggerer.

Started by ``benchmarks/run.py``, once per kind, each in a fresh interpreter:

- ``ours``: this provider's ``CensusSyncRunTrigger``, one per run (what N mapped
  ``CensusTriggerSyncOperator`` tasks defer to);
- ``many``: this provider's ``CensusSyncRunsTrigger``, one over all N runs (what one
  ``CensusTriggerSyncsOperator`` task defers to): one event, when the last run ends;
- ``official``: the published provider's ``CensusTrigger`` (run with its own virtualenv's Python,
  since it has the same import name);
- ``floor``: no trigger at all, the least a poller can do: one shared aiohttp session, and each
  wait on its own GETs the run, sleeps the rest of its interval, repeats (first polls spread over
  one interval, as ours spreads them);
- ``lockstep``: the same session, but no wait sleeps on its own: every interval one loop GETs all
  the runs still going in one ``gather`` and wakes their waits when they end (one timer per
  interval for all, the cheapest schedule there is).

Both floors count the interval from when a poll began, as ours does, and have no connection cap
(as ours has none), so that a slow Census gets them the same poll rate. Their timeout is 30 s,
ours' and the official one's default.

The connection comes from ``AIRFLOW_CONN_CENSUS_DEFAULT``. The worker imports and warms up its
code path on a run that has already ended (so lazy imports count neither as memory per trigger
nor as CPU per poll), prints ``{"ready": pid}``, then reads one JSON line
``{"runs": [...], "start_at": epoch, "rss_at": epoch}``. At ``start_at`` it starts every wait;
at ``rss_at`` (when every wait has polled at least once) it reads its resident memory; when the
last wait is over it prints one JSON line with its CPU time, memory, the time and verdict of each
event (``completed``, ``ended`` in another state, or ``error``: the wait gave up) and its failed
polls: requests that timed out or failed on the client side, by exception type. Ours tolerates
failed polls and polls again; the official trigger ends on its first (the triggerer fails the task);
the floors count them and poll again.
For issue 21 (``benchmarks/issue21.py``) the order may also hold ``deadline`` (epoch seconds:
the waits still going then are cancelled, their runs counted lost), ``plans`` (run id -> the
trigger's ``poll_plan``), ``sync_ids``, or ``stream: true``: the runs then come one per line
after the order (``{"run": id, "sync_id": ..., "plan": ..., "poll_state": ...}``, then
``{"end": true}``), each wait started as its line arrives, as a task defers right after its
trigger. ``--runs-per-trigger K`` splits ``many`` into one ``CensusSyncRunsTrigger`` per K runs.
The request budget is set by the connection's extras, which ``run.py`` writes.
With ``--observe-watches`` (ours and many) it also reports when each run's own wait loop (the
provider's ``RunWatch``) saw the run end, wrapped from outside like the failed-poll count: a
many-runs trigger holds every run's end until the last one, so its event time says when the task
resumes, and this time says when the trigger knew. One wrapper call per run, not per poll.
With ``--profile FILE`` it also writes cProfile stats of that measured part (which then costs more
CPU: use it to see where the time goes, not for the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import inspect
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import IO, Any

import psutil

CONN_ID = "census_default"
TERMINAL_STATES = frozenset({"completed", "failed", "skipped", "cancelled", "canceled"})
TIMEOUT_SECONDS = 30.0  # the floors'; ours and the official trigger default to 30 s as well
KINDS = ("ours", "official", "floor", "lockstep", "many")

Waiter = Callable[[int], Awaitable[str]]
"""Waits for one run to end; answers ``completed``, ``ended`` (another end state) or ``error``."""

BatchWaiter = Callable[[list[int]], Awaitable[dict[int, str]]]
"""Waits for all the runs in one trigger; answers each run's verdict, as a ``Waiter`` does."""

FAILED_POLLS: Counter[str] = Counter()
"""Client-side failures of polls (timeouts, dropped connections, errors), by exception type."""

BATCH_EVENTS: dict[int, float] = {}
"""Many-runs triggers: when the event carrying each run came (its trigger's one event)."""

STREAMED_PLANS: dict[str, Any] = {}
STREAMED_SYNCS: dict[str, int] = {}
STREAMED_STATES: dict[str, Any] = {}
"""Streamed runs (see ``watch_all``): each one's poll plan, sync and poll state (where the task's first
look left the polls), as their lines came."""

PLANS: dict[str, Any] = {}
"""Poll plans handed to triggers (``given``), and whether a trigger did not take them (``unsupported``)."""

WATCH_ENDS: dict[int, float] = {}
"""With ``--observe-watches``: epoch seconds when each run's wait loop returned (it saw the run end)."""


def connection() -> tuple[str, str]:
    """The emulator's origin and the token, from the same env connection the triggers read."""
    conn = json.loads(os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])
    return conn["host"].rstrip("/"), conn["password"]


def verdict(status: str | None) -> str:
    if status is None:
        return "error"
    return "completed" if status == "completed" else "ended"


async def first_event(events: AsyncGenerator[Any, None]) -> dict[str, Any]:
    """A trigger's first event, then close its generator, as the triggerer does once it has one."""
    try:
        async for event in events:
            return dict(event.payload)
    finally:
        await events.aclose()
    raise RuntimeError("the trigger ended without an event")


def count_failures(owner: Any, name: str) -> None:
    """Wrap ``owner.name`` (one GET of a run) so that each exception it raises is counted, then re-raised.

    Only the exception path does more work; a poll that succeeds pays one more coroutine frame
    (well under a microsecond, against hundreds per poll).
    """
    original = getattr(owner, name)
    if getattr(original, "_counted", False):
        return

    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        except Exception as exc:
            FAILED_POLLS[type(exc).__name__] += 1
            raise

    counted._counted = True  # type: ignore[attr-defined]
    setattr(owner, name, counted)


def observe_watch_ends() -> None:
    """Record when each run's ``RunWatch.until_done`` returns, in :data:`WATCH_ENDS`."""
    from airflow_provider_census import watch as watch_module

    original = watch_module.RunWatch.until_done
    if getattr(original, "_observed", False):
        return

    async def until_done(self: Any, first_poll_delay: float) -> Any:
        event = await original(self, first_poll_delay)
        WATCH_ENDS[self.sync_run_id] = time.time()
        return event

    until_done._observed = True  # type: ignore[attr-defined]
    watch_module.RunWatch.until_done = until_done  # type: ignore[method-assign]


def outcome_of(payload: dict[str, Any]) -> str:
    """One run's event of ours: ``completed``, ``ended`` or ``error`` (gave up, or a deadline)."""
    if payload["status"] != "finished":  # "error" (too many failed polls in a row) or "timeout"
        return "error"
    return "completed" if (payload.get("summary") or {}).get("outcome") == "succeeded" else "ended"


def plan_kwargs(trigger_class: type, name: str, value: Any) -> dict[str, Any]:
    """``{name: value}`` when there is a value and the trigger takes it, else nothing (see :data:`PLANS`)."""
    if not value:
        return {}
    takes = any(
        name in inspect.signature(cls.__init__).parameters for cls in trigger_class.__mro__ if "__init__" in vars(cls)
    )
    if not takes:
        PLANS["unsupported"] = True
        return {}
    PLANS["given"] = PLANS.get("given", 0) + 1
    return {name: value}


def ours(
    poll_interval: float,
    plans: dict[str, Any] | None = None,
    sync_ids: dict[str, int] | None = None,
    states: dict[str, Any] | None = None,
) -> Waiter:
    """One ``CensusSyncRunTrigger`` per run; with ``plans``, each run's poll plan (JSON) as its
    ``poll_plan``; with ``states``, each run's ``poll_state`` (the task's first look)."""
    from airflow_provider_census.hooks.census_async import CensusAsyncHook
    from airflow_provider_census.triggers.census import CensusSyncRunTrigger

    count_failures(CensusAsyncHook, "aget_sync_run")  # the trigger logs a failed poll and polls again

    async def wait(run_id: int) -> str:
        plan = plan_kwargs(CensusSyncRunTrigger, "poll_plan", (plans or {}).get(str(run_id)))
        sync_id = (sync_ids or {}).get(str(run_id))
        poll_state = (states or {}).get(str(run_id))
        trigger = CensusSyncRunTrigger(
            run_id, sync_id=sync_id, census_conn_id=CONN_ID, poll_interval=poll_interval, poll_state=poll_state, **plan
        )
        return outcome_of(await first_event(trigger.run()))

    return wait


def many(poll_interval: float, runs_per_trigger: int | None = None, plans: dict[str, Any] | None = None) -> BatchWaiter:
    """``CensusSyncRunsTrigger``s over every run, as many-syncs operators defer to them: one over all
    the runs, or one per ``runs_per_trigger`` runs (all in this loop); with ``plans``, their ``poll_plans``."""
    from airflow_provider_census.hooks.census_async import CensusAsyncHook
    from airflow_provider_census.triggers.census import CensusSyncRunsTrigger

    count_failures(CensusAsyncHook, "aget_sync_run")

    async def one_trigger(run_ids: list[int]) -> dict[int, str]:
        given = {str(run_id): (plans or {})[str(run_id)] for run_id in run_ids if str(run_id) in (plans or {})}
        plan = plan_kwargs(CensusSyncRunsTrigger, "poll_plans", given)
        trigger = CensusSyncRunsTrigger(run_ids, census_conn_id=CONN_ID, poll_interval=poll_interval, **plan)
        payload = await first_event(trigger.run())
        at = time.time()
        BATCH_EVENTS.update({run_id: at for run_id in run_ids})
        return {int(run["sync_run_id"]): outcome_of(run) for run in payload["runs"]}

    async def wait_all(run_ids: list[int]) -> dict[int, str]:
        size = runs_per_trigger or len(run_ids)
        chunks = [run_ids[i : i + size] for i in range(0, len(run_ids), size)]
        outcomes: dict[int, str] = {}
        for found in await asyncio.gather(*(one_trigger(chunk) for chunk in chunks)):
            outcomes.update(found)
        return outcomes

    return wait_all


def official(poll_interval: float) -> Waiter:
    from airflow_provider_census.triggers.census import CensusTrigger

    async def wait(run_id: int) -> str:
        trigger = CensusTrigger(sync_run_id=run_id, census_conn_id=CONN_ID, poll_interval=poll_interval)
        try:
            payload = await first_event(trigger.run())
        except Exception as exc:  # its one failed poll ends the trigger: the triggerer fails the task
            FAILED_POLLS[type(exc).__name__] += 1
            return "error"
        return verdict(payload["status"])

    return wait


class Floor:
    """The bare minimum per poll: one GET over a shared keep-alive session, read the status."""

    def __init__(self, poll_interval: float) -> None:
        import aiohttp

        origin, token = connection()
        self.aiohttp = aiohttp
        self.url = origin + "/api/v1/sync_runs/{}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.poll_interval = poll_interval
        self.session: Any = None

    def open(self) -> Any:
        if self.session is None:
            self.session = self.aiohttp.ClientSession(
                headers=self.headers,
                timeout=self.aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
                connector=self.aiohttp.TCPConnector(limit=0),  # no cap, as ours
            )
        return self.session

    async def poll(self, run_id: int) -> str | None:
        """The run's status, or None when the GET failed (counted)."""
        try:
            async with self.open().get(self.url.format(run_id)) as response:
                return str((await response.json())["data"]["status"])
        except (self.aiohttp.ClientError, asyncio.TimeoutError, KeyError, TypeError, ValueError) as exc:
            FAILED_POLLS[type(exc).__name__] += 1
            return None

    async def wait(self, run_id: int) -> str:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, self.poll_interval))  # spread the polls, as ours does
        while True:
            began = loop.time()
            status = await self.poll(run_id)
            if status in TERMINAL_STATES:
                return verdict(status)
            await asyncio.sleep(max(0.0, began + self.poll_interval - loop.time()))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class LockstepFloor(Floor):
    """All waits poll together: one loop wakes every interval and GETs every run still going in one gather."""

    def __init__(self, poll_interval: float) -> None:
        super().__init__(poll_interval)
        self.pending: dict[int, asyncio.Future[str]] = {}
        self.ticker: asyncio.Task[None] | None = None

    async def wait(self, run_id: int) -> str:
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending[run_id] = ended
        if self.ticker is None:
            self.ticker = asyncio.ensure_future(self.tick())
        return await ended

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # the waits started in this loop iteration have all joined
        try:
            while self.pending:
                began = loop.time()
                runs = list(self.pending)
                statuses = await asyncio.gather(*(self.poll(run_id) for run_id in runs))
                for run_id, status in zip(runs, statuses, strict=True):
                    if status in TERMINAL_STATES:
                        self.pending.pop(run_id).set_result(verdict(status))
                if self.pending:
                    await asyncio.sleep(max(0.0, began + self.poll_interval - loop.time()))
        finally:
            self.ticker = None


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def one_by_one(wait: Waiter) -> BatchWaiter:
    """A waiter per run, all at once in this loop, as a batch; each run's verdict."""

    async def wait_all(run_ids: list[int]) -> dict[int, str]:
        outcomes = await asyncio.gather(*(wait(run_id) for run_id in run_ids))
        return dict(zip(run_ids, outcomes, strict=True))

    return wait_all


async def watch_all(
    wait: Waiter | None,
    runs: list[int],
    rss_at: float,
    batch: BatchWaiter | None = None,
    deadline: float | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """Every wait at once in this loop; the time and verdict of each event, and memory at ``rss_at``.

    ``batch`` (many-runs triggers) waits for all the runs at once instead: each run's event time
    is that of its trigger's one event. At ``deadline`` (epoch seconds) the waits still going are
    cancelled: their runs get no event (lost), and ``cut`` says how many. With ``stream`` (ours
    only), ``runs`` starts empty and each run comes on its own line of stdin, its wait started at once.
    """
    events: dict[str, list[Any]] = {}
    memory: dict[str, int] = {}

    async def one(run_id: int) -> None:
        assert wait is not None
        outcome = await wait(run_id)
        events[str(run_id)] = [time.time(), outcome]

    async def together() -> None:
        assert batch is not None
        outcomes = await batch(runs)
        at = time.time()
        events.update({str(run_id): [BATCH_EVENTS.get(run_id, at), outcome] for run_id, outcome in outcomes.items()})

    async def sample_memory() -> None:
        await asyncio.sleep(max(0.0, rss_at - time.time()))
        memory["rss_during"] = rss()

    async def streamed() -> None:
        """Start each wait as its line comes (``{"run": id, "sync_id": ..., "plan": ...}``), until ``{"end": true}``."""
        loop = asyncio.get_running_loop()
        started: list[asyncio.Future[None]] = []
        while True:
            line = json.loads(await loop.run_in_executor(None, sys.stdin.readline) or '{"end": true}')
            if line.get("end"):
                break
            run_id = int(line["run"])
            runs.append(run_id)
            STREAMED_PLANS.update({str(run_id): line["plan"]} if line.get("plan") else {})
            STREAMED_SYNCS.update({str(run_id): line["sync_id"]} if line.get("sync_id") else {})
            STREAMED_STATES.update({str(run_id): line["poll_state"]} if line.get("poll_state") else {})
            started.append(asyncio.ensure_future(one(run_id)))
        await asyncio.gather(*started)

    sampler = asyncio.ensure_future(sample_memory())
    if stream:
        waits = asyncio.ensure_future(streamed())
    elif batch is not None:
        waits = asyncio.ensure_future(together())
    else:
        waits = asyncio.ensure_future(asyncio.gather(*(one(run_id) for run_id in runs)))
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    done, _ = await asyncio.wait([waits], timeout=timeout)
    cut = 0
    if not done:
        waits.cancel()
        await asyncio.gather(waits, return_exceptions=True)
        cut = len(runs) - len(events)
    else:
        waits.result()
    if not sampler.done():  # every wait ended before the sample: there is nothing to measure
        sampler.cancel()
    return {"events": events, "cut_at_deadline": cut, "runs": len(runs), **memory}


def waiters(kind: str, poll_interval: float) -> tuple[Waiter | None, BatchWaiter, Floor | None]:
    """The measured waiter (None for many), the batch one to warm up with, and the floor to close (if any)."""
    if kind == "many":
        return None, many(0.01), None  # its warm-up: a tiny interval, one poll
    if kind in ("floor", "lockstep"):
        floor = (LockstepFloor if kind == "lockstep" else Floor)(poll_interval)
        return floor.wait, one_by_one(floor.wait), floor  # the same session, warmed up
    make = {"ours": ours, "official": official}[kind]
    # A tiny interval for the warm-up, so that it takes one poll.
    return make(poll_interval), one_by_one(make(0.01)), None


def measured_waiters(
    kind: str, poll_interval: float, order: dict[str, Any], runs_per_trigger: int | None, wait: Waiter | None
) -> tuple[Waiter | None, BatchWaiter | None]:
    """The waiters of the measured part: with the order's poll plans (and the runs' syncs) for ours and many."""
    plans, sync_ids = order.get("plans"), order.get("sync_ids")
    states = None
    if order.get("stream"):
        plans, sync_ids, states = STREAMED_PLANS, STREAMED_SYNCS, STREAMED_STATES
    if kind == "many":
        return None, many(poll_interval, runs_per_trigger, plans)
    if kind == "ours" and (plans is not None or sync_ids is not None):
        return ours(poll_interval, plans, sync_ids, states), None
    return wait, None


async def main_async(
    channel: IO[str],
    kind: str,
    poll_interval: float,
    warm_run: int,
    profile: str | None,
    runs_per_trigger: int | None = None,
) -> dict[str, Any]:
    wait, warm, floor = waiters(kind, poll_interval)
    # Warm up the whole code path (lazy imports, first session, connection parsing) on a run
    # that has already ended.
    await warm([warm_run])
    FAILED_POLLS.clear()
    WATCH_ENDS.clear()
    BATCH_EVENTS.clear()
    PLANS.clear()
    print(json.dumps({"ready": os.getpid()}), file=channel, flush=True)
    order = json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    wait, batch = measured_waiters(kind, poll_interval, order, runs_per_trigger, wait)
    gc.collect()
    rss_before = rss()
    await asyncio.sleep(max(0.0, order["start_at"] - time.time()))
    profiler = cProfile.Profile() if profile else None
    cpu_start, wall_start = time.process_time(), time.time()
    if profiler:
        profiler.enable()
    runs = [] if order.get("stream") else order["runs"]
    result = await watch_all(wait, runs, order["rss_at"], batch, order.get("deadline"), bool(order.get("stream")))
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    cpu = time.process_time() - cpu_start
    wall = time.time() - wall_start
    if floor is not None:
        await floor.close()
    return {
        "kind": kind,
        "pid": os.getpid(),
        "triggers": result["runs"],
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "rss_before": rss_before,
        "failed_polls": dict(FAILED_POLLS),
        "watch_ends": {str(run_id): at for run_id, at in WATCH_ENDS.items()},
        "plans": dict(PLANS),
        **result,
    }


def protocol_channel() -> IO[str]:
    """Keep stdout for the JSON lines alone: anything else printed (Airflow's logs) goes to stderr."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return channel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--warm-run", type=int, required=True, help="an ended run to warm up on")
    parser.add_argument("--profile", help="write cProfile stats of the measured part to this file")
    parser.add_argument("--slot-seconds", type=float, help="ours: the triggers' wake-up slot instead of 0.25 s")
    parser.add_argument(
        "--runs-per-trigger", type=int, help="many: one CensusSyncRunsTrigger per this many runs (default: one for all)"
    )
    parser.add_argument(
        "--observe-watches", action="store_true", help="ours, many: report when each run's wait loop saw it end"
    )
    args = parser.parse_args()
    if args.observe_watches:
        observe_watch_ends()
    if args.slot_seconds is not None:
        from airflow_provider_census import watch as watch_module

        watch_module.POLL_SLOT_SECONDS = args.slot_seconds
    channel = protocol_channel()
    result = asyncio.run(
        main_async(channel, args.kind, args.poll_interval, args.warm_run, args.profile, args.runs_per_trigger)
    )
    print(json.dumps(result), file=channel, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
