"""The photobook rater as a registry entry, and the encoder it was trained on, rebuilt.

The rater is small: the learned master vector, the training photos' embedding standardiser (the
album's near-duplicate test compares standardised embeddings) and the probability scale fitted on
validation pairs. They travel as buffers of one module, so the registry stores a plain state_dict;
the encoder is not stored but named on the card (its name, input size, pretrained weights), and
:func:`encoder_for` rebuilds it, for the CLI and the web page alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lenslab.photobook.rating import LEARNED, Rater
from lenslab.scaling import Standardiser

CPU = torch.device("cpu")


class RaterModel(nn.Module):
    """Buffers of a rater: score = e . vector; P(A better than B) = sigmoid(scale (s_A - s_B))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("vector", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("std", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    @classmethod
    def from_rater(cls, rater: Rater, vector: str = LEARNED) -> RaterModel:
        model = cls(len(rater.vectors[vector]))
        model.vector.copy_(torch.from_numpy(np.asarray(rater.vectors[vector], np.float64)))
        model.mean.copy_(torch.from_numpy(np.asarray(rater.standardiser.mean, np.float64)))
        model.std.copy_(torch.from_numpy(np.asarray(rater.standardiser.std, np.float64)))
        model.scale.fill_(rater.scales[vector])
        return model

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Scores of embeddings (n, dim)."""
        return e.to(self.vector.dtype) @ self.vector

    def rater(self, card: dict) -> Rater:
        """The plain-logic rater (album selection, pair probabilities) the web page also uses."""
        return Rater(vectors={LEARNED: self.vector.cpu().numpy()},
                     scales={LEARNED: float(self.scale)},
                     descriptions={LEARNED: card["vector"]["description"]},
                     standardiser=Standardiser(self.mean.cpu().numpy(), self.std.cpu().numpy()),
                     duplicate_threshold=card["architecture"]["duplicate_threshold"],
                     encoder=card["encoder"])


def build_from_card(card: dict) -> RaterModel:
    """The registry's builder (models/registry.py): buffers sized by the encoder, loaded after."""
    return RaterModel(card["architecture"]["dim"])


def encoder_for(info: dict, device: torch.device = CPU):
    """The encoder a rater was trained on, from its record (``encoder.json``, a card's
    ``encoder``): CLIP from the weights file it used, or the offline MobileNetV2 encoder."""
    from models.photobook.encoders import MLSP, ClipEncoder, MlspEncoder

    if info["encoder"].startswith("clip"):
        weights = Path(info["weights"])
        if not weights.is_file():
            raise FileNotFoundError(f"the rater was trained on CLIP weights {weights}, which are "
                                    "not on this machine")
        return ClipEncoder(weights, device=device)
    if info["encoder"] != MLSP:
        raise ValueError(f"unknown encoder {info['encoder']!r} in the rater's record")
    return MlspEncoder(info["image_size"], device=device)
