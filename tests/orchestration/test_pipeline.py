"""Real Dagster materialisations of the pipeline on the embedded synthetic data."""

import dagster as dg
import pandas as pd
import pytest

from assets.catalog import catalog_checks
from lenslab.paths import SOURCES, DataLayout
from orchestration.definitions import all_assets, all_checks
from orchestration.kit.http import HttpClient
from orchestration.kit.resources import DataRoot, TorchDevice

pytestmark = pytest.mark.slow

SCALE = 0.3


def _materialize(root, instance, selection=None) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {s: {"config": {"scale": SCALE}} for s in SOURCES}}
    return dg.materialize(
        [*all_assets, *all_checks],
        selection=selection,
        instance=instance,
        resources={"data_root": DataRoot(path=str(root)), "http": HttpClient(),
                   "device": TorchDevice()},
        run_config=run_config,
        raise_on_error=True,
    )


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(root, instance)
    assert result.success
    return root, result, instance


def test_whole_pipeline_materialises_and_the_data_contracts_hold(pipeline_root):
    _, result, _ = pipeline_root
    ran = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert {c.check_key.name for c in all_checks} <= set(ran), "every check ran"
    # the data contracts hold at any scale; model-quality checks are judged at full scale
    contracts = {c.check_key.name for c in catalog_checks}
    assert all(ran[name] for name in contracts), ran


def test_catalog_covers_every_source_with_normalised_copies(pipeline_root):
    root, result, _ = pipeline_root
    layout = DataLayout(root)
    catalog = pd.read_parquet(layout.catalog)
    assert set(catalog["source"]) == set(SOURCES)
    assert catalog["sha256"].str.len().eq(64).all()
    for path in catalog["normalised_path"].head(50):
        assert (root / path).is_file()
    meta = result.asset_materializations_for_node("image_catalog")[0].metadata
    assert meta["images"].value == len(catalog)


MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
         (b"GIF89a", "GIF"))


def sniffed_format(path) -> str:
    """The container format by its magic bytes, read here without Pillow."""
    with open(path, "rb") as f:
        head = f.read(16)
    return next((name for magic, name in MAGIC if head.startswith(magic)), "unknown")


def assert_oxford_formats_follow_the_bytes(root, catalog: pd.DataFrame) -> None:
    """Every Oxford image's catalogued format is what its original bytes are (the generator
    plants a PNG, a GIF and an RGBA PNG behind .jpg names), and its normalised copy is an RGB
    JPEG that opens."""
    from PIL import Image

    oxford = catalog[catalog["source"] == "oxford_pets"]
    sniffed = oxford["original_path"].map(lambda p: sniffed_format(root / p))
    wrong = oxford["format"] != sniffed
    assert not wrong.any(), list(zip(oxford["image_id"][wrong], oxford["format"][wrong],
                                     sniffed[wrong], strict=True))[:5]
    assert {"PNG", "GIF"} <= set(sniffed) and (oxford["original_path"].str.endswith(".jpg")
                                                 | ~sniffed.eq("JPEG")).all()
    for path in oxford.loc[sniffed != "JPEG", "normalised_path"]:
        with Image.open(root / path) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB"), path


def test_synthetic_oxford_defects_end_in_quarantine_or_are_normalised(pipeline_root):
    root, _, _ = pipeline_root
    catalog = pd.read_parquet(DataLayout(root).catalog)
    # images named .jpg that are really PNG/GIF are recognised by content, not by name
    assert_oxford_formats_follow_the_bytes(root, catalog)


def test_rerun_is_idempotent_and_reuses_acquired_data(pipeline_root):
    root, _, instance = pipeline_root
    layout = DataLayout(root)
    before = pd.read_parquet(layout.catalog)
    result = _materialize(root, instance)
    for source in SOURCES:
        meta = result.asset_materializations_for_node(source)[0].metadata
        assert meta["acquired"].value is False, source
    after = pd.read_parquet(layout.catalog)
    pd.testing.assert_frame_equal(before, after)


def test_after_a_rerun_with_nothing_changed_nothing_is_due_for_retraining(pipeline_root):
    """The sources re-ran (previous test) but produced the same rows: no model is retrained."""
    from orchestration.automation import changed_assets
    from orchestration.definitions import defs

    root, _, instance = pipeline_root
    assert changed_assets(instance, defs.resolve_asset_graph(), root) == {}


def test_the_pipeline_report_gathers_every_model_against_its_baseline(pipeline_root):
    import json

    root, result, _ = pipeline_root
    folder = root / "reports" / "pipeline"
    headlines = json.loads((folder / "headlines.json").read_text())
    assert {h["system"] for h in headlines} >= {"style", "selfie"}
    assert all(h["baseline"] is not None for h in headlines)
    html = (folder / "report.html").read_text()
    assert "<table>" in html and "headlines.png" in html and (folder / "headlines.png").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "ROC-AUC (test)" in metrics["selfie"]
    meta = result.asset_materializations_for_node("pipeline_report")[0].metadata
    assert meta["report"].value.endswith("report.html")
