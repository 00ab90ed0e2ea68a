"""Mask-centroid baseline and depth-only object masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import polygon

from utils.baselines import depth_centroid_grasp, depth_mask, largest_component, mask_centroid_grasp
from utils.grasp import GraspRectangles, angle_difference


def _box_mask(shape, center_rc, long_px, short_px, angle):
    """Filled rectangle whose long side has grasp-angle direction ``angle`` (CCW on screen)."""
    r, c = center_rc
    d_long = np.array([-math.sin(angle), math.cos(angle)])
    d_short = np.array([math.cos(angle), math.sin(angle)])
    corners = [
        np.array([r, c]) + sl * long_px / 2 * d_long + ss * short_px / 2 * d_short
        for sl, ss in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    pts = np.array(corners)
    mask = np.zeros(shape, bool)
    mask[polygon(pts[:, 0], pts[:, 1], shape)] = True  # pixels whose centres are inside
    return mask


@pytest.mark.parametrize("angle_deg", [0.0, 25.0, 70.0, -40.0, 90.0])
def test_rotated_box_is_grasped_across_its_short_side(angle_deg):
    angle = math.radians(angle_deg)
    mask = _box_mask((160, 160), (80.0, 78.0), 90, 24, angle)
    g = mask_centroid_grasp(mask, margin=0.0)
    # Across the short side: the opening is perpendicular to the long side.
    assert angle_difference(g.angle, angle + math.pi / 2) < math.radians(2)
    assert abs(g.length - 24) <= 1.5  # the short side, within rasterisation
    assert np.allclose(g.center, (80.0, 78.0), atol=1.0)
    assert g.width == pytest.approx(0.5 * g.length)
    # The margin widens the opening proportionally.
    assert mask_centroid_grasp(mask, margin=0.2).length == pytest.approx(1.2 * g.length)


def test_largest_component_is_used():
    mask = _box_mask((120, 120), (40, 40), 60, 20, 0.0) | _box_mask(
        (120, 120), (100, 100), 16, 8, 1.0
    )
    assert largest_component(mask).sum() == _box_mask((120, 120), (40, 40), 60, 20, 0.0).sum()
    g = mask_centroid_grasp(mask)
    assert np.allclose(g.center, (40, 40), atol=1.0)
    with pytest.raises(ValueError, match="empty"):
        mask_centroid_grasp(np.zeros((8, 8), bool))


def test_depth_mask_finds_objects_on_a_tilted_table():
    rows, cols = np.mgrid[0:120, 0:160]
    table = 1.2 + 0.0008 * rows - 0.0003 * cols  # metres, a few degrees of tilt
    depth = table.astype(np.float32)
    box = _box_mask(depth.shape, (60, 70), 50, 20, 0.6)
    depth[box] -= 0.03  # a 3 cm tall object
    depth[5:8, 5:8] = -1  # invalid stereo pixels are never objects
    mask = depth_mask(depth)
    assert (mask & box).sum() / (mask | box).sum() > 0.9
    g = depth_centroid_grasp(depth)
    assert angle_difference(g.angle, 0.6 + math.pi / 2) < math.radians(3)
    with pytest.raises(ValueError, match="no object"):
        depth_centroid_grasp(table.astype(np.float32))


def test_baseline_on_real_jacquard_sample(shared_data):
    from utils.image import load_depth, load_mask

    grasp_files = sorted((shared_data / "jacquard_samples").glob("*/*_grasps.txt"))
    if not grasp_files:
        pytest.skip("no Jacquard samples")
    hits = 0
    for f in grasp_files[:6]:
        stem = str(f)[: -len("_grasps.txt")]
        gt = GraspRectangles.load_from_jacquard_file(f)
        mask = load_mask(f"{stem}_mask.png")
        from_depth = depth_mask(load_depth(f"{stem}_perfect_depth.tiff"))
        assert (mask & from_depth).sum() / (mask | from_depth).sum() > 0.8
        hits += mask_centroid_grasp(mask).max_iou(gt) > 0.25
    assert hits >= 3
