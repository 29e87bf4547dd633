"""Embedded synthetic datasets, written in each real dataset's exact distributed format.

Each generator has the signature
    generate(distributed: Path, ground_truth: Path, *, seed: int, scale: float, **knobs) -> dict
It writes the files as the real dataset distributes them into ``distributed`` and what it knows
(the ground truth) into ``ground_truth``, and returns a small JSON-able summary.
"""
