"""Mixed precision on a real GPU: the selfie training loop under bfloat16 (what a GPU that has it
gets) and under float16 with a GradScaler (what an older GPU gets), the second forced by making
the GPU report no bfloat16. Both must train: finite losses, a scaler that scales, and validation
ROC-AUC above chance on an easy task (labels from brightness).

    python bench/gpu/precision.py --out precision.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.backbones import build_trunk
from models.device import choose_precision
from models.selfie.classifiers import (
    FineTuned,
    TrainSettings,
    TransferHead,
    train_classifier,
)


def photos(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    level = torch.rand(n, generator=gen)
    noise = torch.randint(0, 96, (n, 3, size, size), generator=gen).float()
    images = (level[:, None, None, None] * 160 + noise).clamp(0, 255).to(torch.uint8)
    return images, (level > 0.5).long()


def run(device: torch.device, bf16: bool) -> dict:
    scalers = []
    real = torch.amp.GradScaler

    def spy(*args, **kwargs):
        scalers.append(real(*args, **kwargs))
        return scalers[-1]

    with mock.patch.object(torch.cuda, "is_bf16_supported", return_value=bf16), \
            mock.patch.object(torch.amp, "GradScaler", side_effect=spy):
        precision = choose_precision(device)
        images, labels = photos(640, 96, seed=0)
        torch.manual_seed(1)
        trunk = build_trunk("mobilenet_v2", pretrained=False)
        model = FineTuned(trunk, TransferHead(trunk.dim, 256), 0)
        settings = TrainSettings(4, 3e-4, 64, seed=1, augment=True, images=True)
        _, result = train_classifier(model, (images[:512], labels[:512]),
                                     (images[512:], labels[512:]), settings, device)
    return {"dtype": str(precision.dtype), "scaled": precision.scaled,
            "scaler_enabled": [s.is_enabled() for s in scalers],
            "scale_after": [float(s.get_scale()) if s.is_enabled() else None for s in scalers],
            "losses": [round(r["train_loss"], 4) for r in result.history],
            "val_auc": [round(r["val_auc"], 4) for r in result.history]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda")
    report = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__,
              "bfloat16": run(device, bf16=True), "float16_with_scaler": run(device, bf16=False)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    fp16 = report["float16_with_scaler"]
    ok = (fp16["scaled"] and all(fp16["scaler_enabled"])
          and all(x == x and x < 10 for x in fp16["losses"])  # finite
          and max(fp16["val_auc"]) > 0.6 and max(report["bfloat16"]["val_auc"]) > 0.6)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
