"""Run the Census emulator from a shell: ``python -m airflow_provider_census.testing``.

Useful for the demo and for pointing a local Airflow at a fake Census. It serves API v1
and V2 by default (``--api-version`` picks). The first line on stdout is a base URL (with
the real port when ``--port 0``): v1's, or V2's when v1 is not served; the second is
``token: `` and the token that version takes. Those two lines stay all there is on stdout
before the control channel's answers, so readers of them keep working; every served
version's base URL and token (and V2's group id) are printed on stderr.

With ``--control`` another process (the benchmarks) can script and inspect the emulator
while it serves: it writes one JSON command per line on stdin and reads one JSON answer per
line on stdout. Times in answers are epoch seconds, so they compare with the caller's clock.

    {"call": "start_run", "script": {"advance": "time", "working_seconds": 30}}
        -> {"run_id": 100, "ends_at": 1700000030.0}   (a new sync following the script, triggered)
    {"call": "history_sync", "model": {"median": 120, "spread": 0.1, "seed": 7}, "history": 20}
        -> {"sync_id": 1001}   (a new sync: 20 past runs drawn from the model, its next runs too)
    {"call": "trigger", "sync_id": 1001}  -> {"run_id": 101, "ends_at": 1700000120.0}
    {"call": "run", "run_id": 100}  -> {"run": {...as GET /sync_runs/100 shows it...}}
    {"call": "requests"}            -> {"requests": [{"method", "path", "api_version", "api_path",
                                                      "status", "fault", "started_at",
                                                      "finished_at"}, ...],
                                     "rate_limited": 0}   (requests the --rate-limit refused)
    anything else                   -> {"error": "..."}
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import IO, Any

from airflow_provider_census.testing import versions
from airflow_provider_census.testing.emulator import DEFAULT_GROUP_ID, DEFAULT_PAT, DEFAULT_TOKEN, CensusEmulator
from airflow_provider_census.testing.errors import ApiError
from airflow_provider_census.testing.faults import FAULT_KINDS, FaultProfile
from airflow_provider_census.testing.history import DurationModel
from airflow_provider_census.testing.runs import RunScript


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_census.testing", description="Serve an emulated Census API (v1 and V2)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the workspace API key API v1 takes")
    parser.add_argument("--pat", default=DEFAULT_PAT, help="the Activations personal access token API v2 takes")
    parser.add_argument("--group-id", default=DEFAULT_GROUP_ID, help="the group the workspace is in on API v2")
    parser.add_argument(
        "--api-version",
        action="append",
        dest="api_versions",
        metavar="VERSION",
        help="an API version to serve (repeat, or separate with commas; default: v1,v2)",
    )
    parser.add_argument(
        "--v2-routes",
        choices=versions.V2_ROUTE_MODES,
        default="all",
        help="on API v2, serve every route (default) or only those the V2 reference documents",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests given a fault")
    parser.add_argument(
        "--faults", default="429,500", help=f"comma-separated fault kinds, of: {', '.join(FAULT_KINDS)}"
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of 429 faults (seconds)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--seed", type=int, default=None, help="seed for repeatable fault draws")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="accept at most N requests per token in any second; answer the rest 429 with Retry-After",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="take JSON commands on stdin, one per line, and answer on stdout (see the module doc); "
        "the emulator stops when stdin closes",
    )
    return parser


def _profile(args: argparse.Namespace) -> FaultProfile | None:
    kinds = tuple(kind.strip() for kind in args.faults.split(",") if kind.strip())
    if args.fault_rate <= 0 and args.latency <= 0:
        return None
    # The CLI's --latency is always a constant delay, so it must not double as a fault kind.
    kinds = tuple(kind for kind in kinds if kind != "latency") if args.latency > 0 else kinds
    return FaultProfile(
        rate=args.fault_rate, kinds=kinds, retry_after=args.retry_after, latency=args.latency, seed=args.seed
    )


def _api_versions(args: argparse.Namespace) -> tuple[str, ...]:
    """The versions to serve from every ``--api-version``, each possibly a comma list."""
    if not args.api_versions:
        return versions.API_VERSIONS
    return versions.checked(name.strip() for given in args.api_versions for name in given.split(",") if name.strip())


def _announce(emulator: CensusEmulator) -> None:
    """The two stdout lines scripts read, then every served version for people, on stderr."""
    primary = emulator.api_versions[0]
    print(emulator.api_base_url(primary), flush=True)
    print(f"token: {emulator.token_for(primary)}", flush=True)
    for version in emulator.api_versions:
        details = f"{versions.CREDENTIALS[version]}: {emulator.token_for(version)}"
        if version == "v2":
            details += f", group_id: {emulator.group_id}"
        print(f"API {version} at {emulator.api_base_url(version)} ({details})", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        profile = _profile(args)
        api_versions = _api_versions(args)
        if args.rate_limit is not None and args.rate_limit < 1:
            raise ValueError(f"--rate-limit must be at least 1, not {args.rate_limit}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with CensusEmulator(
        token=args.token,
        port=args.port,
        host=args.host,
        faults=profile,
        pat=args.pat,
        group_id=args.group_id,
        api_versions=api_versions,
        v2_routes=args.v2_routes,
        rate_limit=args.rate_limit,
    ) as emulator:
        _announce(emulator)
        if args.control:
            reader = threading.Thread(
                target=serve_commands, args=(emulator, sys.stdin, sys.stdout, stop), name="control", daemon=True
            )
            reader.start()
        while not stop.wait(0.5):
            pass
    return 0


# -- the control channel (--control) ---------------------------------------------------------


def serve_commands(emulator: CensusEmulator, commands: IO[str], answers: IO[str], stop: threading.Event) -> None:
    """Answer each JSON command line until the input ends, then ask the emulator to stop."""
    for line in commands:
        if line.strip():
            answers.write(json.dumps(answer(emulator, line)) + "\n")
            answers.flush()
    stop.set()


def answer(emulator: CensusEmulator, line: str) -> dict[str, Any]:
    """One command's answer; a bad command gets ``{"error": ...}`` and the channel goes on."""
    try:
        command = json.loads(line)
        handler = _COMMANDS[command["call"]]
    except (ValueError, KeyError, TypeError):
        return {"error": f"expected a JSON object with a known 'call' ({', '.join(_COMMANDS)}), got {line.strip()!r}"}
    try:
        return handler(emulator, command)
    except (ApiError, ValueError, KeyError, TypeError) as exc:
        return {"error": f"{command['call']}: {type(exc).__name__}: {exc}"}


