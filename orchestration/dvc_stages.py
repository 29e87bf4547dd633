"""Derive dvc.yaml from the asset graph, so `dvc repro` and Dagster run the same pipeline.

Each materialisable asset with a declared Stage becomes one DVC stage whose command launches that
asset through Dagster, whose outs are the asset's folders under data/, and whose deps are the
asset's code, the outs of its upstream assets and its params.yaml keys.

    python -m orchestration.dvc_stages --write   # regenerate dvc.yaml
    python -m orchestration.dvc_stages --check   # exit 1 if dvc.yaml is out of date
"""

import argparse
import sys
from pathlib import Path

import dagster as dg
import yaml

from lenslab.params import REPO_ROOT
from orchestration.kit.stages import stage_of
from orchestration.launch import launch_command

DVC_FILE = REPO_ROOT / "dvc.yaml"
DATA_DIR = "data"
HEADER = (
    "# Generated from the Dagster asset graph: python -m orchestration.dvc_stages --write\n"
    "# A test fails when it drifts. Edit orchestration/kit/stages.py and the assets, not this.\n"
)


def build_dvc_pipeline(defs: dg.Definitions) -> dict:
    """The dvc.yaml content for every asset of ``defs`` that declares a Stage."""
    graph = defs.resolve_asset_graph()
    stages: dict[str, dict] = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        stage = stage_of(node.metadata)
        if stage is None:
            continue
        upstream_outs = []
        for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
            parent_stage = stage_of(graph.get(parent).metadata)
            if parent_stage is not None:
                upstream_outs += [f"{DATA_DIR}/{o}" for o in parent_stage.outs]
        name = key.to_user_string().replace("/", "__")
        stages[name] = {
            # one process that loads the definitions once and records the run in $DAGSTER_HOME
            "cmd": launch_command(key.to_user_string()),
            "deps": [*stage.all_code(), *upstream_outs],
            **({"params": list(stage.params)} if stage.params else {}),
            "outs": [{f"{DATA_DIR}/{o}": {"persist": True}} if o in stage.persist
                     else f"{DATA_DIR}/{o}" for o in stage.outs],
            # metrics and plots go to DVC's cache, so every commit and experiment keeps its own
            # (`dvc exp show`, `dvc metrics diff` read them back; data/ is not in git)
            **({"metrics": [f"{DATA_DIR}/{m}" for m in stage.metrics]}
               if stage.metrics else {}),
            **({"plots": [f"{DATA_DIR}/{p}" for p in stage.plots]}
               if stage.plots else {}),
        }
    return {"stages": stages}


def render(pipeline: dict) -> str:
    return HEADER + yaml.safe_dump(pipeline, sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate dvc.yaml")
    group.add_argument("--check", action="store_true", help="fail if dvc.yaml is out of date")
    args = parser.parse_args(argv)
    from orchestration.definitions import defs

    text = render(build_dvc_pipeline(defs))
    current = DVC_FILE.read_text(encoding="utf-8") if DVC_FILE.exists() else ""
    if args.check:
        if current != text:
            print("dvc.yaml is out of date: run `python -m orchestration.dvc_stages --write`",
                  file=sys.stderr)
            return 1
        print("dvc.yaml matches the asset graph")
        return 0
    Path(DVC_FILE).write_text(text, encoding="utf-8")
    print(f"wrote {DVC_FILE.name} ({len(build_dvc_pipeline(defs)['stages'])} stages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
