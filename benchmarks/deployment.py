"""Issue 11, whole deployment: one ``CensusTriggerSyncsOperator`` over N syncs against
``CensusTriggerSyncOperator`` mapped over N syncs, in a real Airflow deployment.

Started by ``benchmarks/run.py --part deployment`` (or directly, with the Airflow 3 venv's Python
from the repository root). It reuses the system tests' harness (``tests/system``: PostgreSQL,
scheduler, DAG processor, API server and one triggerer as subprocesses, LocalExecutor) with the
DAGs of ``benchmarks/dags`` instead of the examples, against the emulator in this process with a
fixed latency per request (300 ms, as the triggerer-level part).

Sync i of one DAG and sync i of the other follow the same script (queued 1 s, then working for a
time spread evenly over ``--working``, counted from the trigger). The two DAG runs go one after
the other, the many-syncs one first, after a warm-up DAG run of one sync: the deployment's
processes serve both DAGs, so their CPU can be put down to one DAG run only when it runs alone.
Side by side would share the conditions better, but not tell whose CPU is whose.

Per DAG run:

- *CPU*: user + system seconds of every process of the deployment (each component's process
  tree, with the CPU of children it reaped, and PostgreSQL's server), from just before the
  trigger command to the DAG run's end, and the same net of the idle rate measured just before;
- *requests* to Census from the emulator's log: the selection's pages (``GET /syncs``), triggers
  (``POST /syncs/{id}/trigger``) and reads of runs (``GET /sync_runs/{id}``);
- *TCP connections* to the emulator: distinct client ports, and the most open at once, sampled
  every 0.5 s on the emulator's side;
- *wall time*: the DAG run's start to its end, as the metadata database has them;
- *result lag*: the task instance's end minus the end of the run it reports (a mapped task: its
  own run; the one task of the many-syncs DAG: every run, so early runs wait for the last);
- *task instances* of the run and *trigger rows* created (the trigger table's id sequence);
  *processes started*: new pids seen in the deployment's trees (sampled every 0.5 s, so a
  process shorter than that may be missed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the system tests' harness, imported as it is

from airflow_provider_census.testing import CensusEmulator, RunScript  # noqa: E402
from airflow_provider_census.testing.faults import FaultProfile  # noqa: E402
from tests.system.cluster import CLI_TIMEOUT_SECONDS, AirflowCluster, base_env  # noqa: E402
from tests.system.postgres import PostgresServer  # noqa: E402

DAGS = {"many": "census_bench_many", "mapped": "census_bench_mapped"}
LABELS = {"many": "1 task, N syncs", "mapped": "N mapped tasks"}
WARMUP_DAG = "census_bench_warmup"
SAMPLE_SECONDS = 0.5
API_VERSION = "v1"


@dataclass(frozen=True)
class Settings:
    syncs: int
    poll_interval: float
    working: tuple[float, float]  # seconds a run works after its trigger, the first sync's and the last's
    latency: float
    idle_seconds: float
    parallelism: int
    timeout: float

    def working_seconds(self) -> list[float]:
        low, high = self.working
        step = (high - low) / max(1, self.syncs - 1)
        return [low + i * step for i in range(self.syncs)]


FULL = Settings(100, 10.0, (30.0, 90.0), 0.3, 15.0, 4, 1800.0)
QUICK = Settings(10, 3.0, (6.0, 15.0), 0.3, 5.0, 4, 600.0)


# -- the deployment's processes ------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_of(processes: list[psutil.Process]) -> float:
    """CPU seconds of the processes, with what their children they reaped used."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


@dataclass
class Deployment:
    """Every process of the deployment by name: the cluster's components and PostgreSQL's server."""

    cluster: AirflowCluster
    postgres_pid: int

    def roots(self) -> dict[str, int]:
        found = {component.name: component.process.pid for component in self.cluster.components}
        return found | {"postgres": self.postgres_pid}

    def cpu(self) -> dict[str, float]:
        return {name: cpu_of(tree(pid)) for name, pid in self.roots().items()}

    def pids(self) -> set[int]:
        return {process.pid for pid in self.roots().values() for process in tree(pid)}


def postmaster_pid(server: PostgresServer) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])


# -- one DAG run -----------------------------------------------------------------------------------


