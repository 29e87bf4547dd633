"""bench/inference runs end to end on a tiny input, so the harness cannot rot."""

import json
import subprocess
import sys

import pytest

from lenslab.params import REPO_ROOT


@pytest.mark.slow
def test_the_inference_benchmark_times_a_command_beside_the_direct_call():
    run = subprocess.run([sys.executable, str(REPO_ROOT / "bench/inference/run.py"),
                          "--photos", "4", "--repeats", "1", "--process-runs", "1",
                          "--cold-runs", "1", "--only", "album", "models"],
                         capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    album = out["results"]["album"]
    assert album["in_process_photos_per_s"] > 0 and album["direct_with_decoding_photos_per_s"] > 0
    assert album["in_process_over_direct_with_decoding_median"] > 0
    assert out["cold_start_models_s"]["median"] > 0
