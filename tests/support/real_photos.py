"""Real-photo LOCAL datasets for every source, built at test time from photographs that installed
packages ship (scikit-image's data, scikit-learn's sample images, matplotlib's sample data).

Each dataset is written in its source's distributed format (lenslab/formats/*.py), small enough
for the whole pipeline to run in minutes on 2 cores. Nothing here is committed as an image: every
photo is loaded from its package when a test builds the data.

A dataset remembers which source photo (the *scene*) each of its files came from, because crops
and edits of one photograph are not independent samples: evaluation has to hold scenes out.
Labels and scores are this helper's own, simple and documented per dataset; they carry a signal a
model can learn (damage lowers scores and tiers, presets are consistent), nothing more.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SOURCES = ("oxford_pets", "selfies", "landmark_photos", "flickr_aes", "photo_preferences",
           "photographer_folders")


# ------------------------------------------------------------------------------ the photographs
def _rgb(array: np.ndarray) -> np.ndarray:
    """uint8 RGB from a package's grey, boolean or float image."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _mpl(name: str) -> np.ndarray:
    from matplotlib import cbook

    return np.asarray(Image.open(cbook.get_sample_data(name, asfileobj=False)).convert("RGB"))


def _loaders() -> dict[str, Callable[[], np.ndarray]]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    return {
        "astronaut": data.astronaut, "camera": data.camera, "chelsea": data.chelsea,
        "coffee": data.coffee, "rocket": data.rocket, "hubble": data.hubble_deep_field,
        "retina": data.retina, "horse": data.horse,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
        "ihc": data.immunohistochemistry, "brick": data.brick, "grass": data.grass,
        "gravel": data.gravel, "moon": data.moon, "coins": data.coins,
        "china": lambda: load_sample_image("china.jpg"),
        "flower": lambda: load_sample_image("flower.jpg"),
        "grace_hopper": lambda: _mpl("grace_hopper.jpg"),
    }


SCENES = tuple(sorted(["astronaut", "camera", "chelsea", "coffee", "rocket", "hubble", "retina",
                       "motorcycle", "horse", "ihc", "brick", "grass", "gravel", "moon", "coins",
                       "china", "flower", "grace_hopper"]))
# colour photographs of things (not textures or a silhouette): what photographers edit
COLOUR_SCENES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower",
                 "grace_hopper", "hubble", "ihc", "retina")


@functools.cache
def photo(scene: str) -> np.ndarray:
    """One packaged photograph as uint8 RGB (read-only, cached)."""
    array = _rgb(_loaders()[scene]())
    array.flags.writeable = False
    return array


@functools.cache
def faces() -> np.ndarray:
    """scikit-image's LFW subset: the 100 face crops (25x25 grey) of its 200 images."""
    from skimage import data

    return data.lfw_subset()[:100]


def crop(scene: str, index: int, side: int, zoom: tuple[float, float] = (0.45, 0.9)) -> np.ndarray:
    """The ``index``-th distinct crop of a scene, resized so its longest side is ``side``."""
    image = photo(scene)
    h, w = image.shape[:2]
    r = np.random.default_rng([index, *scene.encode()])
    frac = r.uniform(*zoom)
    ch, cw = max(8, int(h * frac)), max(8, int(w * frac * r.uniform(0.8, 1.25)))
    ch, cw = min(ch, h), min(cw, w)
    y, x = int(r.integers(0, h - ch + 1)), int(r.integers(0, w - cw + 1))
    return resize(image[y:y + ch, x:x + cw], side)


