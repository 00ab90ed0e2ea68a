"""Dihedral views of images and grasp maps, and test-time augmentation over them."""

from __future__ import annotations

import math

import pytest
import torch

from models import get_network
from utils.dihedral import TTA_VIEWS, DihedralTTA, transform_image, transform_maps
from utils.grasp import Grasp, GraspRectangles, encode_grasp_maps


def _maps(rects: GraspRectangles, size: int) -> torch.Tensor:
    return torch.from_numpy(encode_grasp_maps(*rects.draw((size, size)), width_scale=60.0))


@pytest.mark.parametrize("k", range(8))
def test_view_of_drawn_grasps_is_the_drawing_of_the_moved_grasps(k):
    # Drawing grasps then taking view k equals moving the grasps (quarter turns about the
    # centre, then a left-right mirror) and drawing them: pixels and angles both follow.
    size = 64
    centre = ((size - 1) / 2, (size - 1) / 2)
    rects = GraspRectangles(
        [Grasp((20, 40), 0.3, 24, 8).as_gr, Grasp((44, 18), -1.2, 30, 10).as_gr]
    )
    moved = rects.rotate((k % 4) * math.pi / 2, centre)
    if k >= 4:
        pts = moved.points.copy()
        pts[..., 1] = size - 1 - pts[..., 1]
        moved = GraspRectangles(pts[:, [1, 0, 3, 2]])  # mirrored corners, same winding
    expected = _maps(moved, size)
    got = transform_maps(_maps(rects, size), k)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("k", range(8))
def test_inverse_undoes_each_view_of_non_square_tensors(k):
    x = torch.randn(2, 4, 6, 9)
    assert torch.equal(transform_image(transform_image(x, k), k, inverse=True), x)
    assert torch.allclose(transform_maps(transform_maps(x, k), k, inverse=True), x)
    assert transform_image(x, k).shape[-2:] == ((6, 9) if k % 2 == 0 else (9, 6))


def test_bad_view_and_map_shape_are_refused():
    with pytest.raises(ValueError, match="dihedral view must be in 0..7, got 8"):
        transform_image(torch.zeros(1, 1, 4, 4), 8)
    with pytest.raises(ValueError, match="grasp maps need 4 channels"):
        transform_maps(torch.zeros(1, 3, 4, 4), 1)


@pytest.mark.parametrize("name", ["rot4", "d8"])
def test_tta_is_exactly_equivariant_over_its_views(name):
    # Averaging over a group of views makes any network equivariant to that group: the TTA
    # maps of a turned or mirrored input are the turned or mirrored TTA maps.
    torch.manual_seed(0)
    net = get_network("ggcnn2", input_channels=1).eval()
    tta = DihedralTTA(net, TTA_VIEWS[name])
    assert tta.input_channels == 1
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        base = tta(x)
        assert base.shape == (2, 4, 48, 48)
        # The plain network is not equivariant, so the test has teeth.
        assert not torch.allclose(net(transform_image(x, 1)), transform_maps(net(x), 1), atol=1e-3)
        for k in TTA_VIEWS[name]:
            assert torch.allclose(tta(transform_image(x, k)), transform_maps(base, k), atol=1e-5)


def test_tta_with_one_view_is_the_network():
    torch.manual_seed(0)
    net = get_network("ggcnn", input_channels=1).eval()
    x = torch.randn(1, 1, 40, 40)
    with torch.no_grad():
        assert torch.allclose(DihedralTTA(net, TTA_VIEWS["none"])(x), net(x))
    with pytest.raises(ValueError, match="0..7"):
        DihedralTTA(net, (0, 9))
