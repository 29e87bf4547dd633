"""A `dg launch` killed with SIGKILL leaves its run STARTED; the automation marks it failed and
re-runs its asset (what `make demo` and the `retrain_changed` schedule do)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration.automation import changed_assets, fail_dead_runs, retrain_changed

# A cheap asset that takes as long as its config says: quick the first time, slow when killed.
DEFS = textwrap.dedent('''
    import time
    import dagster as dg

    class Nap(dg.Config):
        seconds: float = 0.0

    @dg.asset(code_version="1")
    def slow(config: Nap) -> None:
        time.sleep(config.seconds)

    defs = dg.Definitions(assets=[slow])
''')


def _wait_for(predicate, timeout_s: float, what: str):
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_launch_is_marked_failed_and_its_asset_counts_as_changed(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    defs_file = tmp_path / "toy_defs.py"
    defs_file.write_text(DEFS)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("LENSLAB_DATA_ROOT", str(tmp_path / "data"))
    env = {**os.environ, "DAGSTER_HOME": str(home), "LENSLAB_DATA_ROOT": str(tmp_path / "data")}
    dg_cli = str(Path(sys.executable).with_name("dg"))

    def launch(seconds: float) -> subprocess.Popen:
        config = f'{{"ops": {{"slow": {{"config": {{"seconds": {seconds}}}}}}}}}'
        return subprocess.Popen(
            [dg_cli, "launch", "--assets", "slow", "-f", str(defs_file), "--config-json", config],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # its own group: the kill takes its step processes too

    assert launch(0).wait(timeout=60) == 0  # materialised once: unchanged from here on
    graph = dg.Definitions(assets=[_toy_asset()]).resolve_asset_graph()
    with dg.DagsterInstance.get() as instance:
        assert changed_assets(instance, graph, tmp_path) == {}

        process = launch(300)
        statuses = {dg.DagsterRunStatus.STARTED}
        run = _wait_for(lambda: next(iter(instance.get_runs(
            dg.RunsFilter(statuses=list(statuses)))), None), 60, "the slow run to start")
        _wait_for(lambda: instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START),
                  30, "the slow step to start")
        assert fail_dead_runs(instance) == []  # alive: left alone
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED

        # The weekly schedule's tick marks it failed and asks for its asset again.
        toy = dg.Definitions(assets=[_toy_asset()], schedules=[retrain_changed])
        tick = retrain_changed.evaluate_tick(dg.build_schedule_context(
            instance=instance, repository_def=toy.get_repository_def(),
            scheduled_execution_time=dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC)))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert [r.asset_selection for r in tick.run_requests] == [[dg.AssetKey("slow")]]
        reason = changed_assets(instance, graph, tmp_path)[dg.AssetKey("slow")]
        assert run.run_id[:8] in reason and "failed" in reason
        assert fail_dead_runs(instance) == []  # reported once
        failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "is gone" in failure[0].message


def _toy_asset() -> dg.AssetsDefinition:
    @dg.asset(code_version="1")
    def slow() -> None:  # the same key and code version as the launched one
        return None

    return slow