def resize(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png(image: np.ndarray, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    picture = Image.fromarray(image)
    if mode == "RGBA":
        picture.putalpha(Image.new("L", picture.size, 200))
    picture.save(buf, format="PNG")
    return buf.getvalue()


def gif(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).quantize(colors=64).save(buf, format="GIF")
    return buf.getvalue()


# --------------------------------------------------------------------------- damage and presets
def _float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def _uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def _grey(x: np.ndarray) -> np.ndarray:
    return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def _saturate(x: np.ndarray, amount: float) -> np.ndarray:
    return _grey(x) + (x - _grey(x)) * amount


def _contrast(x: np.ndarray, amount: float) -> np.ndarray:
    return 0.5 + (x - 0.5) * amount


def damage(image: np.ndarray, kind: str) -> np.ndarray:
    """A degraded copy: the six kinds of damage a photo suffers (each clearly visible)."""
    if kind == "blur":
        return np.asarray(Image.fromarray(image).filter(
            ImageFilter.GaussianBlur(max(image.shape[:2]) / 60)))
    if kind == "jpeg":
        return np.asarray(Image.open(io.BytesIO(jpeg(image, quality=4))).convert("RGB"))
    x = _float(image)
    if kind == "dark":
        return _uint8(x * 0.3)
    if kind == "bright":
        return _uint8(x * 1.9 + 0.15)
    if kind == "noise":
        r = np.random.default_rng(int(image.sum()) % 2**32)
        return _uint8(x + r.normal(0, 0.15, x.shape))
    if kind == "flat":
        return _uint8(_saturate(_contrast(x, 0.35), 0.3))
    raise ValueError(kind)


DAMAGE = ("blur", "dark", "bright", "noise", "flat", "jpeg")


def _warm(x: np.ndarray) -> np.ndarray:
    return x * np.array([1.12, 1.0, 0.8], np.float32) + 0.03


def _cool(x: np.ndarray) -> np.ndarray:
    return x * np.array([0.82, 0.97, 1.15], np.float32)


def _mono(x: np.ndarray) -> np.ndarray:
    return np.repeat(_contrast(_grey(x), 1.35), 3, axis=-1)


def _faded(x: np.ndarray) -> np.ndarray:
    return _saturate(x, 0.55) * 0.7 + 0.22


def _vivid(x: np.ndarray) -> np.ndarray:
    return _contrast(_saturate(x, 1.7), 1.2)


def _moody(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    vignette = 1 - 0.6 * (((yy / h - 0.5) ** 2 + (xx / w - 0.5) ** 2) * 2)
    return _saturate(x, 0.8) ** 1.5 * vignette[..., None] * np.array([0.95, 1.0, 1.05],
                                                                    np.float32)


# This helper's own editing presets (not the generator's): six distinct, consistent looks.
PRESETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "warm_film": _warm, "cool_blue": _cool, "mono_contrast": _mono, "faded_matte": _faded,
    "vivid_pop": _vivid, "dark_moody": _moody,
}


def edit(image: np.ndarray, preset: str, jitter: int) -> np.ndarray:
    """``preset`` applied to a photo, with a small per-photo exposure change (seeded by
    ``jitter``) so no two photos of a photographer are edited identically."""
    gain = 1.0 + 0.06 * np.random.default_rng(jitter).standard_normal()
    return _uint8(PRESETS[preset](_float(image)) * gain)


# ----------------------------------------------------------------------------------- datasets
@dataclass
class RealDataset:
    """One source's local dataset: ``path`` to point ``sources.<name>.path`` at, and the scene
    (source photograph) of each file, by its path relative to ``path``."""

    source: str
    path: Path
    scenes: dict[str, str] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    def config(self) -> dict:
        """The source asset's run config for local mode."""
        return {"mode": "local", "path": str(self.path)}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _tar_gz(archive: Path, members: list[tuple[str, bytes]]) -> None:
    from lenslab.synthetic.common import write_tar_gz

    archive.parent.mkdir(parents=True, exist_ok=True)
    write_tar_gz(archive, members)


APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + b"\x00\x00"
MAT_FILE = b"MATLAB 5.0 MAT-file, Platform: PCWIN64".ljust(116, b" ") + b"\x00" * 12


def oxford_pets(root: Path) -> RealDataset:
    """images.tar.gz + annotations.tar.gz. Cats are Chelsea (scikit-image's tabby), the 'dogs'
    are crops of other packaged photos under dog breed names: the labels are the format's, not
    a claim about the content. With the real set's defects: a PNG, a GIF and an RGBA PNG named
    .jpg, a truncated JPEG, .mat files in images/, macOS ``._*`` files in both archives, and an
    image present but not listed."""
    from lenslab.formats.oxford_pets import breed_labels

    plan = [("Egyptian_Mau", "chelsea"), ("Bengal", "chelsea"), ("beagle", "coffee"),
            ("pug", "motorcycle"), ("boxer", "astronaut")]
    defects = {"Egyptian_Mau_3": "png", "Bengal_2": "gif", "Egyptian_Mau_5": "rgba",
               "beagle_4": "truncated"}
    ds = RealDataset("oxford_pets", root / "oxford_pets")
    images, trimaps, stems = [], [], []
    for (b, (breed, scene)), n in itertools.product(enumerate(plan), range(1, 6)):
        stem = f"{breed}_{n}"
        pixels = crop(scene, n + 10 * b, 200)  # distinct crops: no byte-duplicates
        data = {"png": lambda p: png(p), "gif": gif, "rgba": lambda p: png(p, "RGBA"),
                "truncated": lambda p: jpeg(p)[:1500]}.get(defects.get(stem, ""), jpeg)(pixels)
        images.append((f"images/{stem}.jpg", data))
        ds.scenes[f"images/{stem}.jpg"] = scene
        stems.append((breed, stem))
        mask = np.full(pixels.shape[:2], 2, np.uint8)
        h, w = mask.shape
        mask[h // 5: -h // 5, w // 5: -w // 5] = 1
        trimaps.append((f"annotations/trimaps/{stem}.png", png(mask, "L")))
    images += [("images/Egyptian_Mau_1.mat", MAT_FILE), ("images/boxer_2.mat", MAT_FILE),
               ("images/._Bengal_1.jpg", APPLEDOUBLE)]
    unlisted = stems.pop()  # boxer_5: in images/, named by no list

    def line(breed: str, stem: str) -> str:
        return f"{stem} {' '.join(map(str, breed_labels(breed)))}\n"

    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n#SPECIES: 1:Cat 2:Dog\n"
    listed = sorted(stems, key=lambda s: s[1].lower())
    trainval = [s for i, s in enumerate(listed) if i % 2 == 0]
    test = [s for i, s in enumerate(listed) if i % 2 == 1]
    annotations = [
        ("annotations/README", b"lenslab test data from packaged photos\n"),
        ("annotations/list.txt", (header + "".join(line(*s) for s in listed)).encode()),
        ("annotations/trainval.txt", "".join(line(*s) for s in trainval).encode()),
        ("annotations/test.txt", "".join(line(*s) for s in test).encode()),
        *sorted(trimaps),
        ("annotations/trimaps/._Egyptian_Mau_1.png", APPLEDOUBLE),
        ("annotations/._list.txt", APPLEDOUBLE),
    ]
    _tar_gz(ds.path / "images.tar.gz", sorted(images))
    _tar_gz(ds.path / "annotations.tar.gz", annotations)
    ds.notes = {"defects": defects, "unlisted": unlisted[1], "listed": len(listed)}
    return ds


def selfies(root: Path, count: int = 96) -> RealDataset:
    """Selfie-dataset.tar.gz: LFW faces (scikit-image) and face crops of the astronaut, Grace
    Hopper and the cameraman. This helper's popularity: a well-exposed sharp selfie scores high;
    a third of the selfies are damaged (dark, blurred, noisy) and score low, plus noise."""
    from lenslab.formats.selfies import ATTRIBUTES

    face_boxes = {"astronaut": (20, 170, 170, 320), "grace_hopper": (40, 110, 330, 400),
                  "camera": (40, 180, 150, 290)}  # (top, left, bottom, right) around a face
    ds = RealDataset("selfies", root / "selfies")
    r = np.random.default_rng(17)
    members, lines = [], []
    for i in range(count):
        if i % 6 == 5:
            scene = list(face_boxes)[(i // 6) % 3]
            t, left, b, right = face_boxes[scene]
            jit = r.integers(-15, 16, 4)
            image = photo(scene)[max(0, t + jit[0]):b + jit[1],
                                 max(0, left + jit[2]):right + jit[3]]
        else:
            scene = f"lfw_{i}"
            image = _rgb(faces()[i % 100])
        image = resize(image, 112)
        quality = 1.0
        if i % 3 == 2:
            image = damage(image, ("dark", "blur", "noise")[(i // 3) % 3])
            quality = -1.0
        popularity = 3.0 + quality + float(r.normal(0, 0.5))
        name = f"{int(r.integers(10**9, 10**10))}_{int(r.integers(10**8, 10**9))}"
        members.append((f"Selfie-dataset/images/{name}.jpg", jpeg(image)))
        ds.scenes[f"images/{name}.jpg"] = scene
        attrs = ["1" if a == "smiling" and quality > 0 else "-1" if a == "dim_lighting" else "0"
                 for a in ATTRIBUTES]
        lines.append(f"{name}  {popularity:.6f} " + " ".join(attrs))
    members += [("Selfie-dataset/selfie_dataset.txt", ("\n".join(lines) + "\n").encode()),
                ("Selfie-dataset/README.txt", b"lenslab test selfies from packaged photos\n")]
    _tar_gz(ds.path / "Selfie-dataset.tar.gz", members)
    return ds


# the people: (photo, box around the person) in the packaged photos
PEOPLE = {"astronaut": (0, 0, 512, 400), "grace_hopper": (0, 40, 600, 500),
          "camera": (0, 60, 512, 460)}
SITES = ("china", "rocket", "flower", "coffee", "motorcycle")


def landmark_photos(root: Path, per_pose: int = 3, empty_per_site: int = 2) -> RealDataset:
    """Data/<Site>/<Pose>/*.jpg: each site a packaged photo as the background, each pose a real
    person (the astronaut, Grace Hopper, the cameraman) placed at varied positions and sizes,
    mirrored in some photos; ``_zz`` photos show the site without anyone."""
    ds = RealDataset("landmark_photos", root / "landmark_photos")
    for s, site in enumerate(SITES):
        for p, (person, box) in enumerate(PEOPLE.items()):
            t, left, b, right = box
            figure = photo(person)[t:b, left:right]
            for k in range(per_pose):
                r = np.random.default_rng([s, p, k])
                background = crop(site, k + 10 * p, 320, zoom=(0.7, 1.0)).copy()
                h, w = background.shape[:2]
                person_img = resize(figure, int(h * r.uniform(0.75, 0.95)))
                if k % 2 == 1:
                    person_img = person_img[:, ::-1]
                ph, pw = person_img.shape[:2]
                pw = min(pw, w)
                y = h - ph
                x = int(r.integers(0, w - pw + 1))
                background[y:y + ph, x:x + pw] = person_img[:, :pw]
                rel = f"Data/{site.title()}/{person.title()}/IMG_{s}{p}{k}.jpg"
                _write(ds.path / rel, jpeg(background))
                ds.scenes[rel] = site
        for k in range(empty_per_site):
            rel = f"Data/{site.title()}/_zz/IMG_{s}9{k}.jpg"
            _write(ds.path / rel, jpeg(crop(site, 100 + k, 320, zoom=(0.6, 0.95))))
            ds.scenes[rel] = site
    return ds


def flickr_aes(root: Path, test_images: int = 112, train_images: int = 40) -> RealDataset:
    """FLICKR-AES-001.zip (``40K/``) + the ratings CSV and the score txt. Train and test images
    come from disjoint scenes. This helper's raters: every rating is the photo's quality (5 for an
    undamaged crop, lower for each kind of damage) plus the worker's bias and noise; two test
    workers rate every test image (112 ratings each: inside the 105-171 rule), four train workers
    rate the train images (under 105 each)."""
    import zipfile

    ds = RealDataset("flickr_aes", root / "flickr_aes")
    train_scenes = ("brick", "grass", "gravel", "moon", "coins", "horse")
    test_scenes = tuple(s for s in SCENES if s not in train_scenes)
    r = np.random.default_rng(5)
    names: dict[str, list[tuple[str, float]]] = {"train": [], "test": []}
    zipped = ds.path / "FLICKR-AES-001.zip"
    zipped.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zipped, "w") as archive:
        for split, scenes, n in (("train", train_scenes, train_images),
                                 ("test", test_scenes, test_images)):
            for i in range(n):
                scene = scenes[i % len(scenes)]
                image = crop(scene, i, 96)
                quality = 4.6
                kind = DAMAGE[i % (len(DAMAGE) + 2)] if i % (len(DAMAGE) + 2) < len(DAMAGE) \
                    else None
                if kind:
                    image, quality = damage(image, kind), 1.8
                name = f"{r.integers(1, 9)}_{r.integers(1000, 9999)}_{r.integers(10**9, 10**10)}" \
                       f"_{r.integers(16**9, 16**10):x}.jpg"
                archive.writestr(f"40K/{name}", jpeg(image))
                ds.scenes[f"40K/{name}"] = scene
                names[split].append((name, quality))
    workers = {"train": [f"A{n}TRAIN" for n in range(4)], "test": ["A0TEST", "A1TEST"]}
    rows, means = [], {}
    for split, group in workers.items():
        for w, worker in enumerate(group):
            bias = (-0.4, 0.3, 0.0, 0.2)[w]
            rated = names[split] if split == "test" else names[split][w % 2::2] + names[
                split][:10]
            for name, quality in rated:
                score = int(np.clip(round(quality + bias + r.normal(0, 0.6)), 1, 5))
                rows.append(f"{worker}, {name}, {score}")
                means.setdefault(name, []).append(score)
    (ds.path / "FLICKR-AES_image_labeled_by_each_worker.csv").write_text(
        "worker, imagePair, score\n" + "\n".join(rows) + "\n")
    (ds.path / "FLICKR-AES_image_score.txt").write_text(
        "".join(f" {n} {np.mean(s) / 5:.4f}\n" for n, s in means.items()))
    return ds


def photo_preferences(root: Path, scenes: int = 16) -> RealDataset:
    """photos/<tier>/*.jpg, pairs.csv and scenes.csv: each scene's undamaged crop in tier 00 and
    three damaged copies in tiers 03, 06 and 09; pairs say the undamaged photo (or the lesser
    damage) wins, within a scene and across scenes; scenes.csv groups each scene's copies."""
    ds = RealDataset("photo_preferences", root / "photo_preferences")
    kinds = {0: None, 3: "flat", 6: "blur", 9: "dark"}
    photos: list[tuple[str, int, str]] = []
    for i, scene in enumerate(SCENES[:scenes]):
        base = crop(scene, 50 + i, 128)
        for t, (tier, kind) in enumerate(kinds.items()):
            image = base if kind is None else damage(base, DAMAGE[(DAMAGE.index(kind) + i) % 6])
            rel = f"{tier:02d}/IMG_{1000 + 10 * i + t}.jpg"
            _write(ds.path / "photos" / rel, jpeg(image))
            ds.scenes[f"photos/{rel}"] = scene
            photos.append((rel, tier, scene))
    r = np.random.default_rng(9)
    pairs = []
    for a, b in itertools.combinations(photos, 2):
        same_scene = a[2] == b[2]
        if a[1] == b[1] or not (same_scene or r.random() < 0.12):
            continue
        left, right = (a, b) if r.random() < 0.5 else (b, a)
        pairs.append(f"{left[0]},{right[0]},{'left' if left[1] < right[1] else 'right'}")
    (ds.path / "pairs.csv").write_text("left,right,winner\n" + "\n".join(pairs) + "\n")
    # a scene's four copies share a file-number prefix: one glob row per scene
    (ds.path / "scenes.csv").write_text("file,scene\n" + "".join(
        f"*/IMG_{100 + i}?.jpg,{scene}\n" for i, scene in enumerate(SCENES[:scenes])))
    ds.notes = {"pairs": len(pairs), "photos": len(photos)}
    return ds


def photographer_folders(root: Path, scenes: tuple[str, ...] = SCENES) -> RealDataset:
    """<photographer>/<name>.jpg: the same crops of packaged photos edited by each of this
    helper's six presets (PRESETS). Like real editors, each names its exports its own way (no
    file name is shared across folders), so scenes.csv says which scene each file shows."""
    ds = RealDataset("photographer_folders", root / "photographer_folders")
    rows = []
    for p, preset in enumerate(PRESETS):
        order = np.random.default_rng(p).permutation(len(scenes))
        for number, s in enumerate(order):
            rel = f"{preset}/{preset.split('_')[0]}_{number:03d}.jpg"
            _write(ds.path / rel, jpeg(edit(crop(scenes[s], 0, 160), preset, sum(map(ord, rel)))))
            ds.scenes[rel] = scenes[s]
            rows.append(f"{rel},{scenes[s]}\n")
    (ds.path / "scenes.csv").write_text("file,scene\n" + "".join(sorted(rows)))
    return ds


BUILDERS: dict[str, Callable[[Path], RealDataset]] = {
    "oxford_pets": oxford_pets, "selfies": selfies, "landmark_photos": landmark_photos,
    "flickr_aes": flickr_aes, "photo_preferences": photo_preferences,
    "photographer_folders": photographer_folders,
}


def build_all(root: Path) -> dict[str, RealDataset]:
    """Every source's real-photo dataset under ``root/<source>/``."""
    return {source: BUILDERS[source](root) for source in SOURCES}
