"""Editing-style features on real photos: presets move them the way the preset says."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import color, data
from skimage.transform import resize

from lenslab.edits import EditParams, apply_edits
from lenslab.paths import DataLayout
from lenslab.style.features import (
    FEATURE_NAMES,
    _percentiles,
    global_features,
    seed_features,
    srgb_to_lab,
)

SIDE = 128


def _photos() -> np.ndarray:
    """astronaut, chelsea and coffee as (3, SIDE, SIDE, 3) floats in [0, 1]."""
    return np.stack([resize(img, (SIDE, SIDE), anti_aliasing=True).astype(np.float32)
                     for img in (data.astronaut(), data.chelsea(), data.coffee())])


def _features(pixels: np.ndarray) -> dict[str, np.ndarray]:
    batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float()
    values = global_features(batch).numpy()
    return dict(zip(FEATURE_NAMES, values.T, strict=True))


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return _photos()


@pytest.fixture(scope="module")
def base(photos) -> dict[str, np.ndarray]:
    return _features(apply_edits(photos, EditParams()))


@pytest.mark.parametrize(("edit", "feature", "direction"), [
    ({"temperature": 0.6}, "cast_b", +1),
    ({"temperature": -0.6}, "cast_b", -1),
    ({"tint": 0.6}, "cast_a", +1),
    ({"saturation": 0.8}, "saturation", +1),
    ({"saturation": 0.8}, "colourfulness", +1),
    ({"saturation": 0.8}, "chroma", +1),
    ({"saturation": -0.8}, "colourfulness", -1),
    ({"exposure": 0.5}, "L_mean", +1),
    ({"exposure": -0.5}, "L_p50", -1),
    ({"contrast": 0.6}, "L_std", +1),
    ({"fade": 0.2}, "L_p05", +1),
    ({"vignette": 0.6}, "vignetting", -1),
    ({"grain": 0.05}, "noise", +1),
])
def test_preset_moves_feature_the_way_it_says(photos, base, edit, feature, direction):
    edited = _features(apply_edits(photos, EditParams(**edit)))
    change = edited[feature] - base[feature]
    assert np.all(direction * change > 0), (feature, base[feature], edited[feature])


def test_lab_conversion_matches_skimage_per_pixel(photos):
    ours = srgb_to_lab(torch.from_numpy(photos[1]).double()).numpy()
    np.testing.assert_allclose(ours, color.rgb2lab(photos[1].astype(np.float64)), atol=0.01)


def test_uint8_lab_tables_match_the_float_maths():
    # the uint8 path's fixed-point tables against the per-pixel float64 maths: every grey, the
    # cube corners and 200k random codes (over all 2**24 codes: L* 0.0013, a* 0.0086, b* 0.0035)
    r = np.random.default_rng(0)
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)
    corners = np.array([[i, j, k] for i in (0, 255) for j in (0, 255) for k in (0, 255)],
                       dtype=np.uint8)
    codes = torch.from_numpy(np.vstack([grey, corners,
                                        r.integers(0, 256, (200_000, 3), dtype=np.uint8)]))
    fast = srgb_to_lab(codes).double()
    reference = srgb_to_lab(codes.double() / 255.0)
    error = (fast - reference).abs().amax(0)
    assert error[0] < 0.002 and error[1] < 0.01 and error[2] < 0.01, error


def test_histogram_percentiles_match_torch_quantile():
    # ties, a constant row, the extremes 0 and 100 and a smooth spread; the histogram is
    # 0.1 L* wide, so each order statistic is within 0.05 L*
    r = torch.Generator().manual_seed(0)
    rows = torch.stack([torch.rand(4096, generator=r) * 100.0,
                        torch.full((4096,), 37.3),
                        torch.cat([torch.zeros(2048), torch.full((2048,), 100.0)]),
                        (torch.randn(4096, generator=r) * 15 + 50).clamp(0, 100),
                        torch.randint(0, 5, (4096,), generator=r).float() * 20.0])
    exact = _percentiles(rows, exact=True)
    fast = _percentiles(rows, exact=False)
    torch.testing.assert_close(fast, exact, rtol=0, atol=0.05 + 1e-4)


def test_uint8_path_agrees_with_the_float_reference(photos):
    # extract passes uint8 codes (tables, histogram percentiles); float input takes the
    # straightforward per-pixel maths and torch.quantile: the same features, within 0.06 L* for
    # the percentiles and 1e-3 (absolute, on features of order 0.01-100) for the rest
    codes = torch.from_numpy((photos * 255).round().astype(np.uint8)).permute(0, 3, 1, 2)
    codes = torch.cat([codes, torch.zeros_like(codes[:1]), torch.full_like(codes[:1], 255)])
    with torch.inference_mode():
        fast = global_features(codes.contiguous()).double()
        reference = global_features(codes.double() / 255.0)
        seed_fast = seed_features(codes.contiguous()).double()
        seed_reference = seed_features(codes.double() / 255.0)
    percentile = [FEATURE_NAMES.index(f"L_p{p:02d}") for p in (5, 50, 95)]
    rest = [i for i in range(len(FEATURE_NAMES)) if i not in percentile]
    torch.testing.assert_close(fast[:, percentile], reference[:, percentile], rtol=0, atol=0.06)
    torch.testing.assert_close(fast[:, rest], reference[:, rest], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(seed_fast, seed_reference, rtol=1e-3, atol=1e-3)


def test_extract_is_the_same_for_any_threads_and_batching(tmp_path, photos):
    from lenslab.style.extraction import extract, load_image

    paths = []
    for i in range(7):
        pixels = (photos[i % 3, i:i + 100, i:i + 90] * 255).round().astype(np.uint8)
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=92)
    threads = torch.get_num_threads()
    one = extract(paths, size=64, batch_size=64, threads=1)
    many = extract(paths, size=64, batch_size=3, threads=2)
    np.testing.assert_array_equal(one.features, many.features)
    np.testing.assert_array_equal(one.seed, many.seed)
    decoded = torch.from_numpy(np.stack([load_image(p, 64) for p in paths])).permute(0, 3, 1, 2)
    with torch.inference_mode():
        direct = global_features(decoded.contiguous()).double().numpy()
    np.testing.assert_allclose(one.features, direct, rtol=1e-5, atol=1e-6)
    assert torch.get_num_threads() == threads  # extract gives torch its threads back


def test_black_and_constant_images_give_finite_features_and_gradients():
    values = [0.0, 1.0, 0.5, 0.02]
    batch = torch.stack([torch.full((3, 32, 48), v) for v in values]
                        + [torch.tensor([0.9, 0.1, 0.1])[:, None, None].expand(3, 32, 48)])
    batch = batch.clone().requires_grad_(True)
    features = global_features(batch)
    assert torch.isfinite(features).all()
    features.sum().backward()
    assert torch.isfinite(batch.grad).all()
    assert torch.isfinite(seed_features(batch.detach())).all()
    black = dict(zip(FEATURE_NAMES, features[0].detach().numpy(), strict=True))
    assert black["local_contrast"] == 0 and black["vignetting"] == pytest.approx(1.0)


def test_batch_and_single_image_agree(photos):
    batch = torch.from_numpy(photos).permute(0, 3, 1, 2).contiguous()
    together = global_features(batch)
    alone = torch.cat([global_features(batch[i:i + 1]) for i in range(len(batch))])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_seed_variant_mixes_channels_unlike_the_correct_layout(photos):
    # the seed reshaped NCHW to (-1, 3): its "contrast" is not the correct local contrast
    batch = torch.from_numpy(photos).permute(0, 3, 1, 2).contiguous()
    seed = seed_features(batch)
    correct = global_features(batch)[:, FEATURE_NAMES.index("local_contrast")]
    assert seed.shape == (3, 4)
    assert not torch.allclose(seed[:, 0], correct, rtol=0.2)
    torch.testing.assert_close(seed[:, 1:], batch.mean((2, 3)))


def _small_catalog(root, per_photographer: int = 4) -> pd.DataFrame:
    """A catalog of oxford_pets rows: 3 presets applied to crops of the real photos, with truth."""
    layout = DataLayout(root)
    presets = [EditParams(temperature=0.8, saturation=0.6), EditParams(exposure=-0.8, vignette=0.7),
               EditParams(saturation=-0.8, contrast=0.5, grain=0.04)]
    photos = _photos()
    rows, truth = [], []
    r = np.random.default_rng(0)
    for who, preset in enumerate(presets):
        for k in range(per_photographer):
            y, x = r.integers(0, 32, 2)
            crop = photos[(who + k) % 3, y:y + 96, x:x + 96]
            pixels = (apply_edits(crop, preset) * 255).round().astype(np.uint8)
            stem = f"Breed_{who}{k}"
            sha = f"{who:02d}{k:02d}".ljust(64, "0")
            path = layout.normalised(sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path, quality=92)
            rows.append({"image_id": f"oxford_pets:images/{stem}.jpg", "sha256": sha,
                         "source": "oxford_pets", "split": "train" if k % 2 else "test",
                         "normalised_path": path.relative_to(root).as_posix()})
            truth.append({"image": stem, "photographer": who})
    # a quarantined file sits on disk but is not catalogued: it must not reach the features
    (layout.quarantine_dir).mkdir(parents=True)
    (layout.quarantine_dir / "bad.jpg").write_bytes(b"not a jpeg")
    rows.append({"image_id": "selfies:x.jpg", "sha256": "f" * 64, "source": "selfies",
                 "split": "train", "normalised_path": rows[0]["normalised_path"]})
    layout.ground_truth("oxford_pets").mkdir(parents=True)
    pd.DataFrame(truth).to_csv(layout.ground_truth("oxford_pets") / "photographers.csv",
                               index=False)
    catalog = pd.DataFrame(rows)
    catalog.to_parquet(layout.catalog)
    return catalog


@pytest.mark.slow
def test_features_and_clusters_materialise_end_to_end(tmp_path):
    from assets.style import global_features as features_asset
    from assets.style import photographer_clusters
    from lenslab.style import extraction as style
    from orchestration.kit.resources import DataRoot, TorchDevice

    catalog = _small_catalog(tmp_path)
    result = dg.materialize(
        [features_asset, photographer_clusters],
        resources={"data_root": DataRoot(path=str(tmp_path)), "device": TorchDevice()},
        run_config={"ops": {"global_features": {"config": {"batch_size": 5, "size": 64}},
                            "photographer_clusters": {"config": {"clusters": 3}}}},
    )
    assert result.success
    layout = DataLayout(tmp_path)
    table = pd.read_parquet(style.features_path(layout))
    oxford = catalog[catalog["source"] == "oxford_pets"]
    assert list(table["image_id"]) == list(oxford["image_id"])
    assert list(table.columns[:3]) == ["image_id", "sha256", "split"]
    assert set(FEATURE_NAMES) <= set(table.columns)
    assert np.isfinite(table[list(FEATURE_NAMES)].to_numpy()).all()
    clusters = pd.read_parquet(style.clusters_path(layout))
    assert list(clusters.columns) == ["image_id", "cluster", "seed_cluster"]
    assert style.clusters_plot_path(layout).is_file()
    meta = result.asset_materializations_for_node("photographer_clusters")[0].metadata
    # three well-separated presets: the standardised features recover them exactly
    assert meta["ari_standardised"].value == pytest.approx(1.0)
    assert 0 <= meta["nmi_seed"].value <= 1
    features_meta = result.asset_materializations_for_node("global_features")[0].metadata
    assert features_meta["images"].value == len(oxford)
