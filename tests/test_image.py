"""utils.image: file loading, inpainting, normalisation and the (row, col) affine warp."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from utils.depth import normalise_depth
from utils.grasp import GraspRectangles
from utils.image import (
    compose_affine,
    crop_transform,
    image_shape,
    inpaint_depth,
    invalid_depth,
    invert_affine,
    load_depth,
    load_mask,
    load_rgb,
    normalise_rgb,
    resize_image,
    resize_transform,
    transform_points,
    warp_image,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JACQUARD_VIEW = DATA / "jacquard_samples" / "1d7830c5d0322518d95aa859a460a9ec"
JACQUARD_ID = "0_1d7830c5d0322518d95aa859a460a9ec"


@pytest.fixture(scope="module")
def jacquard_view() -> Path:
    if not JACQUARD_VIEW.is_dir():
        pytest.skip(f"real sample data not found at {DATA}")
    return JACQUARD_VIEW


# --- loading -------------------------------------------------------------------------------------
def test_load_real_lzw_depth_rgb_mask(jacquard_view: Path) -> None:
    perfect = load_depth(jacquard_view / f"{JACQUARD_ID}_perfect_depth.tiff")
    assert perfect.shape == (1024, 1024) and perfect.dtype == np.float32
    assert np.isfinite(perfect).all() and 0.5 < perfect.min() < perfect.max() < 3.0
    stereo = load_depth(jacquard_view / f"{JACQUARD_ID}_stereo_depth.tiff")
    assert (stereo == -1).any()  # invalid stereo pixels are returned as they are
    rgb = load_rgb(jacquard_view / f"{JACQUARD_ID}_RGB.png")
    assert rgb.shape == (1024, 1024, 3) and rgb.dtype == np.uint8
    mask = load_mask(jacquard_view / f"{JACQUARD_ID}_mask.png")
    assert mask.dtype == bool and 0 < mask.mean() < 0.5
    assert image_shape(jacquard_view / f"{JACQUARD_ID}_perfect_depth.tiff") == (1024, 1024)
    assert image_shape(jacquard_view / f"{JACQUARD_ID}_RGB.png") == (1024, 1024)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope_perfect_depth.tiff"
    with pytest.raises(ValueError, match="nope_perfect_depth.tiff"):
        load_depth(missing)
    corrupt = tmp_path / "corrupt.tiff"
    corrupt.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(ValueError, match="corrupt.tiff"):
        load_depth(corrupt)
    ints = tmp_path / "ints.tiff"
    tifffile.imwrite(ints, np.ones((4, 5), np.uint16))
    with pytest.raises(ValueError, match=r"ints.tiff.*float"):
        load_depth(ints)
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        load_rgb(bad_png)
    with pytest.raises(ValueError, match="bad.png"):
        load_mask(bad_png)


def test_load_depth_roundtrip(tmp_path: Path) -> None:
    d = np.random.default_rng(0).uniform(0.5, 1.5, (6, 7)).astype(np.float32)
    tifffile.imwrite(tmp_path / "d.tiff", d)
    np.testing.assert_array_equal(load_depth(tmp_path / "d.tiff"), d)


# --- depth processing ----------------------------------------------------------------------------
def test_inpaint_fills_every_kind_of_hole() -> None:
    rr, cc = np.mgrid[0:40, 0:50]
    d = (1.0 + 0.01 * rr + 0.005 * cc).astype(np.float32)
    holes = d.copy()
    holes[0, 0] = np.nan  # corner
    holes[10:14, 20:25] = -1.0  # stereo invalid
    holes[39, 10:20] = 0.0  # bottom edge
    holes[5, 49] = np.inf  # right edge
    out = inpaint_depth(holes)
    assert out.dtype == np.float32 and not invalid_depth(out).any()
    good = ~invalid_depth(holes)
    np.testing.assert_array_equal(out[good], holes[good])  # measured values untouched
    # A smooth ramp is filled close to the truth.
    assert np.abs(out - d).max() < 0.05
    assert inpaint_depth(d, method="telea").dtype == np.float32


def test_inpaint_rejects_all_invalid_and_bad_method() -> None:
    with pytest.raises(ValueError, match="every pixel"):
        inpaint_depth(np.full((5, 5), -1.0, np.float32))
    with pytest.raises(ValueError, match="method"):
        inpaint_depth(np.ones((5, 5), np.float32), method="magic")


def test_normalisation() -> None:
    d = np.array([[0.0, 4.0], [1.0, 1.0]], np.float32)
    n = normalise_depth(d)
    np.testing.assert_allclose(n, [[-1.0, 1.0], [-0.5, -0.5]])
    rgb = np.random.default_rng(1).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    x = normalise_rgb(rgb)
    assert x.shape == (3, 8, 9) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-6 and float(x.max() - x.min()) <= 1.0
    np.testing.assert_allclose(x[:, 2, 3], rgb[2, 3] / 255.0 - rgb.mean() / 255.0, atol=1e-6)


# --- affine maths ---------------------------------------------------------------------------------
def test_full_frame_resize_is_pixel_centre_exact() -> None:
    f, s = 1024, 300
    m = crop_transform(((f - 1) / 2, (f - 1) / 2), f, s)
    p = np.array([[0.0, 0.0], [511.5, 511.5], [1023.0, 7.0]])
    expected = (p + 0.5) * s / f - 0.5
    np.testing.assert_allclose(transform_points(m, p), expected, atol=1e-9)
    np.testing.assert_allclose(m, resize_transform((f, f), (s, s)), atol=1e-12)
    # The frame's outer edges land on the output's outer edges.
    np.testing.assert_allclose(transform_points(m, np.array([[-0.5, 1023.5]])), [[-0.5, 299.5]])


def test_resize_transform_matches_cv2_resize() -> None:
    # A column ramp resampled by cv2 reads back the source coordinate of each output pixel.
    src = np.tile(np.arange(20, dtype=np.float32), (10, 1))
    out = cv2.resize(src, (53, 10), interpolation=cv2.INTER_LINEAR)
    inv = invert_affine(resize_transform(src.shape, out.shape))
    cols = transform_points(inv, np.stack([np.zeros(53), np.arange(53)], axis=1))[:, 1]
    inner = (cols > 0) & (cols < 19)
    np.testing.assert_allclose(out[0, inner], cols[inner], atol=0.02)


def test_compose_and_invert() -> None:
    a = crop_transform((10.2, 30.7), 40, 64, rotation=0.4, zoom=0.7)
    b = resize_transform((100, 120), (37, 45))
    p = np.random.default_rng(2).uniform(0, 50, (5, 2))
    np.testing.assert_allclose(
        transform_points(compose_affine(a, b), p), transform_points(a, transform_points(b, p))
    )
    np.testing.assert_allclose(transform_points(invert_affine(a), transform_points(a, p)), p)


def test_rotation_is_counter_clockwise_on_screen() -> None:
    n = 21
    c = (n - 1) / 2
    m = crop_transform((c, c), n, n, rotation=math.pi / 2)
    # A point right of the centre moves above it (rows grow downward).
    np.testing.assert_allclose(transform_points(m, np.array([c, c + 5])), [c - 5, c], atol=1e-9)
    img = np.zeros((n, n), np.float32)
    img[10, 15] = 1.0
    out = warp_image(img, m, n)
    assert np.unravel_index(out.argmax(), out.shape) == (5, 10) and out.max() == 1.0
    # A quarter turn of a square crop is an exact pixel permutation: numpy's rot90 (CCW).
    ramp = np.random.default_rng(3).random((n, n)).astype(np.float32)
    np.testing.assert_array_equal(warp_image(ramp, m, n), np.rot90(ramp))


def test_rectangle_angle_grows_by_the_rotation() -> None:
    rects = GraspRectangles.from_grasps(np.array([[30.0, 20.0], [12.0, 40.0]]), [0.2, -1.0], 20, 8)
    for rot in (math.pi / 2, 0.7, -2.5):
        m = crop_transform((31.5, 31.5), 64, 64, rotation=rot, zoom=0.8)
        moved = rects.affine(m)
        diff = np.mod(moved.angles - rects.angles - rot + math.pi / 2, math.pi) - math.pi / 2
        np.testing.assert_allclose(diff, 0.0, atol=1e-9)
        np.testing.assert_allclose(moved.lengths, rects.lengths / 0.8)


@pytest.mark.parametrize("rot,zoom", [(math.pi / 2, 1.0), (0.6, 1.0), (-2.2, 0.75)])
def test_image_and_rectangles_move_together(rot: float, zoom: float) -> None:
    s = 96
    rects = GraspRectangles.from_grasps(np.array([[40.0, 55.0]]), [0.35], [45.0], [18.0])
    q = rects.draw((s, s))[0]
    m = crop_transform(((s - 1) / 2, (s - 1) / 2), s, s, rotation=rot, zoom=zoom)
    warped = warp_image(q, m, s, interpolation=cv2.INTER_LINEAR, border=cv2.BORDER_CONSTANT) > 0.5
    drawn = rects.affine(m).draw((s, s))[0] > 0
    iou = (warped & drawn).sum() / (warped | drawn).sum()
    assert iou > 0.85, iou
    np.testing.assert_allclose(np.argwhere(warped).mean(0), np.argwhere(drawn).mean(0), atol=0.6)


def test_warp_image_bool_and_shapes() -> None:
    mask = np.zeros((30, 40), bool)
    mask[5:10, 5:20] = True
    m = crop_transform((14.5, 19.5), 30, 16)
    out = warp_image(mask, m, 16, interpolation=cv2.INTER_NEAREST, border=cv2.BORDER_CONSTANT)
    assert out.dtype == bool and out.shape == (16, 16) and out.any()
    rgb = np.zeros((30, 40, 3), np.uint8)
    assert warp_image(rgb, m, (16, 20)).shape == (16, 20, 3)
    with pytest.raises(ValueError, match="2 x 3"):
        warp_image(rgb, np.eye(3), 16)
    with pytest.raises(ValueError, match="crop_size"):
        crop_transform((0, 0), 0, 16)


def test_resize_image_area_and_mask_majority() -> None:
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(resize_image(img, (2, 2)), [[2.5, 4.5], [10.5, 12.5]])
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    mask[0, 2] = True
    np.testing.assert_array_equal(resize_image(mask, (2, 2)), [[True, False], [False, False]])
