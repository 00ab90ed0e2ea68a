"""Depth input: the table normalisation's invariance, the randomisation's determinism, and the
checkpoint carrying its normalisation to evaluation and prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.data.synthetic import Camera, render_scene
from utils.data.synthetic_render import PlacedObject, Shape, focal_length
from utils.depth import fit_table, fit_table_plane, normalise_depth, randomise_depth

SIZE = 160


def _box_view(distance: float, tilt: float, h: float = 0.05):
    f = focal_length(SIZE)
    camera = Camera((SIZE, SIZE), f, distance=distance, tilt=tilt, tilt_dir=0.4)
    z = float(camera.table_depth()[80, 80]) - h
    box = PlacedObject(
        Shape("box", {"a": 0.12, "b": 0.05, "h": h}, (0.5, 0.5, 0.5)), (80.0, 80.0), 0.3, f / z
    )
    return render_scene([box], camera, np.random.default_rng(0))


@pytest.mark.parametrize("distance,tilt_deg", [(0.6, 0.0), (1.0, 5.0), (1.5, 10.0), (1.6, 14.0)])
def test_table_normalisation_gives_heights_whatever_the_camera(distance, tilt_deg):
    scene = _box_view(distance, math.radians(tilt_deg))
    x = normalise_depth(scene.depth, "table")
    table = ~scene.mask
    assert np.abs(x[table]).max() < 2e-4  # metres: the plane is exact in a pinhole view
    # Object pixels are minus their height along the optical axis (h cos(tilt)).
    expected = -0.05 * math.cos(math.radians(tilt_deg))
    assert np.median(x[scene.mask]) == pytest.approx(expected, abs=5e-4)
    # The mean normalisation keeps the tilt's ramp and the table's offset under the object.
    m = normalise_depth(scene.depth, "mean")
    assert np.allclose(m, np.clip(scene.depth - scene.depth.mean(), -1, 1))
    if tilt_deg >= 10:
        assert np.ptp(m[table]) > 0.03


def test_table_fit_ignores_a_big_object_and_degenerate_input():
    scene = _box_view(0.6, math.radians(8), h=0.12)  # the box fills a large part of the view
    plane = fit_table_plane(scene.depth)
    assert np.abs(plane - scene.camera.table_depth())[~scene.mask].max() < 2e-4
    flat = np.full((32, 32), 0.8, np.float32)
    assert np.allclose(normalise_depth(flat, "table"), 0.0)
    with pytest.raises(ValueError, match="depth normalisation"):
        normalise_depth(flat, "median")


def test_float32_table_plane_is_the_float64_plane_and_leaves_the_input_alone():
    """The plane's depth is made in float32 (a training item fits one per read): within
    float32 rounding of the float64 plane, on flat and tilted tables; normalising returns a
    new array and never writes into the depth it was given."""
    for distance, tilt in ((0.6, 0.0), (1.0, 8.0), (1.5, 14.0)):
        depth = _box_view(distance, math.radians(tilt)).depth
        before = depth.copy()
        exact = fit_table(depth).depth()
        assert np.abs(fit_table_plane(depth) - exact).max() < 1e-6 * exact.max()
        x = normalise_depth(depth, "table")
        assert x.dtype == np.float32 and not np.shares_memory(x, depth)
        assert np.array_equal(depth, before)


def test_randomisation_is_deterministic_per_seed_and_bounded():
    x = normalise_depth(_box_view(1.5, math.radians(10)).depth, "table")
    a = randomise_depth(x, np.random.default_rng(3))
    b = randomise_depth(x, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.dtype == np.float32 and a.shape == x.shape
    outs = [randomise_depth(x, np.random.default_rng(s)) for s in range(20)]
    assert not all(np.array_equal(outs[0], o) for o in outs[1:])
    for o in outs:
        assert np.isfinite(o).all() and np.abs(o).max() <= 1.0
        # A perturbation, not new content: within the 15% height scale, a 3 cm ramp and
        # mm-level noise of the input.
        assert np.abs(o - x).max() < 0.05


def test_dataset_randomises_training_items_only(tmp_path):
    from utils.data import JacquardDataset
    from utils.data.synthetic import generate_dataset

    root = generate_dataset(tmp_path / "syn", "jacquard", n_scenes=2, seed=1, size=96, views=2)
    plain = JacquardDataset(root, output_size=64, depth_norm="table")
    aug = JacquardDataset(root, output_size=64, depth_norm="table", depth_aug=True)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    i1, i2 = aug.item(0, g1), aug.item(0, g2)
    assert torch.equal(i1["x"], i2["x"])  # the item's generator decides everything
    assert not torch.equal(i1["x"], plain.view(0)["x"])
    assert torch.equal(aug.view(0)["x"], plain.view(0)["x"])  # views (evaluation) untouched
    # The labels are those of the same view: only the depth input is perturbed.
    assert torch.equal(i1["y"], plain.view(0, i1["rot"], i1["zoom"])["y"])
    with pytest.raises(ValueError, match="depth_norm"):
        JacquardDataset(root, output_size=64, depth_norm="median")


def test_the_checkpoint_carries_its_normalisation_to_eval_and_predict(tmp_path):
    import contextlib
    import io

    import eval_net
    import train_net
    from tests.conftest import tiny_args
    from utils.predict import GraspPredictor

    with contextlib.redirect_stdout(io.StringIO()):
        args = train_net.parse_args(
            tiny_args(tmp_path, "--network", "ggcnn2", "--epochs", "1", "--depth-norm", "table",
                      "--depth-aug", "1", "--batches-per-epoch", "2", "--description", "norm")
        )  # fmt: skip
        train_net.main(args)
    (run,) = (tmp_path / "runs").glob("*_norm")
    ckpt = str(run / "last.pt")
    assert GraspPredictor.from_checkpoint(ckpt).depth_norm == "table"
    ev = eval_net.parse_args(["--network", ckpt, "--part", "test"])
    trained = torch.load(ckpt, map_location="cpu", weights_only=True)["args"]
    assert eval_net.resolve_data_args(ev, trained).depth_norm == "table"
    # A checkpoint from before the flag: GG-CNN's mean normalisation.
    old = {k: v for k, v in trained.items() if k not in ("depth_norm", "depth_aug")}
    ev = eval_net.parse_args(["--network", ckpt, "--part", "test"])
    assert eval_net.resolve_data_args(ev, old).depth_norm == "mean"
    # Resuming such a checkpoint keeps its normalisation (not today's default).
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    ck["args"] = old
    torch.save(ck, tmp_path / "old.pt")
    resumed = train_net.parse_args(["--resume", str(tmp_path / "old.pt"), "--epochs", "2"])
    assert resumed.depth_norm == "mean" and resumed.depth_aug is False
    assert train_net.parse_args(tiny_args(tmp_path)).depth_norm == "table"  # today's default
