"""``lenslab-synth``: write one synthetic dataset, as distributed, to a folder.

    lenslab-synth oxford_pets out/pets --seed 7 --scale 0.5 --set photographers=10

writes ``out/pets/distributed/`` (the files exactly as the real dataset distributes them) and
``out/pets/ground_truth/`` (what the generator knows), and prints the generator's summary as JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lenslab import atomic
from lenslab.synthetic.registry import GENERATORS, available


def _param(dotted: str, fallback: Any) -> Any:
    """A params.yaml default, or ``fallback`` where there is no params.yaml (an installed copy)."""
    try:
        from lenslab.params import param

        return param(dotted, fallback)
    except OSError:
        return fallback


def _knob(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def knobs_of(generate: Callable[..., Any]) -> list[str]:
    """The knobs ``--set`` may give a generator: its keyword parameters but seed and scale
    (which have options of their own), and those of its module's ``plan`` when it passes
    ``**knobs`` on (the landmark generator)."""
    params = dict(inspect.signature(generate).parameters)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        planner = getattr(inspect.getmodule(generate), "plan", None)
        if planner is not None:
            params.update(inspect.signature(planner).parameters)
    return [name for name, p in params.items()
            if p.kind is p.KEYWORD_ONLY and name not in ("seed", "scale")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lenslab-synth",
        description="Generate a synthetic dataset in its real distributed format, with its "
                    "ground truth. Output: OUT_DIR/distributed/ and OUT_DIR/ground_truth/.",
        epilog=f"Sources with a generator here: {', '.join(available())}. A generator's "
               "knobs are documented in its module's docstring: "
               + ", ".join(f"{k}: {v.module}" for k, v in GENERATORS.items()),
    )
    parser.add_argument("source", metavar="SOURCE", choices=sorted(GENERATORS),
                        help=f"dataset to generate, one of: {', '.join(sorted(GENERATORS))}")
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write into")
    parser.add_argument("--seed", type=int, default=None,
                        help="root seed; same seed, same bytes (default: params.yaml `seed`)")
    parser.add_argument("--scale", type=float, default=None,
                        help="size multiplier (default: params.yaml `synthetic.scale`)")
    parser.add_argument("--set", dest="knobs", metavar="KEY=VALUE", type=_knob, action="append",
                        default=[], help="a generator knob, value parsed as YAML "
                                         "(e.g. --set photographers=10 --set defects=false)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    generator = GENERATORS[args.source]
    if not generator.available():
        print(f"lenslab-synth: no generator for {args.source} in this install", file=sys.stderr)
        return 2
    valid = knobs_of(generator.load())
    unknown = [k for k, _ in args.knobs if k not in valid]
    if unknown:
        print(f"lenslab-synth: unknown knob {', '.join(map(repr, unknown))} for {args.source}; "
              f"its knobs: {', '.join(valid)}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(_param("seed", 0))
    scale = args.scale if args.scale is not None else float(_param("synthetic.scale", 1.0))
    out = args.out_dir
    # both folders appear whole or not at all
    with atomic.atomic_dir(out / "distributed") as dist, \
            atomic.atomic_dir(out / "ground_truth") as truth:
        summary = generator(dist, truth, seed=seed, scale=scale, **dict(args.knobs))
    print(json.dumps({"source": args.source, "seed": seed, "scale": scale, **summary},
                     indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
