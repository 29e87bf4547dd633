"""The environments the set-up makes stay out of git, whether made in place or linked in."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_symlinked_mediapipe_environment_is_ignored(tmp_path):
    """A worktree or a second checkout links `.venv-mediapipe` to an existing one (a symlink is a
    file to git, so a pattern with a trailing slash misses it)."""
    shutil.copyfile(REPO / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / ".venv-mediapipe").symlink_to(tmp_path / "elsewhere")
    status = subprocess.run(["git", "status", "--porcelain", "--", ".venv-mediapipe"],
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    assert status.stdout == ""
