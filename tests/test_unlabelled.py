"""Unlabelled images: the same preprocessing as labelled ones, and grasp files never opened."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.data.jacquard import JacquardDataset
from utils.data.loader import make_loader
from utils.data.synthetic import generate_dataset
from utils.data.unlabelled import ImageFolder, UnlabelledItems
from utils.grasp import GraspRectangles


@pytest.fixture(scope="module")
def jacquard_root(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("unl") / "jac", n_scenes=4, size=96, views=2)


def test_unlabelled_items_match_labelled_inputs_and_never_read_grasps(jacquard_root, monkeypatch):
    ds = JacquardDataset(jacquard_root, output_size=48, random_rotate=True, random_zoom=True)
    expected = ds.view(3, np.pi / 2, 0.8)["x"]

    def no_labels(*args, **kwargs):
        raise AssertionError("a grasp file was opened")

    monkeypatch.setattr(GraspRectangles, "load_from_jacquard_file", no_labels)
    items = UnlabelledItems(ds)
    item = ds.unlabelled_view(3, np.pi / 2, 0.8)
    assert set(item) == {"x", "index", "rot", "zoom"}
    assert torch.equal(item["x"], expected)
    loader = make_loader(items, list(range(len(ds))), 3, shuffle=True, num_workers=0, seed=0)
    batches = list(loader)
    assert sum(len(b["x"]) for b in batches) == len(ds)
    assert len({float(r) for b in batches for r in b["rot"]}) > 1  # augmented


def test_image_folder_flat_and_jacquard_layouts(jacquard_root, tmp_path):
    ds = ImageFolder(jacquard_root, output_size=32, use_rgb=True)
    assert len(ds) == len(JacquardDataset(jacquard_root)) == 4
    assert ds[0]["x"].shape == (4, 32, 32) and "y" not in ds[0]
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted(jacquard_root.glob("*/*_perfect_depth.tiff"))[:3]:
        (flat / f.name).write_bytes(f.read_bytes())
    folder = ImageFolder(flat, output_size=32)
    assert len(folder) == 3 and folder[1]["x"].shape == (1, 32, 32)
    with pytest.raises(ValueError, match="an unlabelled image"):
        folder.load_grasps(0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty: no depth images found"):
        ImageFolder(empty)


def test_real_unlabelled_jacquard_views(shared_data):
    ds = ImageFolder(shared_data / "jacquard_unlabelled", output_size=64, depth_type="stereo")
    assert len(ds) == 10
    x = ds[0]["x"]
    assert x.shape == (1, 64, 64) and torch.isfinite(x).all() and float(x.std()) > 0
