#!/usr/bin/env bash
# Build and install openpifpaf 0.13.11 against the torch already in a virtual environment.
#
# Usage: bash scripts/install_openpifpaf.sh [VENV_PYTHON]      (default: .venv/bin/python)
#
# openpifpaf 0.13.11 on PyPI pins torch==1.13.1 / torchvision==0.14.1 and compiles its C++
# extension with -std=c++17, while current torch headers need C++20 (upstream issue
# openpifpaf/openpifpaf#630). This script:
#   1. is a no-op when the right build is already installed in that venv (same openpifpaf
#      version and patch revision, built against the venv's current torch, compiled library and
#      runtime deps present; checked from package metadata in ~0.1 s, without importing torch);
#   2. otherwise installs a cached wheel from ${LENSLAB_WHEEL_CACHE:-~/.cache/lenslab/wheels}
#      keyed by openpifpaf version + patch revision + torch version + python tag + platform;
#   3. otherwise downloads the sdist from PyPI (pip, hash-checked against the pin below),
#      applies our small patches (see apply_patches below), builds a wheel with
#      --no-build-isolation against the venv's torch, caches it and installs it with --no-deps;
#   4. then installs openpifpaf's genuine runtime dependencies that are missing
#      (never torch/torchvision, which the venv already pins), and checks that openpifpaf
#      imports and its C++ ops library loads.
# The venv needs no pip of its own: if it has none, pip is run from the wheel that the
# interpreter's ensurepip ships (nothing is installed into the venv for that).
# Environment: LENSLAB_WHEEL_CACHE (cache folder), LENSLAB_KEEP_BUILD=1 (keep the build folder),
# MAX_JOBS (parallel compile jobs, read by torch's build extension).
set -euo pipefail

OPP_VERSION=0.13.11
# sha256 of openpifpaf-0.13.11.tar.gz as published on PyPI.
OPP_SDIST_SHA256=f15936201fe5180fddda9e42437d4c41d6884e6130387e9e67dfc79240dcc61b
# Bump whenever apply_patches changes: it is part of the cache key and of the no-op check.
PATCH_REV=1
# Versions of the runtime dependencies this build was tested with (used as constraints only
# for dependencies that are missing; installed ones are left alone).
DEP_CONSTRAINTS=("pysparkling==0.6.2" "python-json-logger==4.2.0")

PY=${1:-.venv/bin/python}
CACHE_ROOT=${LENSLAB_WHEEL_CACHE:-$HOME/.cache/lenslab/wheels}