@dataclass
class Sampler:
    """Connections to the emulator (on its side), trigger ids of the run's tasks, new processes."""

    emulator_port: int
    known_pids: set[int]
    ports: set[int] = field(default_factory=set)
    peak: int = 0
    trigger_ids: set[int] = field(default_factory=set)
    new_pids: set[int] = field(default_factory=set)

    def sample(self, deployment: Deployment, dag_id: str, run_id: str) -> None:
        sockets = psutil.Process().net_connections(kind="tcp4")
        open_now = {conn.raddr.port for conn in sockets if conn.raddr and conn.laddr.port == self.emulator_port}
        self.ports |= open_now
        self.peak = max(self.peak, len(open_now))
        rows = deployment.cluster.query(
            "SELECT DISTINCT trigger_id FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s AND trigger_id IS NOT NULL",
            dag_id,
            run_id,
        )
        self.trigger_ids |= {int(row[0]) for row in rows}
        self.new_pids |= deployment.pids() - self.known_pids


def trigger_sequence(cluster: AirflowCluster) -> int | None:
    """The trigger table's last id handed out (ids are never reused), or None if it cannot be read."""
    try:
        rows = cluster.query("SELECT last_value, is_called FROM trigger_id_seq")
    except Exception:  # another schema: fall back on the sampled ids
        return None
    value, called = rows[0]
    return int(value) if called else int(value) - 1


def epoch(moment: Any) -> float:
    return float(moment.timestamp())


def measure_dag_run(
    deployment: Deployment, kind: str, sync_ids: list[int], settings: Settings, emulator: CensusEmulator
) -> dict[str, Any]:
    cluster = deployment.cluster
    dag_id, run_id = DAGS[kind], f"bench_{kind}"
    idle_start = deployment.cpu()
    time.sleep(settings.idle_seconds)
    idle_rate = (sum(deployment.cpu().values()) - sum(idle_start.values())) / settings.idle_seconds
    emulator.clear_requests()
    sampler = Sampler(emulator.port, deployment.pids())
    sequence_before = trigger_sequence(cluster)
    cpu_before, started = deployment.cpu(), time.monotonic()
    cluster.cli("dags", "trigger", dag_id, "--run-id", run_id)
    deadline = started + settings.timeout
    while cluster.dag_run_state(dag_id, run_id) not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"DAG run {run_id} did not end in {settings.timeout:.0f} s\n{cluster.explain()}")
        dead = [component.name for component in cluster.components if component.exited]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during {run_id}\n{cluster.explain()}")
        sampler.sample(deployment, dag_id, run_id)
        time.sleep(SAMPLE_SECONDS)
    cpu_after, measured = deployment.cpu(), time.monotonic() - started
    sequence_after = trigger_sequence(cluster)
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    (state, run_start, run_end), *_ = cluster.query(
        "SELECT state, start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id
    )
    tis = cluster.query(
        "SELECT map_index, state, end_date FROM task_instance WHERE dag_id = %s AND run_id = %s", dag_id, run_id
    )
    ti_end = {int(map_index): epoch(end) for map_index, _state, end in tis if end is not None}
    to_epoch = time.time() - time.monotonic()  # the emulator runs in this process, on its monotonic clock
    lags, run_ends = [], []
    for index, sync_id in enumerate(sync_ids):
        runs = emulator.runs_of(sync_id)
        finished = emulator.run_finished_at(int(runs[0]["id"])) if runs else None
        task_end = ti_end.get(index if kind == "mapped" else -1)
        if finished is None or task_end is None:
            continue
        run_ends.append(finished + to_epoch)
        lags.append(task_end - (finished + to_epoch))
    requests = Counter(kind_of(item.method, item.api_path or item.path) for item in emulator.requests)
    triggers_created = (
        sequence_after - sequence_before
        if sequence_before is not None and sequence_after is not None
        else len(sampler.trigger_ids)
    )
    total = sum(cpu.values())
    wall = epoch(run_end) - epoch(run_start)
    return {
        "state": state,
        "cpu": cpu,
        "cpu_total": total,
        "idle_rate": idle_rate,
        "cpu_net": total - idle_rate * measured,
        "measured_seconds": measured,
        "wall": wall,
        "last_run_end_to_dag_end": epoch(run_end) - max(run_ends) if run_ends else float("nan"),
        "requests": dict(requests),
        "requests_total": sum(requests.values()),
        "connections": len(sampler.ports),
        "connections_peak": sampler.peak,
        "task_instances": len(tis),
        "tasks_succeeded": sum(1 for _i, ti_state, _end in tis if ti_state == "success"),
        "trigger_rows": triggers_created,
        "processes_started": len(sampler.new_pids),
        "lag_p50": percentile(lags, 0.5),
        "lag_p95": percentile(lags, 0.95),
        "lag_max": max(lags) if lags else float("nan"),
        "lag_min": min(lags) if lags else float("nan"),
        "runs_measured": len(lags),
    }


