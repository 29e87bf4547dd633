"""The pipeline report from metrics files alone: headlines, missing systems, HTML, DVC metrics."""

import json

from lenslab import pipeline_report as pr
from lenslab.dvc_lock import dvc_lock_hashes


def _write(root, folder, payload):
    path = root / folder / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload))


def test_headlines_pair_each_model_with_its_baseline_and_missing_systems_are_named(tmp_path):
    _write(tmp_path, "reports/selfie", {"models": {
        "head": {"roc_auc": 0.8, "accuracy": 0.7, "best_val_auc": 0.81},
        "finetune": {"roc_auc": 0.85, "accuracy": 0.75, "best_val_auc": 0.79},
        "scratch": {"roc_auc": 0.6, "accuracy": 0.6, "best_val_auc": 0.7}}})
    rows, missing = pr.collect(tmp_path)
    assert "style" in missing and "selfie" not in missing
    auc = next(r for r in rows if r.metric == "ROC-AUC (test)")
    # the transfer model shown is the one chosen on validation, not the best on test
    assert auc.model == "transfer (head)" and auc.value == 0.8 and auc.baseline == 0.6
    assert round(auc.gain, 6) == 0.2
    flat = pr.flat_metrics(rows)
    assert flat["selfie"]["ROC-AUC (test) (baseline)"] == 0.6


def _ident(top1, ci):
    return {"top1": top1, "top5": 1.0, "top1_ci95": ci, "top5_ci95": [1.0, 1.0],
            "unit": "base scene", "units": 40}


def test_every_row_shows_its_interval_and_unit_and_says_what_it_is(tmp_path):
    resampling = {"unit": "photo", "units": 30}
    _write(tmp_path, "reports/selfie", {"models": {
        n: {"roc_auc": a, "accuracy": a, "best_val_auc": a, "roc_auc_ci95": [a - .1, a + .1],
            "accuracy_ci95": [a - .1, a + .1], "resampling": resampling}
        for n, a in (("head", 0.8), ("finetune", 0.7), ("scratch", 0.6))}})
    _write(tmp_path, "reports/style", {
        "labels": "kmeans_clusters",
        "identification": {"test/embedding_classifier": _ident(0.9, [0.85, 0.95]),
                           "test/baseline_logreg_features": _ident(0.5, [0.4, 0.6])},
        "clustering": {"nmi_standardised": 0.6, "nmi_seed": 0.3, "unit": "photo",
                       "units": 100, "nmi_standardised_ci95": [0.55, 0.65],
                       "nmi_seed_ci95": [0.25, 0.35], "held_out": False}})
    rows, _ = pr.collect(tmp_path)
    assert all(r.ci95 is not None and r.unit for r in rows)
    # clusters as labels: no "photographer top-1"; the NMI is not a held-out figure
    assert {r.metric for r in rows if r.system == "style"} == {
        "cluster top-1 (test)", "cluster top-5 (test)",
        "cluster NMI vs photographers (not held out: KMeans saw every photo)"}
    assert [r.held_out for r in rows if "NMI" in r.metric] == [False]
    text = pr.markdown(rows, [], {}, [], "headlines.png")
    assert "| 0.800 [0.700, 0.900] |" in text and "| photo (30) |" in text
    assert "| base scene (40) |" in text and "0.500 [0.400, 0.600]" in text
    assert "Every figure is measured on held-out test data" not in text


def test_markdown_and_html_carry_tables_versions_and_the_plot(tmp_path):
    rows = [pr.Headline("selfie", "ROC-AUC (test)", "m", 0.8, "b", 0.6, "")]
    text = pr.markdown(rows, ["pose"], {"selfies": 10},
                       [{"asset": "selfies", "code_version": "abc", "data_version": "def",
                         "dvc_md5": "123"}], "headlines.png")
    assert "Not yet materialised: pose." in text and "| selfies | abc | def | 123 |" in text
    page = pr.to_html(text)
    assert page.count("<table>") == 3 and '<img src="headlines.png"' in page
    pr.headline_plot(rows, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_dvc_lock_hashes_map_outputs_to_md5(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  a:\n    cmd: x\n    outs:\n"
                    "    - path: data/catalog\n      md5: abc.dir\n")
    assert dvc_lock_hashes(lock) == {"data/catalog": "abc.dir"}
    assert dvc_lock_hashes(tmp_path / "none") == {}


def test_a_section_that_needs_ground_truth_says_it_is_absent(tmp_path):
    # real photographer folders: identification is measured, clustering has no true labels
    ident = {"test/embedding_classifier": {"top1": 0.8, "top5": 0.95},
             "test/baseline_logreg_features": {"top1": 0.7, "top5": 0.9}}
    _write(tmp_path, "reports/style", {"identification": ident})
    rows, _ = pr.collect(tmp_path)
    nmi = next(r for r in rows if r.metric == "cluster NMI vs photographers")
    assert nmi.value is None and "no ground truth" in nmi.absent
    assert next(r for r in rows if r.metric == "photographer top-1 (test)").value == 0.8
    text = pr.markdown(rows, [], {}, [], "headlines.png")
    assert "absent: no ground truth" in text
    assert "cluster NMI vs photographers" not in pr.flat_metrics(rows)["style"]
    pr.headline_plot(rows, tmp_path / "h.png")
