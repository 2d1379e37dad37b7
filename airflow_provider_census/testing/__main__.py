"""Run the Census emulator from a shell: ``python -m airflow_provider_census.testing``.

Useful for the demo and for pointing a local Airflow at a fake Census. The first line on
stdout is the base URL (with the real port when ``--port 0``), the second the token.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_census.testing.emulator import DEFAULT_TOKEN, CensusEmulator
from airflow_provider_census.testing.faults import FAULT_KINDS, FaultProfile


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_census.testing", description="Serve an emulated Census v1 API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the API token clients must send")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests given a fault")
    parser.add_argument(
        "--faults", default="429,500", help=f"comma-separated fault kinds, of: {', '.join(FAULT_KINDS)}"
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of 429 faults (seconds)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--seed", type=int, default=None, help="seed for repeatable fault draws")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        profile = _profile(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with CensusEmulator(token=args.token, port=args.port, host=args.host, faults=profile) as emulator:
        print(emulator.base_url, flush=True)
        print(f"token: {emulator.token}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
