"""The main job, for now: the hook against the bundled emulator, one sync that succeeds and one that fails.

Run through ``python3 dev/run.py demo``, which installs everything first.
"""

from __future__ import annotations

import json
import os

from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.testing import CensusEmulator, RunScript


def follow(hook: CensusHook, sync_id: int) -> None:
    run_id = hook.trigger_sync_run(sync_id)
    print(f"triggered sync {sync_id}: run {run_id}")
    while True:
        run = hook.get_sync_run(run_id)
        print(f"  run {run.id}: {run.status} ({run.current_step or '-'})")
        if run.outcome.is_terminal:
            break
    if run.outcome is RunOutcome.SUCCEEDED:
        print(f"  completed: {run.records_processed} records processed, {run.records_updated} updated")
    else:
        print(f"  {run.outcome.value}: error_code={run.error_code} error_message={run.error_message!r}")


def main() -> None:
    with CensusEmulator() as emulator:
        os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"] = json.dumps(
            {"conn_type": "census", "password": emulator.token, "extra": {"base_url": emulator.base_url}}
        )
        print(f"Census emulator at {emulator.base_url}")
        good = emulator.add_sync(RunScript(outcome="completed", records_processed=1200, records_updated=1180))
        bad = emulator.add_sync(
            RunScript(
                outcome="failed",
                error_code="JSON_ARRAY_ERROR",
                error_message='The array field "Users" is not valid JSON',
            )
        )
        hook = CensusHook()
        follow(hook, good)
        follow(hook, bad)


if __name__ == "__main__":
    main()