def _epoch_offset() -> float:
    """What turns this process's ``time.monotonic()`` readings into epoch seconds, for another process."""
    return time.time() - time.monotonic()


def _start_run(emulator: CensusEmulator, command: dict[str, Any]) -> dict[str, Any]:
    script = RunScript(**command.get("script", {}))
    run_id = emulator.trigger(emulator.add_sync(script))
    ends = emulator.run_finished_at(run_id)
    return {"run_id": run_id, "ends_at": None if ends is None else ends + _epoch_offset()}


def _history_sync(emulator: CensusEmulator, command: dict[str, Any]) -> dict[str, Any]:
    model = DurationModel(**command["model"])
    sync_id = emulator.add_sync(RunScript(**command.get("script", {})))
    emulator.add_history(sync_id, model.sample(int(command.get("history", 20))))
    emulator.script_durations(sync_id, model)
    return {"sync_id": sync_id}


def _trigger(emulator: CensusEmulator, command: dict[str, Any]) -> dict[str, Any]:
    run_id = emulator.trigger(int(command["sync_id"]))
    ends = emulator.run_finished_at(run_id)
    return {"run_id": run_id, "ends_at": None if ends is None else ends + _epoch_offset()}


def _run(emulator: CensusEmulator, command: dict[str, Any]) -> dict[str, Any]:
    return {"run": emulator.run(int(command["run_id"]))}


def _requests(emulator: CensusEmulator, command: dict[str, Any]) -> dict[str, Any]:
    offset = _epoch_offset()
    return {
        "requests": [
            {
                "method": item.method,
                "path": item.path,
                "api_version": item.api_version,
                "api_path": item.api_path,
                "status": item.status,
                "fault": item.fault,
                "started_at": item.started_at + offset,
                "finished_at": item.finished_at + offset,
            }
            for item in emulator.requests
        ],
        "rate_limited": emulator.rate_limited,
    }


_COMMANDS: dict[str, Callable[[CensusEmulator, dict[str, Any]], dict[str, Any]]] = {
    "start_run": _start_run,
    "history_sync": _history_sync,
    "trigger": _trigger,
    "run": _run,
    "requests": _requests,
}


if __name__ == "__main__":
    sys.exit(main())
