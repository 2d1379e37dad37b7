"""Issue 21's measurements: the request budget under Census's limit, adaptive polling, the budget's cost.

Three parts of ``benchmarks/run.py`` (``--part budget,history,cost``), each printed as a table,
figures beside their targets, never asserted:

- ``budget``: N waits per population against an emulator of its own limited to L requests per
  second (``--rate-limit``), populations side by side, each in its own worker process: ours with
  the budget learning the limit, as single-run triggers and as many-runs triggers of 1,000 runs;
  ours with the budget off (today's fixed polling); the published 2.1 trigger. Polls offered
  (N / poll interval) are at least 20 times the limit.
- ``history``: syncs whose runs follow their own history (log-normal durations around each
  sync's median, medians 1 to 30 minutes, compressed in time), in three cohorts: consistent
  (spread 0.1), without history, erratic (spread 0.6). Each sync has a twin with the same
  durations; one is polled by its plan (adaptive), the other every poll_interval (fixed).
- ``cost``: the scale scenario's shape (1,000 waits, 300 ms per request, no limit met), ours
  with the budget learning beside ours with it off: CPU per poll, memory per wait, connections.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from run import (
    ConnectionCounter,
    Emulator,
    Scenario,
    Worker,
    percentile,
    ratio,
    start_worker,
    table,
)

from airflow_provider_census.testing.ratelimit import busiest_window

LEARN = {"request_budget": "learn"}
OFF = {"request_budget": "off"}
RATE_LIMITED = "rate_limit"  # the request log's fault for a request the emulator's limit refused
EARLY_SECONDS = 30.0  # the budget part tells what happened in the first seconds (learning the limit) from later


@dataclass(frozen=True)
class Population:
    """One population of waits: the worker kind, the connection's budget extras, how runs are grouped."""

    name: str
    label: str
    kind: str  # trigger_worker.py's kind: ours, many, official
    budget: dict[str, Any] | None = None
    runs_per_trigger: int | None = None

    def worker_options(self) -> list[str]:
        options = ["--observe-watches"] if self.kind in ("ours", "many") else []
        if self.runs_per_trigger:
            options += ["--runs-per-trigger", str(self.runs_per_trigger)]
        return options


def scripted_runs(emulator: Emulator, ends_in: Sequence[float]) -> dict[int, float]:
    """One scripted run per offset (seconds from now): run id -> its end, epoch seconds."""
    return dict(emulator.start_run(offset) for offset in ends_in)


def in_threads(jobs: dict[str, Any]) -> dict[str, Any]:
    """Call each job (no arguments) in its own thread: the emulators are separate processes."""
    found: dict[str, Any] = {}
    errors: list[BaseException] = []

    def call(name: str, job: Any) -> None:
        try:
            found[name] = job()
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return found


def request_log(emulator: Emulator) -> list[dict[str, Any]]:
    return list(emulator.call("requests")["requests"])


