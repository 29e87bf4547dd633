"""What the set-up installs beyond pyproject.toml works, with no network.

- openpifpaf 0.13.11, built against our torch by ``scripts/install_openpifpaf.sh``: it imports,
  its compiled C++ extension loads, a network built by its factory with random initialisation
  runs, and the C++ CifCaf decoder decodes (and recovers a synthetic person exactly).
- torchvision's ImageNet MobileNetV2 checkpoint, put into torch's hub cache by
  ``scripts/install_pretrained_weights.py``: ``mobilenet_v2(weights="IMAGENET1K_V1")`` loads
  from the cache and sees the cat in scikit-image's ``chelsea`` photo.

Both scripts run as part of ``make env`` (scripts/setup_env.sh).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

OPENPIFPAF_VERSION = "0.13.11"
IMAGENET_CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}

# openpifpaf's visualizers call Colormap.set_bad at import time (matplotlib >= 3.10 warns).
pytestmark = pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")


@pytest.fixture(scope="module")
def openpifpaf():
    try:
        import openpifpaf
    except ImportError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"openpifpaf is not importable ({exc}); run scripts/install_openpifpaf.sh")
    torch.ops.openpifpaf.set_quiet(True)  # silence the C++ decoder's buffer-resize notes
    return openpifpaf


@pytest.fixture(scope="module")
def cocokp_head_metas(openpifpaf):
    return openpifpaf.plugins.coco.CocoKp().head_metas


def _random_net(openpifpaf, head_metas):
    torch.manual_seed(0)
    net, epoch = openpifpaf.network.Factory(base_name="shufflenetv2k16").factory(
        head_metas=head_metas
    )
    assert epoch == 0
    return net


def test_openpifpaf_is_our_build_and_its_extension_loads(openpifpaf):
    from openpifpaf import _lenslab_build

    assert openpifpaf.__version__ == OPENPIFPAF_VERSION
    assert torch.__version__ == _lenslab_build.TORCH_VERSION
    libs = [Path(p).name for p in torch.ops.loaded_libraries]
    assert any(name.startswith("_cpp") for name in libs), libs
    # the TorchScript classes the extension registers
    assert torch.classes.openpifpaf_decoder.CifCaf is not None
    occupancy = torch.classes.openpifpaf_decoder_utils.Occupancy(1.0, 0.1)
    occupancy.reset([1, 8, 8])
    occupancy.set(0, 2.0, 3.0, 1.0)
    assert occupancy.get(0, 2.0, 3.0)
    assert not occupancy.get(0, 7.0, 7.0)


def test_random_init_network_forward_and_decoder(openpifpaf, cocokp_head_metas):
    net = _random_net(openpifpaf, cocokp_head_metas)
    image = torch.rand(1, 3, 97, 129)
    with torch.no_grad():
        cif, caf = net(image)
    # stride 16: fields of 7 x 9; 17 keypoint fields and 19 connection fields
    assert cif.shape == (1, 17, 5, 7, 9)
    assert caf.shape == (1, 19, 8, 7, 9)
    assert torch.isfinite(cif).all() and torch.isfinite(caf).all()

    decoder = openpifpaf.decoder.factory(net.head_metas)
    predictions = decoder.batch(net, image, device=torch.device("cpu"))
    assert len(predictions) == 1  # one (possibly empty) list of annotations per image
    for ann in predictions[0]:
        assert ann.data.shape == (17, 3)


def test_predictor_on_numpy_image_with_random_network(openpifpaf, cocokp_head_metas, monkeypatch):
    # Predictor builds its network through the factory's class-level configuration.
    monkeypatch.setattr(openpifpaf.network.Factory, "base_name", "shufflenetv2k16")
    monkeypatch.setattr(openpifpaf.network.Factory, "checkpoint", None)
    monkeypatch.setattr(openpifpaf.Predictor, "device", torch.device("cpu"))
    torch.manual_seed(0)
    predictor = openpifpaf.Predictor(head_metas=list(cocokp_head_metas))
    image = np.random.default_rng(0).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    predictions, _, meta = predictor.numpy_image(image)
    assert isinstance(predictions, list)
    assert tuple(meta["width_height"]) == (120, 90)


def test_cifcaf_decoder_recovers_a_synthetic_person(openpifpaf, cocokp_head_metas):
    """Fields as the network emits them in eval mode, drawn by hand for one upright person."""
    from openpifpaf.plugins.coco import constants

    net = _random_net(openpifpaf, cocokp_head_metas)
    cif_meta, caf_meta = net.head_metas
    stride = cif_meta.stride
    height = width = 20
    pose = np.asarray(constants.COCO_UPRIGHT_POSE)[:, :2] * [1.0, -1.0]
    pose = (pose - pose.min(0)) / np.ptp(pose, axis=0).max() * 14 + 3  # field coordinates

    # CIF components: spread, confidence, x, y, scale
    cif = torch.zeros(cif_meta.n_fields, 5, height, width)
    cif[:, 0] = 0.5
    cif[:, 4] = 1.0
    for f, (x, y) in enumerate(pose):
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                i, j = round(x) + dx, round(y) + dy
                cif[f, 1:4, j, i] = torch.tensor([0.9, x, y])
    # CAF components: spread, confidence, x1, y1, x2, y2, scale1, scale2
    caf = torch.zeros(caf_meta.n_fields, 8, height, width)
    caf[:, 0] = 0.5
    caf[:, 6:8] = 1.0
    for c, (a, b) in enumerate(constants.COCO_PERSON_SKELETON):
        pa, pb = pose[a - 1], pose[b - 1]
        for t in np.linspace(0.0, 1.0, 9):
            i, j = (round(v) for v in pa * (1 - t) + pb * t)
            caf[c, 1:6, j, i] = torch.tensor([0.9, *pa, *pb])

    decoder = openpifpaf.decoder.factory(net.head_metas)
    annotations = decoder([cif, caf])
    assert len(annotations) == 1
    ann = annotations[0]
    assert (ann.data[:, 2] > 0).all()  # all 17 keypoints found
    np.testing.assert_allclose(ann.data[:, :2], pose * stride, atol=0.5)


def test_mobilenet_v2_imagenet_weights_load_offline_and_see_a_cat(monkeypatch):
    import torch.hub
    from skimage.data import chelsea
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    assert cached.is_file(), f"{cached} missing: run scripts/install_pretrained_weights.py"

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    model = mobilenet_v2(weights=weights).eval()

    image = torch.from_numpy(chelsea()).permute(2, 0, 1)  # uint8 CHW
    batch = weights.transforms()(image).unsqueeze(0)
    with torch.no_grad():
        probabilities = model(batch).softmax(dim=1)[0]
    top5 = [weights.meta["categories"][i] for i in probabilities.topk(5).indices.tolist()]
    assert IMAGENET_CATS & set(top5), top5
