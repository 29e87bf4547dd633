"""BlazePose worker, run by lenslab's ``mediapipe`` pose backend inside ``.venv-mediapipe``.

Reads one JSON string (an image path) per line on stdin and writes one JSON object per line on
stdout: ``{"persons": [{"keypoints": 17 x [x, y, confidence], "score", "bbox": [x, y, w, h]}]}``
in the image's pixels, COCO-17 order (or ``{"error": ...}`` for an unreadable image). It imports
nothing from lenslab: that environment holds only mediapipe and its pins (protobuf < 5,
NumPy 1.x).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import mediapipe as mp
import numpy as np
from PIL import Image, ImageOps

# BlazePose landmark index of each COCO-17 keypoint (nose, eyes, ears, shoulders, elbows,
# wrists, hips, knees, ankles; BlazePose's eye centres stand in for COCO's eyes).
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
MIN_SIDE = 32  # BlazePose's detector needs some pixels; smaller images are upscaled first


def person(result, width: int, height: int) -> dict | None:
    if result.pose_landmarks is None:
        return None
    marks = result.pose_landmarks.landmark
    kps = [[marks[i].x * width, marks[i].y * height, marks[i].visibility]
           for i in BLAZEPOSE_TO_COCO]
    bbox = None
    if result.segmentation_mask is not None:
        ys, xs = np.nonzero(result.segmentation_mask > 0.5)
        if len(xs):
            mask_h, mask_w = result.segmentation_mask.shape
            sx, sy = width / mask_w, height / mask_h
            bbox = [float(xs.min() * sx), float(ys.min() * sy),
                    float((xs.max() - xs.min() + 1) * sx), float((ys.max() - ys.min() + 1) * sy)]
    return {"keypoints": kps, "score": float(np.mean([k[2] for k in kps])), "bbox": bbox}


def _rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, upright, as lenslab.images.upright_rgb makes it (this environment cannot import
    lenslab): EXIF orientation applied (a phone photo stored sideways), 16- and 32-bit grey
    scaled to 0..255 where Pillow's own conversion clips it to white."""
    # malformed EXIF must not reject a good photo: it is then taken as upright
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    if image.mode == "I" or image.mode.startswith("I;16"):
        grey = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-complexity", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args()
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=args.model_complexity,
                                enable_segmentation=True) as pose:
        for line in sys.stdin:
            if not line.strip():
                continue
            path = json.loads(line)
            try:
                with Image.open(path) as im:
                    image = _rgb(im)
            except OSError as exc:
                print(json.dumps({"error": f"unreadable image: {exc}"}), flush=True)
                continue
            width, height = image.size
            if min(width, height) < MIN_SIDE:
                factor = MIN_SIDE / min(width, height)
                image = image.resize((round(width * factor), round(height * factor)))
            found = person(pose.process(np.asarray(image)), width, height)
            print(json.dumps({"persons": [found] if found else []}), flush=True)


if __name__ == "__main__":
    main()
