"""The model registry: every trained model as a versioned entry with a model card.

    <data>/registry/<family>/<version>/weights.pt   state_dict (loaded with weights_only=True)
    <data>/registry/<family>/<version>/card.json    what it is, what it was trained on, how good
    <data>/registry/<family>/<version>/card.md      the same, for people
    <data>/registry/<family>/<version>/<name>.pt    optional extra state_dicts (e.g. per-user
                                                   parameters loaded on top of the model)
    <data>/registry/<family>/promoted.json          the version `lenslab` uses

An entry is promoted only when its quality check passes; a failing model is kept, but nothing
uses it. Loading rebuilds the network from the card through the family's builder (one per
family, named in ``FAMILIES``) and refuses cards written by an incompatible version of it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lenslab import atomic
from lenslab.digests import file_sha256

if TYPE_CHECKING:  # torch loads only to write or load a model: `lenslab models` starts fast
    import torch
    from torch import nn

# family -> (module with `build_from_card(card) -> nn.Module`, its card format version)
FAMILIES: dict[str, tuple[str, int]] = {
    "selfie": ("models.selfie.classifiers", 1),
    "aesthetics": ("models.aesthetics.networks", 1),
    "pose": ("models.pose.siamese", 1),
    "photobook": ("models.photobook.rater", 1),
    "photographer": ("models.style.photographer", 1),
}
REGISTRY_DIR = "registry"


class RegistryError(Exception):
    """No such model, or a card this code cannot load."""


@dataclass(frozen=True)
class Entry:
    family: str
    version: str
    path: Path
    promoted: bool


def registry_folder(family: str) -> str:
    """``family``'s folder under the data root (a registering asset's Stage out)."""
    return f"{REGISTRY_DIR}/{family}"


def family_dir(data_root: Path, family: str) -> Path:
    return data_root / REGISTRY_DIR / family


def register(data_root: Path, family: str, model: nn.Module, *, card: dict[str, Any],
             promote: bool, extra_states: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
             ) -> Entry:
    """Write a new version of ``family``; move its promoted pointer if ``promote``.

    ``card`` holds at least: asset, code_version, architecture, metrics (held-out), params,
    data (input versions/hashes), backbone (name and weights provenance). ``extra_states``:
    named tensor dicts stored beside the weights (``<name>.pt``, sha256 in the card under
    ``extra_states``), read back with ``load_extra_state``.
    """
    import torch

    from models.checkpoints import save_state

    if family not in FAMILIES:
        raise RegistryError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    created = datetime.now(UTC)
    tmp = family_dir(data_root, family) / f".tmp-{created.strftime('%Y%m%dT%H%M%S%fZ')}"
    save_state(model, tmp / "weights.pt")
    digest = file_sha256(tmp / "weights.pt")
    extras = {}
    for name, state in (extra_states or {}).items():
        file = f"{name}.pt"
        (tmp / file).parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp / file)
        extras[name] = {"file": file, "sha256": file_sha256(tmp / file)}
    version = f"{created.strftime('%Y%m%dT%H%M%S%fZ')}-{digest[:8]}"  # unique per write
    final = family_dir(data_root, family) / version
    full = {**card, "family": family, "version": version, "created": created.isoformat(),
            "card_format": FAMILIES[family][1], "weights": "weights.pt",
            "weights_sha256": digest, "promoted": promote,
            **({"extra_states": extras} if extras else {})}
    atomic.write_text(tmp / "card.json", json.dumps(full, indent=2, default=str))
    atomic.write_text(tmp / "card.md", card_markdown(full))
    tmp.rename(final)
    if promote:
        atomic.write_text(family_dir(data_root, family) / "promoted.json",
                          json.dumps({"version": version}))
    return Entry(family, version, final, promote)


def promoted_version(data_root: Path, family: str) -> str:
    pointer = family_dir(data_root, family) / "promoted.json"
    if not pointer.is_file():
        raise RegistryError(
            f"no promoted {family!r} model under {family_dir(data_root, family)}: train it with "
            f"the pipeline (make demo) or check why its quality check failed")
    return json.loads(pointer.read_text())["version"]


def load_card(data_root: Path, family: str, version: str = "promoted") -> dict[str, Any]:
    if version == "promoted":
        version = promoted_version(data_root, family)
    path = family_dir(data_root, family) / version / "card.json"
    if not path.is_file():
        raise RegistryError(f"no {family!r} model version {version!r} ({path} is missing)")
    return json.loads(path.read_text())


def load_model(data_root: Path, family: str, version: str = "promoted",
               device: torch.device | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The network rebuilt from its card, weights loaded with ``weights_only=True``, in eval."""
    import torch

    from models.checkpoints import load_state

    card = load_card(data_root, family, version)
    module_name, card_format = FAMILIES[family]
    if card.get("card_format") != card_format:
        raise RegistryError(
            f"{family} model {card['version']} has card format {card.get('card_format')}, this "
            f"lenslab reads format {card_format}: retrain it, or use the lenslab version that "
            f"wrote it (code version {card.get('code_version')})")
    model = importlib.import_module(module_name).build_from_card(card)
    path = family_dir(data_root, family) / card["version"] / card["weights"]
    if file_sha256(path) != card["weights_sha256"]:
        raise RegistryError(f"{path}: weights do not match the card's sha256")
    load_state(model, path)
    return model.to(device or torch.device("cpu")).eval(), card


def load_extra_state(data_root: Path, card: dict[str, Any], name: str,
                     ) -> dict[str, torch.Tensor]:
    """One of the entry's extra state dicts (on CPU, ``weights_only=True``, sha256 checked)."""
    import torch

    extra = card.get("extra_states", {}).get(name)
    if extra is None:
        raise RegistryError(f"{card['family']} model {card['version']} has no state {name!r}")
    path = family_dir(data_root, card["family"]) / card["version"] / extra["file"]
    if not path.is_file() or file_sha256(path) != extra["sha256"]:
        raise RegistryError(f"{path}: missing or not matching the card's sha256")
    return torch.load(path, map_location="cpu", weights_only=True)


def entries(data_root: Path) -> list[dict[str, Any]]:
    """Every card in the registry, newest first per family."""
    cards = []
    for family in sorted(FAMILIES):
        folder = family_dir(data_root, family)
        promoted = (json.loads((folder / "promoted.json").read_text())["version"]
                    if (folder / "promoted.json").is_file() else None)
        for card_path in sorted(folder.glob("*/card.json"), reverse=True):
            card = json.loads(card_path.read_text())
            cards.append({**card, "promoted": card["version"] == promoted})
    return cards


def card_markdown(card: dict[str, Any]) -> str:
    metrics = "\n".join(f"- {k}: {v}" for k, v in card.get("metrics", {}).items())
    params = "\n".join(f"- `{k}`: {v}" for k, v in card.get("params", {}).items())
    data = "\n".join(f"- {k}: {v}" for k, v in card.get("data", {}).items())
    backbone = card.get("backbone", {})
    return (f"# {card['family']} model {card['version']}\n\n"
            f"- trained by asset `{card.get('asset')}` (code version {card.get('code_version')})"
            f" on {card['created']}\n- promoted: {card['promoted']}\n"
            f"- backbone: {backbone.get('name')} ({backbone.get('weights')})\n\n"
            f"## Held-out metrics\n\n{metrics}\n\n## Data\n\n{data}\n\n"
            f"## Parameters\n\n{params}\n")
