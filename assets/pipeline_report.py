"""The pipeline report: one page gathering every model's headline against its baseline."""


import json

import dagster as dg
import pandas as pd

from assets.metadata import path_value
from lenslab.params import REPO_ROOT
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.history import latest_tags
from orchestration.kit.resources import DataRoot
from orchestration.kit.stages import Stage

FOLDER = "reports/pipeline"
STAGE = Stage(__name__,
    outs=(f"{FOLDER}/report.md", f"{FOLDER}/report.html", f"{FOLDER}/headlines.json"),
    metrics=(f"{FOLDER}/metrics.json",),
    plots=(f"{FOLDER}/headlines.png",),
)
REPORTS = ["style_report", "selfie_report", "photobook_report", "similarity_report",
           "aesthetics_report"]


@dg.asset(
    group_name="reports", kinds={"python", "html", "markdown"},
    deps=["image_catalog", *REPORTS],
    **STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="Every model's held-out headline beside its baseline and the seed's figure, the "
    "data counts, and the code and data versions of every asset (HTML and markdown); "
    "`dvc metrics show` and `dvc plots show` read its metrics.json and plot.",
)
def pipeline_report(context: dg.AssetExecutionContext, data_root: DataRoot
                    ) -> dg.MaterializeResult:
    from lenslab import atomic
    from lenslab import pipeline_report as pr
    from lenslab.dvc_lock import dvc_lock_hashes

    root = data_root.layout().root
    out = root / FOLDER
    rows, missing = pr.collect(root)
    for system in missing:
        context.log.warning(f"{system}: no report yet, left out of the pipeline report")
    catalog = pd.read_parquet(data_root.layout().catalog, columns=["source"])
    counts = catalog["source"].value_counts().sort_index().to_dict()
    lock = dvc_lock_hashes(REPO_ROOT / "dvc.lock")
    versions = []
    for key in sorted(context.instance.get_asset_keys(), key=lambda k: k.to_user_string()):
        tags = latest_tags(context.instance, key)
        name = key.to_user_string()
        md5 = ", ".join(v[:12] for k, v in lock.items() if k == f"data/{name}"
                        or k.startswith(f"data/{name}/")) or "–"
        versions.append({"asset": name, "code_version": tags.get("dagster/code_version", "–"),
                         "data_version": tags.get("dagster/data_version", "–")[:16],
                         "dvc_md5": md5})
    pr.headline_plot(rows, out / "headlines.png")
    text = pr.markdown(rows, missing, counts, versions, "headlines.png")
    atomic.write_text(out / "report.md", text)
    atomic.write_text(out / "report.html", pr.to_html(text))
    atomic.write_text(out / "metrics.json", json.dumps(pr.flat_metrics(rows), indent=2))
    atomic.write_text(out / "headlines.json", json.dumps(pr.as_records(rows), indent=2))
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.url((out / "report.html").as_uri()),
        "report_path": path_value(out / "report.html"),
        "metrics_path": path_value(out / "metrics.json"),
        "systems": len({r.system for r in rows}),
        "not_yet_materialised": ", ".join(missing) or "none",
        "headlines": dg.MetadataValue.md(text.split("\n## Data")[0]),
    })
