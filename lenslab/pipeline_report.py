"""The pipeline report: every model's headline metric beside its baseline and the seed's figure.

Each system's report writes ``reports/<system>/metrics.json``; ``HEADLINES`` says, once per
system, which numbers in it are the headline (always held-out test figures). The report gathers
them with the data counts and the data and code versions, as markdown, HTML and one flat
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


@dataclass(frozen=True)
class Headline:
    system: str
    metric: str
    model: str
    value: float | None  # None: not measurable on this data (see ``absent``)
    baseline_name: str
    baseline: float | None
    seed_figure: str  # what the seed reported, with its caveat; "" when it reported nothing
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


def _style(m: Mapping[str, Any]) -> list[Headline]:
    ident = m["identification"]
    model, base = ident["test/embedding_classifier"], ident["test/baseline_logreg_features"]
    nmi = ("style", "cluster NMI vs photographers", "KMeans, standardised features",
           "seed's 4 raw features")
    # clustering is scored against the true photographers, which only synthetic data know
    clustering = m.get("clustering")
    return [
        Headline("style", "photographer top-1 (test)", "photographer embeddings", model["top1"],
                 "logistic regression on global features", base["top1"],
                 "not measured by the seed"),
        Headline("style", "photographer top-5 (test)", "photographer embeddings", model["top5"],
                 "logistic regression on global features", base["top5"], ""),
        Headline(*nmi[:3], clustering["nmi_standardised"], nmi[3], clustering["nmi_seed"],
                 "not measured by the seed") if clustering
        else _needs_truth(*nmi, "not measured by the seed"),
    ]


def _selfie(m: Mapping[str, Any]) -> list[Headline]:
    models = m["models"]
    best = max(("head", "finetune"), key=lambda n: models[n]["best_val_auc"])  # chosen on val
    return [
        Headline("selfie", "ROC-AUC (test)", f"transfer ({best})", models[best]["roc_auc"],
                 "small CNN from scratch", models["scratch"]["roc_auc"],
                 "no test figure; validation accuracy 53 % (random weights) in the README"),
        Headline("selfie", "accuracy (test)", f"transfer ({best})", models[best]["accuracy"],
                 "small CNN from scratch", models["scratch"]["accuracy"], ""),
    ]


def _photobook(m: Mapping[str, Any]) -> list[Headline]:
    vectors = m["rater"]["vectors"]
    learned, svm = vectors["learned"], vectors["seed_ranksvm"]
    rows = [Headline("photobook", "held-out pairs ordered (annotators)", "learned master vector",
                     learned["accuracy_labels"]["value"], "seed's RankSVM",
                     svm["accuracy_labels"]["value"],
                     "100 % of training pairs, no held-out test (overfit)"),
            Headline("photobook", "calibration error (ECE, lower is better)",
                     "learned, Platt-calibrated", learned["ece"], "seed's RankSVM", svm["ece"],
                     "uncalibrated")]
    truth = ("photobook", "held-out pairs ordered (true quality)", "learned master vector")
    if "accuracy_truth" in learned:
        rows.insert(1, Headline(*truth, learned["accuracy_truth"]["value"],
                                "seed's RankSVM", svm["accuracy_truth"]["value"], ""))
    else:
        rows.insert(1, _needs_truth(*truth, "seed's RankSVM"))
    return rows


def _pose(m: Mapping[str, Any]) -> list[Headline]:
    models = m["models"]
    return [
        Headline("pose", "same site and pose, accuracy (test)", "siamese + pose branch (frozen)",
                 models["frozen_pose"]["accuracy"], "siamese, image only (frozen)",
                 models["frozen"]["accuracy"],
                 "val 58 % image only, 68 % with pose (82 val pairs, no test)"),
        Headline("pose", "same site and pose, ROC-AUC (test)", "siamese + pose branch (frozen)",
                 models["frozen_pose"]["roc_auc"], "siamese, image only (frozen)",
                 models["frozen"]["roc_auc"], ""),
        Headline("pose", "accuracy (test), fine-tuned trunk", "siamese + pose branch",
                 models["finetuned_pose"]["accuracy"], "siamese, image only",
                 models["finetuned"]["accuracy"], "val 65 % image only, 76 % with pose"),
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
                            r["generic_rho"], seed))
        if (k, "head") in rows:
            out.append(Headline("aesthetics", f"median per-worker Δ Spearman, k={k}",
                                "residual adapters", r["median"], "head only",
                                rows[(k, "head")]["median"], ""))
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


def headline_plot(rows: list[Headline], path: Path) -> None:
    """Model vs baseline per headline metric, as horizontal bars."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.2))
    labels = [f"{r.system}: {r.metric}" + (" (absent)" if r.value is None else "") for r in rows]
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r.value or 0 for r in rows], height=0.4, label="model")
    ax.barh([i - 0.2 for i in y], [r.baseline or 0 for r in rows], height=0.4,
            label="baseline", alpha=0.6)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("held-out value")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(rows: list[Headline], missing: list[str], counts: Mapping[str, int],
             versions: list[dict[str, str]], plot_name: str) -> str:
    lines = ["# lenslab pipeline report", "",
             "Every figure is measured on held-out test data; the baseline is beside the model.",
             "", "| system | metric | model | value | baseline | baseline value | gain | seed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        value = f"absent: {r.absent}" if r.value is None else _fmt(r.value)
        lines.append(f"| {r.system} | {r.metric} | {r.model} | {value} | "
                     f"{r.baseline_name} | {_fmt(r.baseline)} | {_fmt(r.gain)} | "
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

