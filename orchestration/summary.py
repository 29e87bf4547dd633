"""Print what the pipeline produced and where: `python -m orchestration.summary`."""

import argparse
import json
from pathlib import Path

from orchestration.kit.resources import DataRoot


def _size(path: Path) -> tuple[int, int]:
    if path.is_file():
        return 1, path.stat().st_size
    files = [f for f in path.rglob("*") if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)


def summarise(data_root: Path) -> list[dict]:
    """One row per stage output: path, file count, size, and the stage's own headline counts."""
    from orchestration.definitions import defs
    from orchestration.dvc_stages import build_dvc_pipeline

    rows = []
    for name, stage in build_dvc_pipeline(defs)["stages"].items():
        for out in stage["outs"]:
            out = out if isinstance(out, str) else next(iter(out))  # {path: {persist: true}}
            path = data_root / Path(out).relative_to("data")
            n, size = _size(path) if path.exists() else (0, 0)
            row = {"stage": name, "path": out, "files": n, "MiB": round(size / 2**20, 1)}
            report = path / "ingest_report.json"
            if report.exists():
                info = json.loads(report.read_text())
                row["headline"] = f"{info['records']} images, {len(info['rejected'])} rows rejected"
            rows.append(row)
    catalog = data_root / "catalog" / "image_catalog.parquet"
    if catalog.exists():
        import pandas as pd

        frame = pd.read_parquet(catalog)
        quarantine = pd.read_parquet(data_root / "catalog" / "quarantine.parquet")
        for row in rows:
            if row["stage"] == "image_catalog":
                row["headline"] = f"{len(frame)} images, {len(quarantine)} quarantined"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=DataRoot().path, help="the data tree")
    args = parser.parse_args()
    rows = summarise(Path(args.data_root))
    width = max(len(r["path"]) for r in rows) if rows else 10
    print(f"\nlenslab pipeline outputs under {args.data_root}:")
    for r in rows:
        sizes = f"{r['files']:>6} files {r['MiB']:>8} MiB"
        print(f"  {r['path']:<{width}}  {sizes}  {r.get('headline', '')}")
    print("\nSee them in the Dagster UI (`make ui`); version them with `dvc commit && dvc push`.")


if __name__ == "__main__":
    main()
