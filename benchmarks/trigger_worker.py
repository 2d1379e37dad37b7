"""One population of waits in its own process: N runs watched in one event loop, like a triggerer.

Started by ``benchmarks/run.py``, once per kind, each in a fresh interpreter:

- ``ours``: this provider's ``CensusSyncRunTrigger``;
- ``official``: the published provider's ``CensusTrigger`` (run with its own virtualenv's Python,
  since it has the same import name);
- ``floor``: no trigger at all, the least a poller can do: one shared aiohttp session, GET the
  run, sleep, repeat.

The connection comes from ``AIRFLOW_CONN_CENSUS_DEFAULT``. The worker imports and warms up its
code path on a run that has already ended (so lazy imports count neither as memory per trigger
nor as CPU per poll), prints ``{"ready": pid}``, then reads one JSON line
``{"runs": [...], "start_at": epoch, "rss_at": epoch}``. At ``start_at`` it starts every wait;
at ``rss_at`` (when every wait has polled at least once) it reads its resident memory; when the
last wait is over it prints one JSON line with its CPU time, memory and the time of each event.
With ``--profile FILE`` it also writes cProfile stats of that measured part (which then costs more
CPU: use it to see where the time goes, not for the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import random
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import IO, Any

import psutil

CONN_ID = "census_default"
TERMINAL_STATES = frozenset({"completed", "failed", "skipped", "cancelled", "canceled"})

Waiter = Callable[[int], Awaitable[bool]]
"""Waits for one run to end; answers whether the event said the run completed."""


def connection() -> tuple[str, str]:
    """The emulator's origin and the token, from the same env connection the triggers read."""
    conn = json.loads(os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])
    return conn["host"].rstrip("/"), conn["password"]


async def first_event(events: AsyncGenerator[Any, None]) -> dict[str, Any]:
    """A trigger's first event, then close its generator, as the triggerer does once it has one."""
    try:
        async for event in events:
            return dict(event.payload)
    finally:
        await events.aclose()
    raise RuntimeError("the trigger ended without an event")


def ours(poll_interval: float) -> Waiter:
    from airflow_provider_census.triggers.census import CensusSyncRunTrigger

    async def wait(run_id: int) -> bool:
        trigger = CensusSyncRunTrigger(run_id, census_conn_id=CONN_ID, poll_interval=poll_interval)
        payload = await first_event(trigger.run())
        return payload["status"] == "finished" and (payload.get("summary") or {}).get("outcome") == "succeeded"

    return wait


def official(poll_interval: float) -> Waiter:
    from airflow_provider_census.triggers.census import CensusTrigger

    async def wait(run_id: int) -> bool:
        trigger = CensusTrigger(sync_run_id=run_id, census_conn_id=CONN_ID, poll_interval=poll_interval)
        payload = await first_event(trigger.run())
        return payload["status"] == "completed"

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

    async def wait(self, run_id: int) -> bool:
        if self.session is None:
            self.session = self.aiohttp.ClientSession(headers=self.headers)
        await asyncio.sleep(random.uniform(0, self.poll_interval))  # spread the polls, as ours does
        while True:
            async with self.session.get(self.url.format(run_id)) as response:
                status = (await response.json())["data"]["status"]
            if status in TERMINAL_STATES:
                return status == "completed"
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


async def watch_all(wait: Waiter, runs: list[int], rss_at: float) -> dict[str, Any]:
    """Every wait at once in this loop; the time and verdict of each event, and memory at ``rss_at``."""
    events: dict[str, list[Any]] = {}
    memory: dict[str, int] = {}

    async def one(run_id: int) -> None:
        completed = await wait(run_id)
        events[str(run_id)] = [time.time(), completed]

    async def sample_memory() -> None:
        await asyncio.sleep(max(0.0, rss_at - time.time()))
        memory["rss_during"] = rss()

    sampler = asyncio.ensure_future(sample_memory())
    await asyncio.gather(*(one(run_id) for run_id in runs))
    if not sampler.done():  # every wait ended before the sample: there is nothing to measure
        sampler.cancel()
    return {"events": events, **memory}


async def main_async(
    channel: IO[str], kind: str, poll_interval: float, warm_run: int, profile: str | None
) -> dict[str, Any]:
    floor = Floor(poll_interval) if kind == "floor" else None
    wait = floor.wait if floor else {"ours": ours, "official": official}[kind](poll_interval)
    # Warm up the whole code path (lazy imports, first session, connection parsing) on a run
    # that has already ended, with a tiny interval so it takes one poll.
    warm = floor.wait if floor else {"ours": ours, "official": official}[kind](0.01)
    await warm(warm_run)
    print(json.dumps({"ready": os.getpid()}), file=channel, flush=True)
    order = json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    gc.collect()
    rss_before = rss()
    await asyncio.sleep(max(0.0, order["start_at"] - time.time()))
    profiler = cProfile.Profile() if profile else None
    cpu_start, wall_start = time.process_time(), time.time()
    if profiler:
        profiler.enable()
    result = await watch_all(wait, order["runs"], order["rss_at"])
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
        "triggers": len(order["runs"]),
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "rss_before": rss_before,
        **result,
    }


def protocol_channel() -> IO[str]:
    """Keep stdout for the JSON lines alone: anything else printed (Airflow's logs) goes to stderr."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return channel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["ours", "official", "floor"])
    parser.add_argument("--poll-interval", type=float, required=True)
    parser.add_argument("--warm-run", type=int, required=True, help="an ended run to warm up on")
    parser.add_argument("--profile", help="write cProfile stats of the measured part to this file")
    args = parser.parse_args()
    channel = protocol_channel()
    result = asyncio.run(main_async(channel, args.kind, args.poll_interval, args.warm_run, args.profile))
    print(json.dumps(result), file=channel, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
