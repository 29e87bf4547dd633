"""The Dagster definitions load, are well-formed, and agree with params.yaml and dvc.yaml."""

import dagster as dg
import yaml

from lenslab.params import REPO_ROOT, param
from lenslab.paths import SOURCES
from orchestration.definitions import defs
from orchestration.dvc_stages import build_dvc_pipeline, render
from orchestration.kit.stages import stage_of


def _graph():
    return defs.resolve_asset_graph()


def test_definitions_load_with_every_source_and_the_catalog():
    keys = {k.to_user_string() for k in _graph().get_all_asset_keys()}
    assert set(SOURCES) | {"image_catalog"} <= keys
    assert defs.resolve_job_def("pipeline") is not None


def test_every_asset_has_a_group_kinds_a_stage_and_a_code_version():
    graph = _graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name, key
        assert node.kinds, key
        assert stage_of(node.metadata) is not None, key
        assert node.code_version, key


def test_ingestion_assets_are_grouped_by_stage():
    graph = _graph()
    for source in SOURCES:
        assert graph.get(dg.AssetKey(source)).group_name == "ingestion"
    assert graph.get(dg.AssetKey("image_catalog")).group_name == "catalog"


def test_config_defaults_come_from_params_yaml():
    job = defs.resolve_job_def("pipeline")
    schema = job.run_config_schema.config_type.fields["ops"].config_type.fields
    oxford = schema["oxford_pets"].config_type.fields["config"].config_type.fields
    assert oxford["mode"].default_value == param("sources.oxford_pets.mode")
    assert oxford["scale"].default_value == param("synthetic.scale")
    catalog = schema["image_catalog"].config_type.fields["config"].config_type.fields
    assert catalog["max_side"].default_value == param("catalog.max_side")


def test_dvc_yaml_is_derived_from_the_asset_graph():
    committed = (REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8")
    assert committed == render(build_dvc_pipeline(defs)), (
        "dvc.yaml drifted from the asset graph: run `python -m orchestration.dvc_stages --write`"
    )
    stages = yaml.safe_load(committed)["stages"]
    assert set(stages) >= set(SOURCES) | {"image_catalog"}
    # the catalog stage depends on every source's output, as the asset depends on every source
    for source in SOURCES:
        assert f"data/raw/{source}" in stages["image_catalog"]["deps"]
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m orchestration.launch --assets key:{name} --in-process"
        for key in stage.get("params", []):
            assert param(key) is not None or key in yaml.safe_load(
                (REPO_ROOT / "params.yaml").read_text()), key