def kind_of(method: str, path: str) -> str:
    parts = path.strip("/").split("/")
    if method == "GET" and parts[:1] == ["sync_runs"]:
        return "GET /sync_runs/{id}"
    if method == "POST" and parts[:1] == ["syncs"] and parts[-1:] == ["trigger"]:
        return "POST /syncs/{id}/trigger"
    if method == "GET" and parts[:1] == ["syncs"] and parts[-1:] == ["sync_runs"]:
        return "GET /syncs/{id}/sync_runs (newest run)"
    if method == "GET" and parts == ["syncs"]:
        return "GET /syncs (pages)"
    if method == "GET" and parts[:1] == ["syncs"]:
        return "GET /syncs/{id}"
    return f"{method} other"


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# -- the whole benchmark ---------------------------------------------------------------------------


def migrate(postgres: PostgresServer, database: str, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    postgres.create_database(database)
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=base_env(home, postgres.url(database)),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS * 2,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


@contextlib.contextmanager
def deployment_of(
    settings: Settings, tmp: Path, emulator: CensusEmulator, syncs: dict[str, list[int]]
) -> Iterator[Deployment]:
    postgres = PostgresServer().start()
    cluster = None
    try:
        migrate(postgres, "airflow_bench", tmp / "migrate-home")
        cluster = AirflowCluster(tmp / "airflow-home", postgres, "airflow_bench", emulator, API_VERSION)
        cluster.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(HERE / "dags")
        cluster.env["AIRFLOW__CORE__PARALLELISM"] = str(settings.parallelism)
        cluster.env["CENSUS_BENCH_POLL_INTERVAL"] = str(settings.poll_interval)
        for name, ids in syncs.items():
            cluster.env[f"CENSUS_BENCH_{name.upper()}_SYNCS"] = ",".join(map(str, ids))
        cluster.start_core()
        cluster.start_triggerer()
        cluster.wait_for_triggerers(1)
        yield Deployment(cluster, postmaster_pid(postgres))
    finally:
        if cluster is not None:
            cluster.stop()
        postgres.stop()


def run(settings: Settings) -> dict[str, Any]:
    emulator = CensusEmulator(faults=FaultProfile(latency=settings.latency)).start()
    try:
        scripts = [RunScript(advance="time", queued_seconds=1.0, working_seconds=w) for w in settings.working_seconds()]
        syncs = {kind: [emulator.add_sync(script) for script in scripts] for kind in DAGS}
        syncs["warmup"] = [emulator.add_sync(scripts[0])]
        with tempfile.TemporaryDirectory(prefix="census-bench-deployment-") as tmp:
            started = time.monotonic()
            with deployment_of(settings, Path(tmp), emulator, syncs) as deployment:
                cluster = deployment.cluster
                for dag_id in [*DAGS.values(), WARMUP_DAG]:
                    cluster.wait(f"the DAG {dag_id} to be parsed", lambda d=dag_id: cluster.dag_is_parsed(d))
                    cluster.cli("dags", "unpause", dag_id)
                ready = time.monotonic() - started
                cluster.cli("dags", "trigger", WARMUP_DAG, "--run-id", "bench_warmup")
                warm = cluster.wait_for_dag_run_end(WARMUP_DAG, "bench_warmup", timeout=settings.timeout)
                if warm != "success":
                    raise RuntimeError(f"the warm-up DAG run ended {warm}\n{cluster.explain()}")
                found = {kind: measure_dag_run(deployment, kind, syncs[kind], settings, emulator) for kind in DAGS}
        return {"settings": settings.__dict__, "startup_seconds": ready, "dag_runs": found}
    finally:
        emulator.stop()


# -- the table -------------------------------------------------------------------------------------


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(mine: float, other: float) -> str:
    return f"{mine / other:.2f}x" if other else "-"


def print_results(result: dict[str, Any], settings: Settings) -> None:
    found = result["dag_runs"]
    kinds = list(DAGS)
    low, high = settings.working
    print(
        f"\nOne task over N syncs against N mapped tasks (issue 11), whole deployment: N = {settings.syncs}, "
        f"deferrable, poll interval {settings.poll_interval:g} s, {settings.latency * 1000:.0f} ms per request, "
        f"runs working {low:g}-{high:g} s after their trigger; Airflow's scheduler, DAG processor, API server, "
        f"one triggerer, LocalExecutor (parallelism {settings.parallelism}), PostgreSQL; the DAG runs one after "
        f"the other (many first), after a warm-up run.\n"
    )
    components = sorted({name for kind in kinds for name in found[kind]["cpu"]})
    rows: list[list[str]] = [["figure", *(LABELS[k] for k in kinds), "ratio (1 task / N tasks)"]]

    def add(label: str, values: list[float], fmt: str, with_ratio: bool = True) -> None:
        rows.append([label, *(fmt.format(v) for v in values), ratio(values[0], values[1]) if with_ratio else ""])

    add("DAG run state (success = 1)", [float(found[k]["state"] == "success") for k in kinds], "{:.0f}", False)
    add("CPU of the deployment (s)", [found[k]["cpu_total"] for k in kinds], "{:.1f}")
    add("  net of its idle rate (s)", [found[k]["cpu_net"] for k in kinds], "{:.1f}")
    for name in components:
        add(f"  {name} (s)", [found[k]["cpu"].get(name, 0.0) for k in kinds], "{:.1f}")
    add("idle rate before (CPU s per s)", [found[k]["idle_rate"] for k in kinds], "{:.3f}", False)
    add("wall time, DAG run start to end (s)", [found[k]["wall"] for k in kinds], "{:.1f}")
    add("last run's end to DAG run end (s)", [found[k]["last_run_end_to_dag_end"] for k in kinds], "{:.1f}")
    add("result lag p50 (s): task end - run end", [found[k]["lag_p50"] for k in kinds], "{:.1f}")
    add("result lag p95 (s)", [found[k]["lag_p95"] for k in kinds], "{:.1f}")
    add("result lag max (s)", [found[k]["lag_max"] for k in kinds], "{:.1f}")
    add("Census requests", [found[k]["requests_total"] for k in kinds], "{:.0f}")
    request_kinds = sorted({name for kind in kinds for name in found[kind]["requests"]})
    for name in request_kinds:
        add(f"  {name}", [found[k]["requests"].get(name, 0) for k in kinds], "{:.0f}")
    add("TCP connections to Census opened", [found[k]["connections"] for k in kinds], "{:.0f}")
    add("TCP connections open at peak", [found[k]["connections_peak"] for k in kinds], "{:.0f}")
    add("task instances", [found[k]["task_instances"] for k in kinds], "{:.0f}")
    add("trigger rows created", [found[k]["trigger_rows"] for k in kinds], "{:.0f}")
    add("processes started (sampled)", [found[k]["processes_started"] for k in kinds], "{:.0f}")
    print(table(rows))
    print(f"\nDeployment up and DAGs parsed in {result['startup_seconds']:.0f} s (not measured above).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 syncs, 3 s interval, runs of 6-15 s")
    parser.add_argument("--syncs", type=int, help="syncs per DAG (default 100; 10 with --quick)")
    parser.add_argument("--parallelism", type=int, help="Airflow's [core] parallelism (default 4, the harness's)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    if args.syncs:
        settings = Settings(**{**settings.__dict__, "syncs": args.syncs})
    if args.parallelism:
        settings = Settings(**{**settings.__dict__, "parallelism": args.parallelism})
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nDeployment benchmark: load average {load} at the start", flush=True)
    began = time.monotonic()
    result = run(settings)
    print_results(result, settings)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Load average after it: {load}; took {time.monotonic() - began:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    failed = [kind for kind, found in result["dag_runs"].items() if found["state"] != "success"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
