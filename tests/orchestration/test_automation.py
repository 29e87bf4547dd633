"""Retraining runs only what changed; the new-data sensor runs one source when its folder grows."""

import datetime as dt

import dagster as dg
import pytest

from orchestration.automation import (
    build_new_data_sensor,
    changed_assets,
    folder_fingerprint,
    retrain_changed,
)
from orchestration.definitions import defs as real_defs


@pytest.fixture
def instance():
    with dg.instance_for_test() as persistent:  # schedule/sensor contexts need a persistent one
        yield persistent


def _toy_defs(model_code: str = "1") -> dg.Definitions:
    @dg.asset(code_version="1")
    def selfies() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=dg.DataVersion("rows-v1"))

    @dg.asset(code_version="1")
    def landmark_photos() -> None:
        return None

    @dg.asset(code_version=model_code, deps=[selfies])
    def selfie_model() -> None:
        return None

    return dg.Definitions(assets=[selfies, landmark_photos, selfie_model],
                          schedules=[retrain_changed])


def _schedule(defs: dg.Definitions, instance: dg.DagsterInstance):
    context = dg.build_schedule_context(
        instance=instance, repository_def=defs.get_repository_def(),
        scheduled_execution_time=dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC))
    return retrain_changed.evaluate_tick(context)


def _requested(result) -> list[list[str]]:
    return [sorted(k.to_user_string() for k in r.asset_selection) for r in result.run_requests]


def test_the_schedule_requests_everything_at_first_then_nothing_when_nothing_changed(instance):
    defs = _toy_defs()
    assert _requested(_schedule(defs, instance)) == [
        ["landmark_photos", "selfie_model", "selfies"]]
    dg.materialize(list(defs.assets), instance=instance)
    result = _schedule(defs, instance)
    assert result.run_requests == []
    assert "nothing changed" in result.skip_message


def test_a_code_or_params_change_retrains_that_model_only(instance):
    dg.materialize(list(_toy_defs().assets), instance=instance)
    changed = _toy_defs(model_code="2")
    assert _requested(_schedule(changed, instance)) == [["selfie_model"]]
    reasons = changed_assets(instance, changed.resolve_asset_graph(), data_root=None)
    assert reasons == {dg.AssetKey("selfie_model"): "code or params changed"}


def test_new_upstream_data_retrains_downstream_but_a_rerun_with_the_same_data_does_not(
        instance):
    defs = _toy_defs()
    dg.materialize(list(defs.assets), instance=instance)
    # the source re-ran and produced the same rows: its data version is unchanged
    dg.materialize([defs.get_assets_def("selfies")], instance=instance)
    assert _schedule(defs, instance).run_requests == []

    @dg.asset(code_version="1", name="selfies")
    def selfies_new_rows() -> dg.MaterializeResult:
        return dg.MaterializeResult(data_version=dg.DataVersion("rows-v2"))

    dg.materialize([selfies_new_rows], instance=instance)
    assert changed_assets(instance, defs.resolve_asset_graph(), data_root=None) == {
        dg.AssetKey("selfie_model"): "upstream selfies has new data"}


def test_real_definitions_carry_the_schedule_and_the_sensor():
    assert real_defs.resolve_schedule_def("retrain_changed").cron_schedule == "0 3 * * 1"
    assert real_defs.resolve_sensor_def("new_source_data") is not None


def _sensor_tick(sensor, defs, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      repository_def=defs.get_repository_def())
    result = sensor.evaluate_tick(context)
    return result, context.cursor


def test_a_new_file_triggers_exactly_one_run_for_its_source_and_no_change_none(tmp_path,
                                                                             instance):
    folder = tmp_path / "Selfie-dataset"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.jpg").write_bytes(b"x")
    other = tmp_path / "landmarks"
    other.mkdir()
    sources = {"selfies": {"mode": "local", "path": str(folder)},
               "landmark_photos": {"mode": "local", "path": str(other)},
               "oxford_pets": {"mode": "synthetic", "path": None}}
    sensor = build_new_data_sensor(sources)
    defs = _toy_defs()

    first, cursor = _sensor_tick(sensor, defs, instance, None)
    assert first.run_requests == []  # the first tick records what is there
    same, cursor = _sensor_tick(sensor, defs, instance, cursor)
    assert same.run_requests == []

    (folder / "images" / "b.jpg").write_bytes(b"yy")
    grown, cursor = _sensor_tick(sensor, defs, instance, cursor)
    assert _requested(grown) == [["selfie_model", "selfies"]]
    assert grown.run_requests[0].run_key.startswith("selfies:")
    again, cursor = _sensor_tick(sensor, defs, instance, cursor)
    assert again.run_requests == []


def test_fingerprint_sees_new_rows_in_a_manifest_file(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("url,site,pose\n")
    before = folder_fingerprint(manifest)
    manifest.write_text("url,site,pose\nhttp://127.0.0.1/a.jpg,eiffel,arms_up\n")
    assert folder_fingerprint(manifest) != before


@pytest.mark.parametrize("missing", [True, False])
def test_a_missing_output_on_disk_is_a_change(tmp_path, missing, instance):
    from orchestration.kit.stages import Stage

    @dg.asset(code_version="1", **{"metadata": Stage(__name__, outs=("reports/x",)).metadata()})
    def x_report() -> None:
        return None

    dg.materialize([x_report], instance=instance)
    if not missing:
        (tmp_path / "reports" / "x").mkdir(parents=True)
    graph = dg.Definitions(assets=[x_report]).resolve_asset_graph()
    reasons = changed_assets(instance, graph, data_root=tmp_path)
    assert reasons == ({dg.AssetKey("x_report"): "output missing: reports/x"} if missing else {})


def test_every_report_carries_the_freshness_policy():
    reports = [s for s in real_defs.resolve_all_asset_specs() if s.key.path[-1].endswith("report")]
    assert len(reports) >= 5
    for spec in reports:
        assert spec.freshness_policy is not None, spec.key
