#!/usr/bin/env bash
# Create the isolated environment of the `mediapipe` pose backend (BlazePose, weights in the wheel).
#
# Usage: bash scripts/install_mediapipe.sh [PYTHON]     (default: .venv/bin/python's interpreter)
#
# mediapipe 0.10.14 pins protobuf < 5 and was built against NumPy 1.x, while lenslab's venv has
# dagster's protobuf and NumPy 2; installing it there would break one or the other. So it gets its
# own venv (.venv-mediapipe, or $MEDIAPIPE_VENV) holding only mediapipe and its pins, and
# lenslab runs scripts/mediapipe_worker.py in it as a subprocess. Idempotent: a stamp of the pins
# makes a second run return at once; uv's cache makes a rebuild cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MEDIAPIPE_VENV:-.venv-mediapipe}
PY=${1:-.venv/bin/python}
PINS=("mediapipe==0.10.14" "numpy<2")
stamp="$VENV/.lenslab-mediapipe"
want=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
  exit 0
fi
UV=(uv)
command -v uv >/dev/null 2>&1 || UV=("$PY" -m uv)
[[ -x "$VENV/bin/python" ]] || "${UV[@]}" venv --quiet "$VENV" -p "$PY"
"${UV[@]}" pip install --quiet -p "$VENV/bin/python" "${PINS[@]}"
"$VENV/bin/python" -c "import mediapipe as mp; mp.solutions.pose.Pose" \
  || { echo "install_mediapipe: mediapipe does not import in $VENV" >&2; exit 1; }
echo "$want" > "$stamp"
echo "install_mediapipe: $VENV ready"
