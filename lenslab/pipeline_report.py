"""The pipeline report: every model's headline metric beside its baseline and the seed's figure.

Each system's report writes ``reports/<system>/metrics.json``; ``HEADLINES`` says, once per
system, which numbers in it are the headline, with the 95% interval and the unit its bootstrap
resampled (photo, burst, base scene, site or folder, worker). Held-out test figures, except
where a row says otherwise (the cluster NMI: KMeans saw every photo). The report gathers them
with the data counts and the data and code versions, as markdown, HTML and one flat
``metrics.json`` that `dvc metrics show` reads.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Interval = tuple[float, float] | None


@dataclass(frozen=True)
class Headline:
    system: str
    metric: str
    model: str
    value: float | None  # None: not measurable on this data (see ``absent``)
    baseline_name: str
    baseline: float | None
    seed_figure: str  # what the seed reported, with its caveat; "" when it reported nothing
    ci95: Interval = None
    baseline_ci95: Interval = None
    unit: str = ""  # what the bootstrap resampled, with how many of them
    held_out: bool = True
    absent: str = ""  # why the figure is missing, e.g. no ground truth for real photos

    @property
    def gain(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        return self.value - self.baseline


NO_GROUND_TRUTH = "no ground truth (known only for the synthetic data)"


def _needs_truth(system: str, metric: str, model: str, baseline_name: str,
                 seed_figure: str = "") -> Headline:
    """The row of a figure that only ground truth can give, where the data carry none."""
    return Headline(system, metric, model, None, baseline_name, None, seed_figure,
                    absent=NO_GROUND_TRUTH)


def _ci(entry: Mapping[str, Any], key: str) -> Interval:
    ci = entry.get(key)
    return None if ci is None else (float(ci[0]), float(ci[1]))


def _unit(entry: Mapping[str, Any]) -> str:
    if not entry.get("unit"):
        return ""
    return f"{entry['unit']} ({entry['units']})" if "units" in entry else str(entry["unit"])


def _style(m: Mapping[str, Any]) -> list[Headline]:
    ident = m["identification"]
    model, base = ident["test/embedding_classifier"], ident["test/baseline_logreg_features"]
    # with KMeans clusters as labels (real Oxford pets) no photographer is identified
    what = "cluster" if m.get("labels") == "kmeans_clusters" else "photographer"
    rows = [
        Headline("style", f"{what} top-{k} (test)", "photographer embeddings", model[f"top{k}"],
                 "logistic regression on global features", base[f"top{k}"], seed,
                 _ci(model, f"top{k}_ci95"), _ci(base, f"top{k}_ci95"), _unit(model))
        for k, seed in ((1, "not measured by the seed"), (5, ""))]
    clusters = m.get("clustering")
    if clusters and "nmi_standardised" in clusters:
        rows.append(Headline(
            "style", "cluster NMI vs photographers (not held out: KMeans saw every photo)",
            "KMeans, standardised features", clusters["nmi_standardised"],
            "seed's 4 raw features", clusters["nmi_seed"], "not measured by the seed",
            _ci(clusters, "nmi_standardised_ci95"), _ci(clusters, "nmi_seed_ci95"),
            _unit(clusters), held_out=False))
    else:  # clustering is scored against the true photographers, which only synthetic data know
        rows.append(_needs_truth("style", "cluster NMI vs photographers",
                                 "KMeans, standardised features", "seed's 4 raw features",
                                 "not measured by the seed"))
    return rows


def _selfie(m: Mapping[str, Any]) -> list[Headline]:
    models = m["models"]
    best = max(("head", "finetune"), key=lambda n: models[n]["best_val_auc"])  # chosen on val
    chosen, scratch = models[best], models["scratch"]
    unit = _unit(chosen.get("resampling", {}))
    return [
        Headline("selfie", "ROC-AUC (test)", f"transfer ({best})", chosen["roc_auc"],
                 "small CNN from scratch", scratch["roc_auc"],
                 "no test figure; validation accuracy 53 % (random weights) in the README",
                 _ci(chosen, "roc_auc_ci95"), _ci(scratch, "roc_auc_ci95"), unit),
        Headline("selfie", "accuracy (test)", f"transfer ({best})", chosen["accuracy"],
                 "small CNN from scratch", scratch["accuracy"], "",
                 _ci(chosen, "accuracy_ci95"), _ci(scratch, "accuracy_ci95"), unit),
    ]


def _photobook(m: Mapping[str, Any]) -> list[Headline]:
    vectors = m["rater"]["vectors"]
    learned, svm = vectors["learned"], vectors["seed_ranksvm"]

    def row(metric: str, key: str, seed: str) -> Headline:
        return Headline("photobook", metric, "learned master vector", learned[key]["value"],
                        "seed's RankSVM", svm[key]["value"], seed, _ci(learned[key], "ci95"),
                        _ci(svm[key], "ci95"), _unit(learned[key]))

    rows = [row("pairs ordered as annotated, both photos held out (test)",
                "accuracy_labels_strict",
                "100 % of training pairs, no held-out test (overfit)")]
    truth = "pairs ordered by true quality, both photos held out (test)"
    if "accuracy_truth_strict" in learned:
        rows.append(row(truth, "accuracy_truth_strict", ""))
    else:
        rows.append(_needs_truth("photobook", truth, "learned master vector", "seed's RankSVM"))
    rows.append(row("pairs ordered as annotated, one photo may be a training photo (test)",
                    "accuracy_labels", ""))
    if "ece" in learned:
        rows.append(Headline("photobook", "calibration error (ECE, lower is better; test)",
                             "learned, Platt-calibrated", learned["ece"], "seed's RankSVM",
                             svm["ece"], "uncalibrated", _ci(learned, "ece_ci95"),
                             _ci(svm, "ece_ci95"), _unit(learned["accuracy_labels"])))
    return rows


def _pose(m: Mapping[str, Any]) -> list[Headline]:
    models = m["models"]
    unit = _unit(m.get("resampling", {}))

    def row(metric: str, model: str, key: str, with_pose: str, image_only: str,
            seed: str) -> Headline:
        a, b = models[with_pose], models[image_only]
        return Headline("pose", metric, model, a[key], model.replace(" + pose branch", "")
                        + ", image only", b[key], seed, _ci(a, f"{key}_ci95"),
                        _ci(b, f"{key}_ci95"), unit)

    return [
        row("same site and pose, accuracy (test)", "siamese + pose branch (frozen)",
            "accuracy", "frozen_pose", "frozen",
            "val 58 % image only, 68 % with pose (82 val pairs, no test)"),
        row("same site and pose, ROC-AUC (test)", "siamese + pose branch (frozen)", "roc_auc",
            "frozen_pose", "frozen", ""),
        row("accuracy (test), fine-tuned trunk", "siamese + pose branch", "accuracy",
            "finetuned_pose", "finetuned", "val 65 % image only, 76 % with pose"),
    ]


def _aesthetics(m: Mapping[str, Any]) -> list[Headline]:
    rows = {(r["k"], r["method"]): r for r in m["results"]}
    out = []
    for k, seed in ((100, "no numbers (notebooks cleared); Ren et al.: +0.039 Spearman at k=100"),
                    (10, "")):
        if (k, "adapters") not in rows:
            continue
        r = rows[(k, "adapters")]
        out.append(Headline("aesthetics", f"median per-worker Spearman, k={k} (held-out)",
                            "residual adapters", r["personal_rho"], "generic model",
                            r["generic_rho"], seed, _ci(r, "personal_rho_ci95"),
                            _ci(r, "generic_rho_ci95"), _unit(r)))
        if (k, "head") in rows:
            h = rows[(k, "head")]
            out.append(Headline("aesthetics", f"median per-worker Δ Spearman, k={k}",
                                "residual adapters", r["median"], "head only", h["median"], "",
                                _ci(r, "median_ci95"), _ci(h, "median_ci95"), _unit(r)))
    return out


# system -> (report folder under data/, headline extractor)
HEADLINES: dict[str, tuple[str, Callable[[Mapping[str, Any]], list[Headline]]]] = {
    "style": ("reports/style", _style),
    "selfie": ("reports/selfie", _selfie),
    "photobook": ("reports/photobook", _photobook),
    "pose": ("reports/pose", _pose),
    "aesthetics": ("reports/aesthetics", _aesthetics),
}


def collect(data_root: Path) -> tuple[list[Headline], list[str]]:
    """Headlines of every system whose report exists, and the systems without one yet."""
    rows: list[Headline] = []
    missing: list[str] = []
    for system, (folder, extract) in HEADLINES.items():
        path = data_root / folder / "metrics.json"
        if not path.is_file():
            missing.append(system)
            continue
        rows += extract(json.loads(path.read_text(encoding="utf-8")))
    return rows, missing


def flat_metrics(rows: list[Headline]) -> dict[str, dict[str, float | None]]:
    """{system: {metric: value, metric (baseline): value}} for `dvc metrics show`."""
    out: dict[str, dict[str, float | None]] = {}
    for r in rows:
        if r.value is None:  # absent figures are not metrics DVC could compare
            continue
        out.setdefault(r.system, {})[r.metric] = round(r.value, 4)
        if r.baseline is not None:
            out[r.system][f"{r.metric} (baseline)"] = round(r.baseline, 4)
    return out


def _errors(values: list[float], cis: list[Interval]) -> list[list[float]]:
    """Error bar lengths below and above each value (0 where there is no interval)."""
    below = [0.0 if ci is None else max(v - ci[0], 0.0) for v, ci in zip(values, cis,
                                                                           strict=True)]
    above = [0.0 if ci is None else max(ci[1] - v, 0.0) for v, ci in zip(values, cis,
                                                                           strict=True)]
    return [below, above]


def headline_plot(rows: list[Headline], path: Path) -> None:
    """Model vs baseline per headline metric, as horizontal bars with their 95% intervals."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.2))
    labels = [f"{r.system}: {r.metric}" + (" (absent)" if r.value is None else "") for r in rows]
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r.value or 0 for r in rows], height=0.4, label="model",
            xerr=_errors([r.value or 0 for r in rows], [r.ci95 for r in rows]), capsize=2)
    ax.barh([i - 0.2 for i in y], [r.baseline or 0 for r in rows], height=0.4,
            label="baseline", alpha=0.6,
            xerr=_errors([r.baseline or 0 for r in rows], [r.baseline_ci95 for r in rows]),
            capsize=2)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("held-out value")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None, ci: Interval = None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if ci is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(rows: list[Headline], missing: list[str], counts: Mapping[str, int],
             versions: list[dict[str, str]], plot_name: str) -> str:
    lines = ["# lenslab pipeline report", "",
             "Figures are measured on held-out test data unless the metric says otherwise; the "
             "baseline is beside the model. Intervals are 95% percentile bootstraps that "
             "resample the unit named (how many in brackets), not the single items.",
             "", "| system | metric | model | value [95% CI] | baseline | baseline value "
             "[95% CI] | gain | resampled unit | seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        value = f"absent: {r.absent}" if r.value is None else _fmt(r.value, r.ci95)
        lines.append(f"| {r.system} | {r.metric} | {r.model} | {value} | "
                     f"{r.baseline_name} | {_fmt(r.baseline, r.baseline_ci95)} | "
                     f"{_fmt(r.gain)} | {r.unit or 'none (no interval)'} | "
                     f"{r.seed_figure or '–'} |")
    if missing:
        lines += ["", f"Not yet materialised: {', '.join(missing)}."]
    lines += ["", f"![headline metrics]({plot_name})", "", "## Data", "",
              "| source | images in the catalog |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    lines += ["", "## Versions", "",
              "| asset | code version | data version | DVC hash of its outputs (dvc.lock) |",
              "|---|---|---|---|"]
    lines += [f"| {v['asset']} | {v['code_version']} | {v['data_version']} | {v['dvc_md5']} |"
              for v in versions]
    return "\n".join(lines) + "\n"


def to_html(markdown_text: str) -> str:
    """A self-contained page: tables as HTML tables, the rest as paragraphs."""
    body: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *rest = table
            body.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                                  for row in rest) + "</table>")
            table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-"):
                table.append(cells)
            continue
        flush()
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            body.append(f'<img src="{html.escape(src)}" alt="headline metrics">')
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>lenslab pipeline report"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def as_records(rows: list[Headline]) -> list[dict[str, Any]]:
    return [asdict(r) | {"gain": r.gain} for r in rows]

