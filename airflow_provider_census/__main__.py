"""``python -m airflow_provider_census check``: the preflight of a Census connection, from a shell.

Run it where the DAGs run (it reads the Airflow connection as they do), before Census switches
API v1 off on 2027-01-15. It never triggers or cancels anything. It prints one table row per
call the DAGs make, and exits 0 when trigger, wait and cancel can work on the connection,
1 when they cannot, and 2 when the command itself is wrong (no such connection, a bad id).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m airflow_provider_census", description=__doc__.split("\n")[0])
    commands = cli.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="try every call the DAGs make on a connection, read-only")
    check.add_argument("--conn-id", default="census_default", help="the Airflow connection (default census_default)")
    check.add_argument("--sync", action="append", default=[], metavar="ID", help="a sync to check (repeat)")
    check.add_argument("--select", action="append", metavar="SELECTOR", help="syncs to check by selector (repeat)")
    check.add_argument("--run", action="append", default=[], metavar="ID", help="read this run instead of the newest")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from airflow_provider_census.api.errors import CensusConfigurationError, CensusInputError
    from airflow_provider_census.hooks.census import CensusHook

    try:
        report = CensusHook(args.conn_id).preflight(args.sync, args.select, args.run)
    except (CensusConfigurationError, CensusInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    return 0 if report.core_flow_ready else 1


if __name__ == "__main__":
    sys.exit(main())