log() { printf 'install_openpifpaf: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x "$PY" ]] || command -v "$PY" >/dev/null 2>&1 || die "no python at '$PY'"
# Absolute path, so that it still resolves after we cd into the build folder.
PY=$("$PY" -c 'import os, sys; print(os.path.abspath(sys.executable))')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lenslab-openpifpaf.XXXXXX")
cleanup() {
  if [[ "${LENSLAB_KEEP_BUILD:-0}" == 1 ]]; then log "build folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
cd "$WORK"  # keeps any 'openpifpaf' folder in the caller's directory off sys.path

# ---------------------------------------------------------------------------------------------
# 0. Facts about the venv (from package metadata: importing torch alone takes seconds) and
#    whether the right build is already installed: same openpifpaf version, same patch revision,
#    built against the torch now installed, compiled library present, runtime deps satisfied.
#    The full import check (installed_ok) runs after every install.
read -r TORCH_VERSION PY_TAG PLATFORM STATE < <(OPP_VERSION=$OPP_VERSION PATCH_REV=$PATCH_REV "$PY" - <<'EOF'
import os, re, sys, sysconfig
from importlib import metadata

# torch.__version__ keeps the local tag (+cu130, +cpu) that the metadata version may drop; read it
# from torch/version.py without importing torch.
torch_dist = metadata.distribution("torch")
torch_version = re.search(r"^__version__ = '([^']+)'", torch_dist.locate_file("torch/version.py")
                          .read_text(), re.M).group(1)
state = "ok"
try:
    dist = metadata.distribution("openpifpaf")
    files = {str(f).replace(os.sep, "/"): f for f in dist.files or []}
    stamp = files.get("openpifpaf/_lenslab_build.py")
    text = dist.locate_file(stamp).read_text() if stamp else ""
    built = dict(re.findall(r"^(\w+) = '?([^'\n]*)'?$", text, re.M))
    if (dist.version != os.environ["OPP_VERSION"]
            or built.get("PATCH_REV") != os.environ["PATCH_REV"]
            or built.get("TORCH_VERSION") != torch_version
            or not any(n.startswith("openpifpaf/_cpp") and os.path.exists(dist.locate_file(f))
                       for n, f in files.items())):
        state = "stale"
    else:
        for name in ("pysparkling", "python-json-logger"):
            metadata.version(name)
except (metadata.PackageNotFoundError, OSError):
    state = "missing"
print(torch_version, f"cp{sys.version_info[0]}{sys.version_info[1]}",
      sysconfig.get_platform().replace("-", "_").replace(".", "_"), state)
EOF
) || die "torch is not installed in the environment of $PY (install the project's requirements first)"

if [[ "$STATE" == ok ]]; then
  log "openpifpaf $OPP_VERSION (lenslab patch rev $PATCH_REV, torch $TORCH_VERSION) already installed: nothing to do"
  exit 0
fi

# Full check, run after installing: imports openpifpaf (which loads its compiled ops library
# and every plugin) and the lazily imported json logger.
installed_ok() {
  OPP_VERSION=$OPP_VERSION PATCH_REV=$PATCH_REV "$PY" - <<'EOF'
import os
import torch
import openpifpaf
import pythonjsonlogger  # noqa: F401
from openpifpaf import _lenslab_build as b
assert openpifpaf.__version__ == os.environ["OPP_VERSION"], openpifpaf.__version__
assert b.PATCH_REV == int(os.environ["PATCH_REV"]), b.PATCH_REV
assert b.TORCH_VERSION == torch.__version__, (b.TORCH_VERSION, torch.__version__)
assert torch.classes.openpifpaf_decoder.CifCaf is not None
EOF
}

# ---------------------------------------------------------------------------------------------
# pip: the venv's own if it has one, else the one bundled with the interpreter's ensurepip
# (run from a temporary folder, so the venv is not changed).
PIP_PATH=""    # folder holding a pip to run, when the venv has none
EXTRA_PATH=""  # build tools installed into the build folder, when the venv lacks them
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  "$PY" - "$WORK/pip" <<'EOF' || die "the venv has no pip and its python has no ensurepip bundle"
import glob, os, sys, zipfile
import ensurepip
wheels = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
if not wheels:
    sys.exit(1)
zipfile.ZipFile(sorted(wheels)[-1]).extractall(sys.argv[1])
EOF
  PIP_PATH="$WORK/pip"
fi
# Run the venv's python with pip (and the build tools, if any) importable.
py_with_pip() {
  local pp
  pp=$(printf '%s:' "$EXTRA_PATH" "$PIP_PATH" "${PYTHONPATH:-}" | tr -s ':' | sed 's/^://; s/:$//')
  PYTHONPATH="$pp" PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" "$@"
}
pip() { py_with_pip -m pip "$@"; }

KEY="openpifpaf-${OPP_VERSION}_lenslab-p${PATCH_REV}_torch-${TORCH_VERSION}_${PY_TAG}-${PLATFORM}"
CACHE_DIR="$CACHE_ROOT/$KEY"
WHEEL=$(compgen -G "$CACHE_DIR/openpifpaf-${OPP_VERSION}-*.whl" | head -n1 || true)

# ---------------------------------------------------------------------------------------------
# Our patches to the unpacked sdist. Every edit must find its target text (the sdist is pinned
# by hash, so a miss means this script is out of date, not the source).
apply_patches() {
  "$PY" - "$1" "$PATCH_REV" "$TORCH_VERSION" <<'EOF'
import pathlib, re, sys

root = pathlib.Path(sys.argv[1])
patch_rev, torch_version = int(sys.argv[2]), sys.argv[3]


def edit(rel, old, new, count=1):
    path = root / rel
    text = path.read_text(encoding="utf-8")
    found = text.count(old)
    if found != count:
        sys.exit(f"patch target not found as expected in {rel}: {old!r} ({found} != {count})")
    path.write_text(text.replace(old, new), encoding="utf-8")


# (1) C++ standard: current torch headers require C++20.
edit("setup.py", "'-std=c++17' if not sys.platform.startswith('win') else '/std:c++17'",
     "'-std=c++20' if not sys.platform.startswith('win') else '/std:c++20'")
# (2) Drop the exact torch/torchvision pins (we build against whatever torch the venv has) and
#     importlib_metadata (a "temporary for pytest" dependency that openpifpaf never imports).
edit("setup.py", "'torch==1.13.1',", "'torch',")
edit("setup.py", "'torchvision==0.14.1',", "'torchvision',")
edit("setup.py", "'importlib_metadata!=3.8.0',  # temporary for pytest\n", "")
edit("pyproject.toml", '"torch==1.13.1",', '"torch",')
# (3) matplotlib >= 3.9 removed matplotlib.cm.get_cmap; matplotlib.colormaps.get_cmap (>= 3.6)
#     takes the same arguments. The visualizer modules call it at import time.
n = 0
for path in sorted((root / "src" / "openpifpaf").rglob("*.py")):
    text = path.read_text(encoding="utf-8")
    new = re.sub(r"\b(?:matplotlib\.cm|mplcm)\.get_cmap\(", "matplotlib.colormaps.get_cmap(", text)
    if new != text:
        n += 1
        path.write_text(new, encoding="utf-8")
if n != 7:
    sys.exit(f"expected 7 files calling get_cmap, patched {n}")
edit("src/openpifpaf/plugins/apollocar3d/constants.py",
     "    import matplotlib.cm as mplcm\n", "    import matplotlib\n    import matplotlib.cm as mplcm\n")
# (4) scipy.ndimage.filters is a deprecated alias namespace (removed in SciPy 2.0).
edit("src/openpifpaf/transforms/image.py", "scipy.ndimage.filters.", "scipy.ndimage.", count=2)
# (5) Build stamp, read by the no-op check of this script.
(root / "src" / "openpifpaf" / "_lenslab_build.py").write_text(
    '"""Written by lenslab\'s scripts/install_openpifpaf.sh at build time."""\n'
    f"PATCH_REV = {patch_rev}\nTORCH_VERSION = {torch_version!r}\n", encoding="utf-8")
print("install_openpifpaf: patched", root, file=sys.stderr)
EOF
}

# ---------------------------------------------------------------------------------------------
# 2./3. Build the wheel unless it is cached.
if [[ -n "$WHEEL" ]]; then
  log "using cached wheel $WHEEL"
else
  log "building openpifpaf $OPP_VERSION against torch $TORCH_VERSION ($PY_TAG, $PLATFORM)"
  start=$SECONDS

  # Build tools the venv may lack: setuptools (the build backend, used from the venv because
  # the build must see the venv's torch) and ninja (parallel compile; optional but much faster).
  TOOLS="$WORK/tools"
  need_tools=()
  "$PY" -c 'import setuptools' >/dev/null 2>&1 || need_tools+=("setuptools>=70.1")
  ninja --version >/dev/null 2>&1 || need_tools+=("ninja")
  if ((${#need_tools[@]})); then
    log "installing build tools into the build folder: ${need_tools[*]}"
    pip install --quiet --target "$TOOLS" "${need_tools[@]}"
    EXTRA_PATH="$TOOLS"
    ninja_bin=$(compgen -G "$TOOLS/ninja/data/bin/ninja" | head -n1 || true)
    if [[ -n "$ninja_bin" ]]; then PATH="$(dirname "$ninja_bin"):$PATH"; fi
    if [[ -d "$TOOLS/bin" ]]; then PATH="$TOOLS/bin:$PATH"; fi
    export PATH
  fi
  if ninja --version >/dev/null 2>&1; then
    log "compiling with ninja $(ninja --version) (MAX_JOBS=${MAX_JOBS:-all cores})"
  else
    log "compiling without ninja (one file at a time)"
  fi

  # Download with pip's hash-checking mode (the hash is checked before any of the sdist's code
  # runs), then check it once more ourselves.
  printf 'openpifpaf==%s --hash=sha256:%s\n' "$OPP_VERSION" "$OPP_SDIST_SHA256" > req.txt
  pip download --quiet --no-deps --no-binary :all: --no-build-isolation --require-hashes \
    -r req.txt -d dl
  SDIST="dl/openpifpaf-${OPP_VERSION}.tar.gz"
  [[ -f "$SDIST" ]] || die "pip did not produce $SDIST"
  got=$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$SDIST")
  [[ "$got" == "$OPP_SDIST_SHA256" ]] || die "sha256 mismatch for $SDIST: $got"

  "$PY" - "$SDIST" src <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
        tf.extractall(sys.argv[2], filter="data")
    else:
        tf.extractall(sys.argv[2])
EOF
  SRC="src/openpifpaf-${OPP_VERSION}"
  apply_patches "$SRC"

  pip wheel --quiet --no-deps --no-build-isolation -w wheel "./$SRC"
  built=$(compgen -G "wheel/openpifpaf-${OPP_VERSION}-*.whl" | head -n1 || true)
  [[ -n "$built" ]] || die "no wheel was built"

  mkdir -p "$CACHE_DIR"
  tmp="$CACHE_DIR/.$(basename "$built").$$"
  cp "$built" "$tmp" && mv -f "$tmp" "$CACHE_DIR/$(basename "$built")"
  WHEEL="$CACHE_DIR/$(basename "$built")"
  log "built and cached $WHEEL in $((SECONDS - start)) s"
fi

# ---------------------------------------------------------------------------------------------
# Install the wheel (never its dependencies: they would include torch).
pip install --quiet --no-deps --force-reinstall "$WHEEL"

# 4. Genuine runtime dependencies from the wheel's metadata that are missing or unsatisfied;
#    torch and torchvision are the venv's business.
mapfile -t missing < <(py_with_pip - <<'EOF'
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:  # packaging is vendored by pip
    from pip._vendor.packaging.requirements import Requirement

for line in metadata.requires("openpifpaf") or []:
    req = Requirement(line)
    if req.name.lower() in {"torch", "torchvision"}:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        print(str(req))
        continue
    if not req.specifier.contains(version, prereleases=True):
        print(str(req))
EOF
)
if ((${#missing[@]})); then
  log "installing missing runtime dependencies: ${missing[*]}"
  printf '%s\n' "${DEP_CONSTRAINTS[@]}" > constraints.txt
  pip install --quiet -c constraints.txt "${missing[@]}"
fi

installed_ok || die "openpifpaf was installed but does not import correctly with $PY"
log "openpifpaf $OPP_VERSION installed (torch $TORCH_VERSION)"
