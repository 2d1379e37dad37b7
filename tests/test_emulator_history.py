"""Syncs with a history in the emulator (issue 21): past runs in the run list, new runs as long as drawn.

Over real HTTP on 127.0.0.1, against emulators the tests start. Durations are compared with
the clock readings taken around each trigger, never with a threshold.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from airflow_provider_census.testing import CensusEmulator, DurationModel, RunScript
from airflow_provider_census.testing.errors import ApiError


@pytest.fixture
def emu() -> Iterator[CensusEmulator]:
    with CensusEmulator() as emulator:
        yield emulator


def listed_runs(emu: CensusEmulator, sync_id: int, version: str = "v1") -> list[dict[str, Any]]:
    response = requests.get(
        f"{emu.api_base_url(version)}/syncs/{sync_id}/sync_runs",
        headers={"Authorization": f"Bearer {emu.token_for(version)}"},
        params={"per_page": "50"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def took(run: dict[str, Any]) -> float:
    return seconds(run["completed_at"]) - seconds(run["created_at"])


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_past_runs_are_listed_newest_first_with_their_durations(emu: CensusEmulator, version: str) -> None:
    sync_id = emu.add_sync()
    durations = [120.5, 95.25, 130.0, 101.125]
    ids = emu.add_history(sync_id, durations, every=600.0)
    runs = listed_runs(emu, sync_id, version)
    assert [run["id"] for run in runs] == list(reversed(ids))
    assert [took(run) for run in runs] == pytest.approx(list(reversed(durations)), abs=0.002)
    assert {run["status"] for run in runs} == {"completed"}
    ends = [seconds(run["completed_at"]) for run in runs]
    assert [earlier - later for earlier, later in itertools.pairwise(ends)] == pytest.approx([600.0] * 3, abs=0.002)
    assert ends[0] <= time.time() - 600.0 + 0.002
    assert emu.run(ids[0])["status"] == "completed"


def test_a_sync_with_a_past_still_runs_and_its_new_runs_come_after(emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(queued_polls=0, working_polls=0))
    past = emu.add_history(sync_id, [60.0] * 3)
    run_id = emu.trigger(sync_id)
    assert run_id > max(past)
    assert [run["id"] for run in emu.runs_of(sync_id)] == [run_id, *reversed(past)]


def test_bad_histories_are_refused(emu: CensusEmulator) -> None:
    with pytest.raises(ValueError, match="positive"):
        emu.add_history(emu.add_sync(), [10.0, 0.0])
    with pytest.raises(ApiError):
        emu.add_history(99_999, [10.0])
    with pytest.raises(ValueError, match="median"):
        DurationModel(median=0.0)
    with pytest.raises(ValueError, match="negative"):
        DurationModel(median=1.0, spread=-0.1)


def test_duration_models_are_seeded_log_normal_draws() -> None:
    model = DurationModel(median=120.0, spread=0.1, seed=7)
    assert model.sample(20) == model.sample(20)
    assert model.sample(20) != DurationModel(median=120.0, spread=0.1, seed=8).sample(20)
    assert model.sample(5) != list(itertools.islice(model.future(), 5))  # the past is not the future
    assert DurationModel(median=42.0, spread=0.0).sample(3) == [42.0] * 3
    many = DurationModel(median=100.0, spread=0.2, seed=1).sample(4001)
    assert statistics.median(many) == pytest.approx(100.0, rel=0.02)


def test_new_runs_take_their_drawn_durations(emu: CensusEmulator) -> None:
    model = DurationModel(median=0.3, spread=0.5, seed=4, queued_seconds=0.05)
    sync_id = emu.add_sync()
    emu.script_durations(sync_id, model)
    drawn = list(itertools.islice(model.future(), 3))
    for duration in drawn:
        before = time.monotonic()
        run_id = emu.trigger(sync_id)
        after = time.monotonic()
        ends = emu.run_finished_at(run_id)
        assert ends is not None
        assert before + duration <= ends <= after + duration
        while emu.run(run_id)["status"] != "completed":
            time.sleep(0.05)
        assert took(emu.run(run_id)) == pytest.approx(duration, abs=0.002)


def test_drawn_durations_keep_the_scripted_outcome_and_can_be_switched_off(emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(outcome="failed", queued_polls=0, working_polls=0))
    emu.script_durations(sync_id, DurationModel(median=0.2, spread=0.0, queued_seconds=0.0))
    run_id = emu.trigger(sync_id)
    while emu.run(run_id)["status"] == "working":
        time.sleep(0.05)
    assert emu.run(run_id)["status"] == "failed"
    emu.script_durations(sync_id, None)
    assert emu.workspace.poll_run(emu.trigger(sync_id))["status"] == "failed"  # counted in polls again
