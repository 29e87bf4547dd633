"""Run assets from the command line: a selection checked before it runs, or everything changed.

    python -m orchestration.launch --assets 'group:style'   # that system's assets
    python -m orchestration.launch --changed                # what `make demo` runs
    python -m orchestration.launch --changed --dry-run      # what would run, and why
    python -m orchestration.launch --assets image_catalog --in-process   # what dvc stages run

A selection that matches no asset is refused with the groups and assets there are (a bare
`dg launch --assets` with such a selection would run the whole pipeline). Runs go into the
instance of $DAGSTER_HOME, so they show in the UI like any other: through `dg launch` (steps in
parallel processes), or with --in-process in this process, which has already loaded the
definitions (one asset per `dvc repro` stage pays no second start-up).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
from dagster._core.definitions.asset_selection import DagsterInvalidAssetSelectionError

from orchestration.automation import changed_assets, fail_dead_runs


def resolve(selection: str, graph) -> list[dg.AssetKey]:
    """The asset keys ``selection`` (Dagster's selection syntax) matches; ValueError if none."""
    try:
        keys = dg.AssetSelection.from_string(selection).resolve(graph)
    except dg.DagsterInvalidSubsetError as error:
        raise ValueError(f"{selection!r} names an asset that does not exist ({error})") from None
    except DagsterInvalidAssetSelectionError:
        raise ValueError(f"{selection!r} is not a selection: write e.g. 'group:style', "
                         "'key:oxford_pets or key:selfies', 'oxford_pets+'") from None
    if not keys:
        groups = sorted({graph.get(k).group_name for k in graph.materializable_asset_keys})
        raise ValueError(f"{selection!r} matches no asset; groups: {', '.join(groups)} "
                         "(select one with 'group:NAME', or an asset by its name)")
    return sorted(keys, key=lambda k: k.to_user_string())


def launch_command(asset: str) -> str:
    """The shell command that materialises one asset in one process (a dvc.yaml stage's cmd)."""
    return f"python -m orchestration.launch --assets key:{asset} --in-process"


def _dg_launch(selection: str, expected: int) -> int:
    """`dg launch` with its event log in a file under $DAGSTER_HOME/logs, a line per asset here."""
    from orchestration.progress import follow

    dg_cli = Path(sys.executable).with_name("dg")  # the dg of this environment
    logs = Path(dg.DagsterInstance.get().root_directory) / "logs"
    log_path = logs / f"launch-{time.strftime('%Y%m%d-%H%M%S')}.log"
    return follow([str(dg_cli), "launch", "--assets", selection], expected, log_path)


def _in_process(keys: list[dg.AssetKey]) -> int:
    from orchestration.definitions import defs

    job = defs.resolve_job_def("pipeline")
    with dg.DagsterInstance.get() as instance:
        # INFO and up on the console: Dagster's DEBUG step events are in the instance's event log
        result = job.execute_in_process(instance=instance, asset_selection=keys,
                                        raise_on_error=False, run_config={
                                            "loggers": {"console": {"config": {
                                                "log_level": "INFO"}}}},
                                        tags={"lenslab/launched_by": "orchestration.launch"})
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.launch",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python -m orchestration.launch --assets 'group:pose'\n"
        "  python -m orchestration.launch --assets 'key:oxford_pets or key:image_catalog'\n"
        "  DAGSTER_HOME=dagster_home python -m orchestration.launch --changed --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--assets", metavar="SELECTION",
                      help="Dagster asset selection: 'group:style', 'key:image_catalog', "
                      "'oxford_pets+' (and what is downstream), combined with 'or'/'and'")
    what.add_argument("--changed", action="store_true",
                      help="every asset that changed (never materialised, code or params "
                      "changed, output missing, upstream re-runs or has new data)")
    parser.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    parser.add_argument("--in-process", action="store_true",
                        help="run the steps one after another in this process (what a dvc.yaml "
                        "stage does) instead of through `dg launch`")
    args = parser.parse_args(argv)

    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    if args.assets is not None:
        try:
            keys = resolve(args.assets, graph)
        except ValueError as error:
            print(f"launch: {error}", file=sys.stderr)
            return 2
        print(f"{len(keys)} assets selected: {', '.join(k.to_user_string() for k in keys)}")
        if args.dry_run:
            return 0
        return _in_process(keys) if args.in_process else _dg_launch(args.assets, len(keys))

    from orchestration.kit.resources import DataRoot

    with dg.DagsterInstance.get() as instance:
        for run in fail_dead_runs(instance, dry_run=args.dry_run):
            verb = "would be marked" if args.dry_run else "marked"
            print(f"run {run.run_id} ({run.status.value}) lost its process: {verb} failed")
        changed = changed_assets(instance, graph, DataRoot().layout().root)
    if not changed:
        print("nothing changed since the last materialisations: nothing to re-materialise")
        return 0
    if args.dry_run:  # every asset and why
        width = max(len(k.to_user_string()) for k in changed)
        print(f"{len(changed)} assets to materialise:")
        for key, reason in changed.items():
            print(f"  {key.to_user_string():<{width}}  {reason}")
        return 0
    reasons = Counter(changed.values())
    print(f"{len(changed)} assets to materialise ("
          + "; ".join(f"{reason}: {n}" for reason, n in reasons.most_common(4))
          + ("; ..." if len(reasons) > 4 else "") + "); --dry-run lists each")
    if args.in_process:
        return _in_process(list(changed))
    return _dg_launch(" or ".join(f"key:{k.to_user_string()}" for k in changed), len(changed))


if __name__ == "__main__":
    raise SystemExit(main())