def run_gets(log: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Each run's ``GET /sync_runs/{id}`` requests, from an emulator's log."""
    prefix = "/api/v1/sync_runs/"
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item in log:
        tail = item["path"].removeprefix(prefix)
        if item["method"] == "GET" and item["path"].startswith(prefix) and tail.isdigit():
            found[int(tail)].append(item)
    return found


def windows_over(moments: Sequence[float], limit: int, start: float) -> list[int]:
    """The whole seconds (counted from ``start``) in which more than ``limit`` requests arrived."""
    counts: dict[int, int] = defaultdict(int)
    for moment in moments:
        counts[math.floor(moment - start)] += 1
    return sorted(second for second, count in counts.items() if count > limit)


def lag_stats(lags: Sequence[float]) -> dict[str, float]:
    nan = float("nan")
    return {
        "p50": percentile(lags, 0.50) if lags else nan,
        "p95": percentile(lags, 0.95) if lags else nan,
        "p99": percentile(lags, 0.99) if lags else nan,
        "max": max(lags) if lags else nan,
    }


# -- part budget: many waits under Census's limit ---------------------------------------------------


@dataclass(frozen=True)
class BudgetScenario:
    waits: int = 10_000
    limit: int = 50  # requests per second per token, the emulator's --rate-limit
    poll_interval: float = 10.0
    latency: float = 0.3
    first_end: float = 60.0  # runs end evenly from this many seconds after the start ...
    last_end: float = 360.0  # ... to this many
    runs_per_trigger: int = 1000
    deadline: float = 1200.0  # seconds after the start: waits still going are cut (their runs lost)

    @property
    def offered(self) -> float:
        """Polls per second the waits ask for: one per wait per interval."""
        return self.waits / self.poll_interval

    @property
    def sweep(self) -> float:
        """Seconds to poll every wait once at the limit: the least a run's detection can be bounded by."""
        return self.waits / self.limit

    def end_offsets(self) -> list[float]:
        step = (self.last_end - self.first_end) / max(1, self.waits - 1)
        return [self.first_end + i * step for i in range(self.waits)]

    def as_scenario(self) -> Scenario:
        return Scenario(
            "budget",
            latency=self.latency,
            triggers=self.waits,
            poll_interval=self.poll_interval,
            first_end=self.first_end,
            last_end=self.last_end,
        )


BUDGET_SCENARIO = BudgetScenario()
QUICK_BUDGET_SCENARIO = BudgetScenario(
    waits=400, limit=8, poll_interval=2.5, first_end=15.0, last_end=45.0, runs_per_trigger=100, deadline=240.0
)


def budget_populations(scenario: BudgetScenario, official: bool, cap: bool) -> list[Population]:
    k = scenario.runs_per_trigger
    populations = [
        Population("learn", "ours, budget learn", "ours", LEARN),
        Population("learn-many", f"ours, learn, triggers of {k} runs", "many", LEARN, runs_per_trigger=k),
        Population("off", "ours, budget off (fixed)", "ours", OFF),
    ]
    if cap:
        capped = {**LEARN, "max_requests_per_second": scenario.limit}
        populations.append(Population("cap", f"ours, cap {scenario.limit}/s", "ours", capped))
    if official:
        populations.append(Population("official", "official 2.1.0", "official"))
    return populations


def run_side_by_side(
    populations: list[Population],
    pythons: dict[str, str],
    emulators: dict[str, Emulator],
    scenario: Scenario,
    home: Path,
    orders: dict[str, dict[str, Any]],
    *,
    sample_every: float,
) -> tuple[dict[str, dict[str, Any]], ConnectionCounter]:
    """Start each population's worker, wait until all are warm, hand out the orders, collect results."""
    workers: dict[str, Worker] = {}
    try:
        for population in populations:
            workers[population.name] = start_worker(
                population.kind,
                pythons[population.kind],
                scenario,
                emulators[population.name],
                home,
                None,
                population.worker_options(),
                name=population.name,
                connection_extra=population.budget,
            )
        for worker in workers.values():
            worker.receive()  # {"ready": pid}
        counter = ConnectionCounter({w.process.pid: w.emulator.port for w in workers.values()}, sample_every)
        counter.start()
        for name, worker in workers.items():
            worker.send(orders[name])
        results = {name: worker.receive() for name, worker in workers.items()}
        counter.stop()
        for worker in workers.values():
            worker.process.wait(timeout=60)
    finally:
        for worker in workers.values():
            if worker.process.poll() is None:
                worker.process.kill()
    return results, counter


def budget_benchmark(
    pythons: dict[str, str],
    scenario: BudgetScenario,
    *,
    official: bool,
    cap: bool,
    only: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every population (or those named in ``only``) against an emulator of its own, limited to
    ``scenario.limit`` requests per second."""
    pythons = {"many": pythons["ours"], **pythons}
    populations = budget_populations(scenario, official and "official" in pythons, cap)
    populations = [p for p in populations if not only or p.name in only]
    base = scenario.as_scenario()
    with tempfile.TemporaryDirectory(prefix="census-bench-budget-") as tmp:
        home = Path(tmp)
        options = ["--rate-limit", str(scenario.limit)]
        emulators: dict[str, Emulator] = {}
        try:
            for population in populations:
                log = home / f"emulator-{population.name}.log"
                emulators[population.name] = Emulator(pythons["ours"], scenario.latency, log, options)
            # Scripting 10,000 runs per emulator takes a while: every emulator at once, then a common start.
            setup = 5.0 + 0.003 * scenario.waits
            planned_start = time.time() + setup
            offsets = scenario.end_offsets()

            def script(emulator: Emulator) -> dict[int, float]:
                return scripted_runs(emulator, [planned_start + offset - time.time() for offset in offsets])

            ends = in_threads({name: (lambda e=emulator: script(e)) for name, emulator in emulators.items()})
            start_at = max(planned_start, time.time() + 0.5)
            orders = {
                name: {
                    "runs": list(ends[name]),
                    "start_at": start_at,
                    "rss_at": start_at + scenario.poll_interval + 2 * scenario.latency + 1.0,
                    "deadline": start_at + scenario.deadline,
                }
                for name in emulators
            }
            results, counter = run_side_by_side(
                populations, pythons, emulators, base, home, orders, sample_every=min(1.0, 2 * scenario.latency / 3)
            )
            logs = in_threads({name: (lambda e=emulator: request_log(e)) for name, emulator in emulators.items()})
        finally:
            for emulator in emulators.values():
                emulator.close()
    found = {}
    for population in populations:
        name = population.name
        result = results[name]
        found[name] = budget_figures(
            result, ends[name], logs[name], counter.counts(result["pid"]), scenario, start_at
        ) | {"label": population.label}
    return found


def budget_figures(
    result: dict[str, Any],
    ends: dict[int, float],
    log: list[dict[str, Any]],
    connections: tuple[int, int],
    scenario: BudgetScenario,
    start_at: float,
) -> dict[str, Any]:
    """One population's row under the limit."""
    n = len(ends)
    measured = [item for item in log if item["started_at"] >= start_at - 0.5]  # not the warm-up
    arrived = [item["started_at"] for item in measured]
    refused = [item["started_at"] for item in measured if item.get("fault") == RATE_LIMITED]
    accepted = [item["started_at"] for item in measured if item.get("fault") != RATE_LIMITED]
    events = result["events"]
    watch_ends = result.get("watch_ends", {})
    completed = [run_id for run_id, (_at, outcome) in events.items() if outcome == "completed"]
    failed = sum(1 for _at, outcome in events.values() if outcome == "error")
    wrong = sum(1 for _at, outcome in events.values() if outcome not in ("completed", "error"))
    missing = n - len(events)
    # Detection: when the run's own wait saw its end (ours), else the event (official); completed runs only.
    seen = {run_id: float(watch_ends.get(run_id, events[run_id][0])) for run_id in completed}
    lags = [at - ends[int(run_id)] for run_id, at in seen.items()]
    event_lags = [float(events[run_id][0]) - ends[int(run_id)] for run_id in completed]
    gets = run_gets(measured)
    accepted_polls = sum(1 for items in gets.values() for item in items if item.get("fault") != RATE_LIMITED)
    rss_during = result.get("rss_during")
    nan = float("nan")
    failed_by_kind: dict[str, int] = result.get("failed_polls", {})
    return {
        "waits": n,
        "busiest_arrived": busiest_window(arrived),
        "busiest_accepted": busiest_window(accepted),
        "busiest_refused": busiest_window(refused),
        "seconds_over": windows_over(arrived, scenario.limit, start_at),
        "refused_early": sum(1 for moment in refused if moment < start_at + EARLY_SECONDS),
        "requests": len(measured),
        "refused": len(refused),
        "accepted_polls": accepted_polls,
        "completed": len(completed),
        "failed_waits": failed,
        "wrong_events": wrong,
        "lost_runs": missing + wrong,
        "cut_at_deadline": result.get("cut_at_deadline", 0),
        "lag": lag_stats(lags),
        "event_lag": lag_stats(event_lags),
        "cpu_seconds": result["cpu_seconds"],
        "cpu_ms_per_request": 1000 * result["cpu_seconds"] / max(1, len(measured)),
        "cpu_ms_per_accepted": 1000 * result["cpu_seconds"] / max(1, accepted_polls),
        "rss_kb_per_wait": (rss_during - result["rss_before"]) / 1024 / n if rss_during else nan,
        "connections": connections[0],
        "connections_peak": connections[1],
        "failed_polls": sum(failed_by_kind.values()),
        "failed_polls_by_kind": failed_by_kind,
        "last_event_s": max((float(at) for at, _o in events.values()), default=start_at) - start_at,
        "wall_seconds": result["wall_seconds"],
    }


def over_split(seconds: Sequence[int]) -> str:
    early = sum(1 for second in seconds if second < EARLY_SECONDS)
    return f"{early} / {len(seconds) - early}"


def refused_split(figures: dict[str, Any]) -> str:
    return f"{figures['refused_early']} / {figures['refused'] - figures['refused_early']}"


def fmt_lag(stats: dict[str, float], first: str = "p50", second: str = "p99") -> str:
    return f"{stats[first]:.1f} / {stats[second]:.1f}"


def print_budget(found: dict[str, dict[str, Any]], scenario: BudgetScenario) -> None:
    names = list(found)
    print(
        f"\nUnder Census's limit (issue 21): {scenario.waits} waits per population in one event loop, "
        f"emulator limited to {scenario.limit} requests/s per token ({scenario.latency * 1000:.0f} ms per request), "
        f"poll interval {scenario.poll_interval:g} s: {scenario.offered:.0f} polls/s offered, "
        f"{scenario.offered / scenario.limit:.0f}x the limit; runs end {scenario.first_end:g}-{scenario.last_end:g} s "
        f"after the start; at the limit, polling every wait once takes {scenario.sweep:.0f} s. Side by side, each "
        "population in its own process against its own emulator (the limit is per token).\n"
    )
    L = scenario.limit
    rows: list[tuple[str, Any, str]] = [
        ("busiest 1 s at Census: arrived (accepted + refused)", lambda f: f"{f['busiest_arrived']}", f"<= {L}"),
        ("busiest 1 s: accepted / refused", lambda f: f"{f['busiest_accepted']} / {f['busiest_refused']}", ""),
        ("whole seconds with more than the limit arriving", lambda f: f"{len(f['seconds_over'])}", "0"),
        (f"  of which in the first {EARLY_SECONDS:g} s / later", lambda f: over_split(f["seconds_over"]), ""),
        ("requests in all / refused (429)", lambda f: f"{f['requests']} / {f['refused']}", ""),
        (f"  refused in the first {EARLY_SECONDS:g} s / later", refused_split, ""),
        ("runs completed and reported", lambda f: f"{f['completed']}", f"{scenario.waits}"),
        ("failed waits (gave up: error event)", lambda f: f"{f['failed_waits']}", "0"),
        ("lost runs (no event by the deadline, or a wrong one)", lambda f: f"{f['lost_runs']}", "0"),
        ("detection lag p50 / p99 (s)", lambda f: fmt_lag(f["lag"]), "reported"),
        ("event lag p50 / p99 (s)", lambda f: fmt_lag(f["event_lag"]), ""),
        ("last event after the start (s)", lambda f: f"{f['last_event_s']:.0f}", ""),
        ("CPU per request sent (ms)", lambda f: f"{f['cpu_ms_per_request']:.3f}", ""),
        ("CPU per accepted poll (ms)", lambda f: f"{f['cpu_ms_per_accepted']:.3f}", ""),
        ("RSS added per wait (KB)", lambda f: f"{f['rss_kb_per_wait']:.1f}", ""),
        ("TCP connections opened / at peak", lambda f: f"{f['connections']} / {f['connections_peak']}", ""),
    ]
    header = ["figure", *(found[n]["label"] for n in names), "target"]
    body = [[label, *(cell(found[n]) for n in names), target] for label, cell, target in rows]
    print(table([header, *body]))
    failures = [
        f"{found[n]['label']}: " + ", ".join(f"{k} x{v}" for k, v in sorted(found[n]["failed_polls_by_kind"].items()))
        for n in names
        if found[n]["failed_polls_by_kind"]
    ]
    if failures:
        print(f"\nfailed polls seen by the workers, by exception: {'; '.join(failures)}")
    print()
    verdicts = [["target", *(found[n]["label"] for n in names)]]
    verdicts.append(["never above the limit per 1 s", *(met(found[n]["busiest_arrived"] <= L) for n in names)])
    verdicts.append(["0 failed waits", *(met(found[n]["failed_waits"] == 0) for n in names)])
    verdicts.append(["0 lost runs", *(met(found[n]["lost_runs"] == 0) for n in names)])
    print(table(verdicts))


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- part history: adaptive against fixed polling ----------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    name: str
    spread: float
    history: int  # past runs the sync's run list shows
    share: float = 1.0  # of the scenario's syncs per cohort


COHORTS = (
    Cohort("consistent", 0.1, 20),
    # Polled exactly as fixed (no plan: the same code, the same first look), so fewer runs tell as much.
    Cohort("no history", 0.1, 0, share=0.5),
    Cohort("erratic", 0.6, 20, share=0.5),
)


@dataclass(frozen=True)
class HistoryScenario:
    syncs: int = 400  # in the consistent cohort (the others: their share); each has a twin of the same durations
    poll_interval: float = 60.0  # real seconds, before compression
    median_range: tuple[float, float] = (60.0, 1800.0)  # real seconds: 1 to 30 minutes, log-uniform
    compress: float = 30.0  # real seconds per benchmark second
    deadline: float = 330.0  # benchmark seconds after the start: runs not ended by then are left out
    seed: int = 21
    cohorts: tuple[Cohort, ...] = field(default=COHORTS)

    @property
    def interval(self) -> float:
        """The poll interval the waits run with, compressed."""
        return self.poll_interval / self.compress


HISTORY_SCENARIO = HistoryScenario()
QUICK_HISTORY_SCENARIO = HistoryScenario(syncs=30, median_range=(60.0, 600.0), deadline=120.0)


def history_plan(base_url: str, token: str, sync_id: int, scenario: HistoryScenario) -> dict[str, Any] | None:
    """The poll plan of a run of ``sync_id``, as the operator makes it: the sync's run list read, its
    completed durations summarized, ``plan_polls`` at the interval. Made in real seconds (durations
    and interval times the compression), then compressed, so that its seconds-valued floors
    (``schedule.MIN_WINDOW_GAP_SECONDS``) stay as they are in real time. None: fixed polling."""
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.core.schedule import HISTORY_RUNS, completed_durations, plan_polls, summarize

    url = f"{base_url}/syncs/{sync_id}/sync_runs?per_page={HISTORY_RUNS}&order=desc"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        runs = [SyncRun.from_api(item) for item in json.loads(answer.read())["data"]]
    real = [duration * scenario.compress for duration in completed_durations(runs)]
    plan = plan_polls(summarize(real), scenario.poll_interval)
    if plan is None:
        return None
    squeezed = {key: value / scenario.compress for key, value in asdict(plan).items()}
    return squeezed


def first_look(emulator: Emulator, run_id: int, interval: float, plan: dict[str, Any] | None) -> dict[str, Any]:
    """The task's first look at its run, right after the trigger (one GET, as the operator makes it), and
    the poll state the trigger goes on from: the next poll where the wait's rules place it."""
    from airflow_provider_census.core.schedule import ScheduledPolls
    from airflow_provider_census.core.wait import PollState, WaitRules

    began = time.time()
    request = urllib.request.Request(
        f"{emulator.base_url}/sync_runs/{run_id}", headers={"Authorization": f"Bearer {emulator.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        status = json.loads(answer.read())["data"]["status"]
    if status not in ("queued", "working"):
        raise RuntimeError(f"run {run_id} is {status} at its first look: runs this short do not belong here")
    rules = WaitRules(poll_interval=interval, schedule=ScheduledPolls.from_json(plan))
    return PollState(poll_at=rules.next_poll(began)).to_json()


def history_benchmark(python: str, scenario: HistoryScenario) -> dict[str, Any]:
    """Twin syncs per cohort, one polled adaptively and one at a fixed interval, side by side."""
    rng = random.Random(scenario.seed)
    low, high = scenario.median_range
    base = Scenario("history", 0.0, 0, scenario.interval, 0.0, 0.0)
    with tempfile.TemporaryDirectory(prefix="census-bench-history-") as tmp:
        home = Path(tmp)
        emulator = Emulator(python, 0.0, home / "emulator-history.log")
        try:
            syncs: list[dict[str, Any]] = []
            for number, cohort in enumerate(scenario.cohorts):
                for i in range(max(1, round(scenario.syncs * cohort.share))):
                    median = math.exp(rng.uniform(math.log(low), math.log(high))) / scenario.compress
                    model = {
                        "median": median,
                        "spread": cohort.spread,
                        "seed": scenario.seed * 1_000_000 + number * 10_000 + i,
                        "queued_seconds": 1.0 / scenario.compress,
                    }
                    twins = {
                        mode: emulator.call("history_sync", model=model, history=cohort.history)["sync_id"]
                        for mode in ("adaptive", "fixed")
                    }
                    syncs.append({"cohort": cohort.name, "median": median, "twins": twins})
            plans_by_sync = {
                sync["twins"]["adaptive"]: history_plan(
                    emulator.base_url, emulator.token, sync["twins"]["adaptive"], scenario
                )
                for sync in syncs
            }
            populations = [Population(mode, mode, "ours", None) for mode in ("adaptive", "fixed")]
            pythons = {"ours": python}
            workers: dict[str, Worker] = {}
            try:
                for population in populations:
                    workers[population.name] = start_worker(
                        "ours", python, base, emulator, home, None, name=population.name
                    )
                for worker in workers.values():
                    worker.receive()
                start_at = time.time() + 0.2
                for worker in workers.values():
                    worker.send({"stream": True, "start_at": start_at, "rss_at": start_at + scenario.deadline + 1,
                                 "deadline": start_at + scenario.deadline})  # fmt: skip
                time.sleep(0.3)
                # Twins triggered back to back, each run handed to its worker as soon as Census answered
                # (as a task defers right after its trigger): its plan counts from that answer.
                runs: dict[str, dict[int, dict[str, Any]]] = {"adaptive": {}, "fixed": {}}
                for sync in syncs:
                    for mode, sync_id in sync["twins"].items():
                        answer = emulator.call("trigger", sync_id=sync_id)
                        started_at = time.time()
                        run_id = int(answer["run_id"])
                        runs[mode][run_id] = {"sync_id": sync_id, "ends_at": float(answer["ends_at"]),
                                              "started_at": started_at, "cohort": sync["cohort"]}  # fmt: skip
                        line: dict[str, Any] = {"run": run_id, "sync_id": sync_id}
                        plan = plans_by_sync.get(sync_id) if mode == "adaptive" else None
                        if plan is not None:
                            line["plan"] = {"started_at": started_at, "plan": plan}
                        line["poll_state"] = first_look(emulator, run_id, scenario.interval, line.get("plan"))
                        workers[mode].send(line)
                for worker in workers.values():
                    worker.send({"end": True})
                results = {name: worker.receive() for name, worker in workers.items()}
            finally:
                for worker in workers.values():
                    if worker.process.poll() is None:
                        worker.process.kill()
            del pythons
            gets = run_gets(request_log(emulator))
        finally:
            emulator.close()
    return history_figures(scenario, syncs, runs, results, gets, plans_by_sync)


def history_figures(
    scenario: HistoryScenario,
    syncs: list[dict[str, Any]],
    runs: dict[str, dict[int, dict[str, Any]]],
    results: dict[str, dict[str, Any]],
    gets: dict[int, list[dict[str, Any]]],
    plans_by_sync: dict[int, dict[str, Any] | None],
) -> dict[str, Any]:
    """Per cohort and mode: lag p50/p95 and GETs per run, over the twins both of which ended in time."""
    run_of = {mode: {run["sync_id"]: run_id for run_id, run in runs[mode].items()} for mode in runs}
    found: dict[str, Any] = {"plans_taken": results["adaptive"].get("plans", {}), "cohorts": {}}
    for cohort in scenario.cohorts:
        members = [sync for sync in syncs if sync["cohort"] == cohort.name]
        found["cohorts"][cohort.name] = pair_figures(members, runs, run_of, results, gets, plans_by_sync)
        planned = [sync for sync in members if plans_by_sync[sync["twins"]["adaptive"]] is not None]
        if 0 < len(planned) < len(members):  # the syncs a plan was made for, alone: what the plan itself does
            found["cohorts"][f"{cohort.name}, planned"] = pair_figures(
                planned, runs, run_of, results, gets, plans_by_sync
            )
    return found


def pair_figures(
    members: list[dict[str, Any]],
    runs: dict[str, dict[int, dict[str, Any]]],
    run_of: dict[str, dict[int, int]],
    results: dict[str, dict[str, Any]],
    gets: dict[int, list[dict[str, Any]]],
    plans_by_sync: dict[int, dict[str, Any] | None],
) -> dict[str, Any]:
    """Lag p50/p95 and GETs per run of each mode over these syncs' twin pairs that both completed in time."""
    lags: dict[str, list[float]] = {"adaptive": [], "fixed": []}
    counts: dict[str, list[int]] = {"adaptive": [], "fixed": []}
    left_out, errors, planned = 0, 0, 0
    for sync in members:
        ids = {mode: run_of[mode][sync["twins"][mode]] for mode in ("adaptive", "fixed")}
        events = {mode: results[mode]["events"].get(str(ids[mode])) for mode in ids}
        planned += plans_by_sync[sync["twins"]["adaptive"]] is not None
        if any(event is None for event in events.values()):
            left_out += 1
            continue
        if any(event[1] != "completed" for event in events.values()):
            errors += 1
            continue
        for mode, run_id in ids.items():
            lags[mode].append(float(events[mode][0]) - runs[mode][run_id]["ends_at"])
            counts[mode].append(len(gets.get(run_id, [])))
    return {
        "syncs": len(members),
        "planned": planned,
        "measured": len(lags["fixed"]),
        "left_out": left_out,
        "errors": errors,
        **{
            mode: lag_stats(lags[mode]) | {"gets": sum(counts[mode]) / max(1, len(counts[mode]))}
            for mode in ("adaptive", "fixed")
        },
    }


def history_target(cohort: str, adaptive: dict[str, float], fixed: dict[str, float]) -> tuple[str, bool | None]:
    if cohort.endswith(", planned"):
        return "(a part of the row above)", None
    if cohort == "consistent":
        ok = adaptive["p50"] <= 0.5 * fixed["p50"] and adaptive["gets"] <= fixed["gets"]
        return "lag p50 <= 0.5x, GETs <= 1x", ok
    ok = abs(adaptive["p50"] / fixed["p50"] - 1) <= 0.10 and abs(adaptive["gets"] / fixed["gets"] - 1) <= 0.10
    return "lag p50 and GETs within 10%", ok


def print_history(found: dict[str, Any], scenario: HistoryScenario) -> None:
    c = scenario.compress
    low, high = scenario.median_range
    sizes = ", ".join(f"{fig['syncs']} {name} syncs" for name, fig in found["cohorts"].items() if "," not in name)
    print(
        f"\nAdaptive against fixed polling (issue 21): {sizes}, each with a twin of the "
        f"same durations; medians {low / 60:g}-{high / 60:g} min (log-uniform), "
        f"poll_interval {scenario.poll_interval:g} s, "
        f"all compressed {c:g} times (runs of {low / c:g}-{high / c:g} s, polls every {scenario.interval:g} s); lags "
        f"below in real seconds (measured x {c:g}). Adaptive and fixed side by side, each in its own process, "
        "one emulator.\n"
    )
    taken = found["plans_taken"]
    if taken.get("unsupported"):
        print("NOTE: the trigger does not take poll_plan yet: 'adaptive' below polled at the fixed interval.\n")
    rows = [["cohort", "plans", "runs", "lag p50 a / f (s)", "lag p95 a / f (s)", "GETs/run a / f",
             "lag p50", "lag p95", "GETs", "target", ""]]  # fmt: skip
    for cohort, figures in found["cohorts"].items():
        a, f = figures["adaptive"], figures["fixed"]
        target, ok = history_target(cohort, a, f)
        rows.append([
            cohort,
            f"{figures['planned']}/{figures['syncs']}",
            f"{figures['measured']}",
            f"{a['p50'] * c:.1f} / {f['p50'] * c:.1f}",
            f"{a['p95'] * c:.1f} / {f['p95'] * c:.1f}",
            f"{a['gets']:.2f} / {f['gets']:.2f}",
            ratio(a["p50"], f["p50"]),
            ratio(a["p95"], f["p95"]),
            ratio(a["gets"], f["gets"]),
            target,
            "" if ok is None else met(ok),
        ])  # fmt: skip
    print(table(rows))
    notes = [f"{name}: {fig['left_out']} twin pairs not ended by the deadline, {fig['errors']} with an error"
             for name, fig in found["cohorts"].items() if fig["left_out"] or fig["errors"]]  # fmt: skip
    if notes:
        print("\nleft out of the figures (both twins): " + "; ".join(notes))


# -- part cost: the budget when no limit is met -------------------------------------------------------

COST_SCENARIO = Scenario("cost", latency=0.3, triggers=1000, poll_interval=10.0, first_end=90.0, last_end=150.0)
QUICK_COST_SCENARIO = Scenario("cost", latency=0.3, triggers=200, poll_interval=3.0, first_end=6.0, last_end=24.0)
README_TODAY = {"cpu_ms_per_poll": 0.609, "rss_kb_per_trigger": 9.3, "connections": 107}
"""Ours at 300 ms in benchmarks/README.md's table before issue 21 (2026-12-01, 1,000 waits)."""


def cost_benchmark(python: str, scenario: Scenario) -> dict[str, dict[str, Any]]:
    """Ours with the budget learning and with it off, side by side against one emulator without a limit."""
    from run import figures, gets_by_run

    populations = [Population("learn", "budget learn", "ours", LEARN), Population("off", "budget off", "ours", OFF)]
    with tempfile.TemporaryDirectory(prefix="census-bench-cost-") as tmp:
        home = Path(tmp)
        emulator = Emulator(python, scenario.latency, home / "emulator-cost.log")
        try:
            planned_start = time.time() + 1.0 + 0.0015 * scenario.triggers * len(populations)
            ends = {p.name: scripted_runs(emulator, [planned_start + o - time.time() for o in scenario.end_offsets()])
                    for p in populations}  # fmt: skip
            start_at = max(planned_start, time.time() + 0.2)
            orders = {
                name: {"runs": list(ends[name]), "start_at": start_at, "rss_at": start_at + scenario.rss_after}
                for name in ends
            }
            results, counter = run_side_by_side(
                populations,
                {"ours": python},
                dict.fromkeys(ends, emulator),
                scenario,
                home,
                orders,
                sample_every=scenario.sample_every,
            )
            gets = gets_by_run(emulator)
        finally:
            emulator.close()
    return {
        name: figures(
            results[name] | {"start_at": start_at}, ends[name], gets, counter.counts(results[name]["pid"]), scenario
        )
        for name in ends
    }


def print_cost(found: dict[str, dict[str, Any]], scenario: Scenario) -> None:
    print(
        f"\nThe budget's own cost (issue 21): {scenario.triggers} waits per population, "
        f"{scenario.latency * 1000:.0f} ms per request, no limit, poll interval {scenario.poll_interval:g} s; "
        "budget learn and off side by side, each in its own process, one emulator.\n"
    )
    learn, off = found["learn"], found["off"]
    rows = [["figure", "budget learn", "budget off", "learn / off", "README today (ours)", "target (learn)", ""]]
    for key, label, fmt in [
        ("cpu_ms_per_poll", "CPU per poll (ms)", "{:.3f}"),
        ("rss_kb_per_trigger", "RSS added per wait (KB)", "{:.1f}"),
        ("connections", "TCP connections opened", "{:.0f}"),
    ]:
        today = README_TODAY[key]
        rows.append([label, fmt.format(learn[key]), fmt.format(off[key]), ratio(learn[key], off[key]),
                     fmt.format(today), f"<= {fmt.format(today)} (the table)", met(learn[key] <= today)])  # fmt: skip
    for key, label, fmt in [
        ("connections_peak", "TCP connections at peak", "{:.0f}"),
        ("gets_per_poll", "GETs per poll", "{:.3f}"),
        ("lag_p50", "detection lag p50 (s)", "{:.2f}"),
        ("lag_p99", "detection lag p99 (s)", "{:.2f}"),
        ("failed_polls", "failed polls", "{:.0f}"),
        ("events_ok", "runs reported completed", "{:.0f}"),
    ]:
        rows.append([label, fmt.format(learn[key]), fmt.format(off[key]), ratio(learn[key], off[key]), "", "", ""])
    print(table(rows))


def scaled_budget(scenario: BudgetScenario, waits: int | None, limit: int | None) -> BudgetScenario:
    """The scenario with other waits or limit; the interval kept, the deadline stretched with the sweep."""
    changed = replace(scenario, waits=waits or scenario.waits, limit=limit or scenario.limit)
    sweeps = max(1.0, changed.sweep / scenario.sweep)
    return replace(changed, deadline=max(scenario.deadline, scenario.deadline * sweeps))
