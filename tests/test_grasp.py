"""Geometry: conventions, file formats, the exact IoU and target maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, HalfspaceIntersection

from utils.grasp import (
    WIDTH_SCALE,
    Grasp,
    GraspRectangle,
    GraspRectangles,
    angle_difference,
    draw_one_at_a_time,
    encode_grasp_maps,
    fill_convex_polygons,
    iou_many,
    max_iou,
    max_iou_per_image,
    polygon_intersection_area,
    stacked_targets,
    wrap_angle,
)


def random_grasp(rng: np.random.Generator, spread: float = 50.0) -> Grasp:
    return Grasp(
        rng.uniform(0, spread, 2),
        rng.uniform(-math.pi / 2, math.pi / 2),
        rng.uniform(5, 60),
        rng.uniform(5, 40),
    )


def reference_intersection(p: np.ndarray, q: np.ndarray) -> float:
    """Intersection area by scipy's half-space intersection: independent of our clipping."""

    def halfspaces(poly: np.ndarray) -> list[list[float]]:
        c = poly.mean(axis=0)
        out = []
        for k in range(4):
            a, b = poly[k], poly[(k + 1) % 4]
            n = np.array([b[1] - a[1], a[0] - b[0]])
            if n @ (c - a) > 0:
                n = -n
            out.append([n[0], n[1], -n @ a])
        return out

    h = np.array(halfspaces(p) + halfspaces(q))
    norm = np.linalg.norm(h[:, :2], axis=1)
    # Chebyshev centre: an interior point, or none if the intersection is empty.
    res = linprog(
        [0, 0, -1],
        A_ub=np.hstack([h[:, :2], norm[:, None]]),
        b_ub=-h[:, 2],
        bounds=[(None, None), (None, None), (0, None)],
    )
    if res.x is None or res.x[2] < 1e-7:
        return 0.0
    return ConvexHull(HalfspaceIntersection(h, res.x[:2]).intersections).volume


# --- conventions -------------------------------------------------------------------------------
def test_wrap_angle_range_and_boundary():
    a = np.linspace(-10, 10, 1001)
    w = wrap_angle(a)
    assert np.all(w >= -math.pi / 2) and np.all(w < math.pi / 2)
    assert np.allclose(np.cos(2 * w), np.cos(2 * a)) and np.allclose(np.sin(2 * w), np.sin(2 * a))
    assert wrap_angle(math.pi / 2) == pytest.approx(-math.pi / 2)
    assert angle_difference(math.pi / 2 - 0.01, -math.pi / 2 + 0.01) == pytest.approx(0.02)


def test_positive_angle_opens_up_and_right():
    r = Grasp((100, 100), math.pi / 4, 20, 10).as_gr
    d = r.points[1] - r.points[0]
    assert d[0] < 0 and d[1] > 0  # rows up (negative), columns right
    assert r.angle == pytest.approx(math.pi / 4)


def test_grasp_rectangle_round_trip_and_equality():
    rng = np.random.default_rng(1)
    for _ in range(50):
        g = random_grasp(rng)
        assert g == g
        back = g.as_gr.as_grasp
        assert back == g
        assert back.length == pytest.approx(g.length) and back.width == pytest.approx(g.width)
    # The half-turn symmetry: the same grasp drawn from the other side is equal.
    g = Grasp((5, 5), 0.3, 10, 4)
    flipped = GraspRectangle(g.as_gr.points[[2, 3, 0, 1]])
    assert flipped.as_grasp == g


def test_angle_wrap_at_plus_minus_half_pi():
    a = Grasp((50, 50), math.pi / 2 - 1e-3, 40, 10).as_gr
    b = Grasp((50, 50), -math.pi / 2 + 1e-3, 40, 10).as_gr
    assert a.iou(b) > 0.99  # nearly the same rectangle across the wrap


def test_rotate_adds_angle_and_quarter_turn_direction():
    r = Grasp((50, 60), 0.2, 30, 10).as_gr
    rot = r.rotate(0.5, (50, 50))
    assert rot.angle == pytest.approx(wrap_angle(0.7))
    # A point right of the centre goes above it after a quarter turn counter-clockwise.
    p = GraspRectangles(np.array([[[50, 60]] * 4], dtype=float)).rotate(math.pi / 2, (50, 50))
    assert np.allclose(p.points[0, 0], [40, 50])
    assert np.allclose(r.rotate(0.9, (3, 4)).rotate(-0.9, (3, 4)).points, r.points)


def test_zoom_scale_offset():
    r = Grasp((50, 50), 0.0, 20, 10).as_gr
    z = r.zoom(0.5, (50, 50))
    assert z.length == pytest.approx(40) and np.allclose(z.center, [50, 50])
    assert r.scale(2).length == pytest.approx(40)
    assert np.allclose(r.offset((1, -2)).center, [51, 48])


# --- IoU ---------------------------------------------------------------------------------------
def test_iou_self_one_disjoint_zero_and_symmetric():
    rng = np.random.default_rng(2)
    for _ in range(100):
        a, b = random_grasp(rng).as_gr, random_grasp(rng).as_gr
        assert a.iou(a) == pytest.approx(1.0)
        assert a.iou(b, angle_threshold=math.pi) == pytest.approx(
            b.iou(a, angle_threshold=math.pi), abs=1e-12
        )
        assert a.iou(a.offset((1000, 0))) == 0.0


def test_intersection_area_matches_independent_computation():
    rng = np.random.default_rng(3)
    a = np.stack([random_grasp(rng).as_gr.points for _ in range(200)])
    b = np.stack([random_grasp(rng).as_gr.points for _ in range(200)])
    ours = polygon_intersection_area(a, b)
    ref = np.array([reference_intersection(p, q) for p, q in zip(a, b, strict=True)])
    assert (ref > 0).sum() > 50  # the sample exercises real overlaps
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    # Winding does not matter.
    np.testing.assert_allclose(polygon_intersection_area(a[:, ::-1], b), ours, atol=1e-9)


def test_iou_known_value_and_angle_threshold():
    a = Grasp((0, 0), 0.0, 20, 10).as_gr
    b = a.offset((0, 10))  # half overlap along the opening: 100 / 300
    assert a.iou(b) == pytest.approx(1 / 3)
    c = Grasp((0, 0), math.radians(31), 20, 10).as_gr
    assert a.iou(c) == 0.0
    assert a.iou(c, angle_threshold=math.radians(32)) > 0.5


def test_max_iou_vectorised_matches_loop():
    rng = np.random.default_rng(4)
    rects = GraspRectangles([random_grasp(rng, 20).as_gr for _ in range(60)])
    probe = random_grasp(rng, 20).as_gr
    loop = [probe.iou(r) for r in rects]
    np.testing.assert_allclose(iou_many(probe, rects), loop)
    assert max_iou(probe, rects) == pytest.approx(max(loop))
    assert max_iou(probe, GraspRectangles()) == 0.0


# --- file formats ------------------------------------------------------------------------------
def test_cornell_file_nan_rectangles_dropped(shared_data):
    path = shared_data / "cornell_samples" / "cpos_only" / "pcd0165cpos.txt"
    n_lines = len([ln for ln in path.read_text().splitlines() if ln.strip()])
    nan_rects = 0
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    for k in range(0, len(lines), 4):
        nan_rects += any("nan" in ln.lower() for ln in lines[k : k + 4])
    rects = GraspRectangles.load_from_cornell_file(path)
    assert nan_rects > 0
    assert len(rects) == n_lines // 4 - nan_rects
    assert not np.isnan(rects.points).any()


def test_cornell_first_edge_is_opening(shared_data):
    rects = GraspRectangles.load_from_cornell_file(
        shared_data / "cornell_samples" / "01" / "pcd0100cpos.txt"
    )
    assert len(rects) == 4
    # First line "253 319.7" is x (column) 253, y (row) 319.7.
    assert np.allclose(rects.points[0, 0], [319.7, 253])
    assert rects[0].length == pytest.approx(math.hypot(309 - 253, 324 - 319.7))


def test_jacquard_crlf_and_angle_sign(shared_data):
    path = next((shared_data / "jacquard_samples").glob("*/*_grasps.txt"))
    assert b"\r\n" in path.read_bytes()
    rects = GraspRectangles.load_from_jacquard_file(path)
    first = path.read_text().splitlines()[0].split(";")
    x, y, theta, w, h = map(float, first)
    assert np.allclose(rects.centers[0], [y, x])
    assert rects.angles[0] == pytest.approx(wrap_angle(-math.radians(theta)))
    assert rects.lengths[0] == pytest.approx(w) and rects.widths[0] == pytest.approx(h)
    half = GraspRectangles.load_from_jacquard_file(path, scale=0.5)
    assert np.allclose(half.points, rects.points * 0.5)


def test_jacquard_and_cornell_round_trips(shared_data, tmp_path):
    for path in sorted((shared_data / "jacquard_samples").glob("*/*_grasps.txt")):
        rects = GraspRectangles.load_from_jacquard_file(path)
        out = tmp_path / "g.txt"
        rects.save_jacquard(out)
        again = GraspRectangles.load_from_jacquard_file(out)
        assert np.allclose(again.points, rects.points, atol=1e-3)
        # And through the other format.
        rects.save_cornell(out)
        assert np.allclose(
            GraspRectangles.load_from_cornell_file(out).points, rects.points, atol=1e-2
        )


def test_malformed_lines_name_file_and_line(tmp_path):
    bad = tmp_path / "pcd0000cpos.txt"
    bad.write_text("1 2\n3 4\n5 x\n7 8\n")
    with pytest.raises(ValueError, match=r"pcd0000cpos.txt:3"):
        GraspRectangles.load_from_cornell_file(bad)
    bad.write_text("1 2\n3 4\n5 6\n")
    with pytest.raises(ValueError, match="4 corner lines"):
        GraspRectangles.load_from_cornell_file(bad)
    jac = tmp_path / "0_x_grasps.txt"
    jac.write_text("1;2;3;4;5\r\n1;2;3;4\r\n")
    with pytest.raises(ValueError, match=r"0_x_grasps.txt:2"):
        GraspRectangles.load_from_jacquard_file(jac)
    with pytest.raises(ValueError, match="missing.txt"):
        GraspRectangles.load_from_jacquard_file(tmp_path / "missing.txt")


# --- target maps -------------------------------------------------------------------------------
def test_draw_middle_third_and_later_wins():
    a = Grasp((32, 32), 0.0, 30, 10).as_gr
    q, ang, wid = GraspRectangles([a]).draw((64, 64))
    rows, cols = np.nonzero(q)
    assert cols.max() - cols.min() + 1 == pytest.approx(10, abs=1)  # a third of 30
    assert rows.max() - rows.min() + 1 == pytest.approx(10, abs=1)
    assert np.all(wid[q > 0] == 30)
    b = Grasp((32, 32), 0.5, 45, 10).as_gr
    q2, ang2, wid2 = GraspRectangles([a, b]).draw((64, 64))
    assert ang2[32, 32] == pytest.approx(0.5) and wid2[32, 32] == 45


def test_rotating_rectangles_rotates_maps():
    g = GraspRectangles([Grasp((20, 40), 0.3, 24, 8).as_gr])
    q, ang, _ = g.draw((64, 64))
    rq, rang, _ = g.rotate(math.pi / 2, (31.5, 31.5)).draw((64, 64))
    # np.rot90 turns an array counter-clockwise on screen about its centre (31.5, 31.5).
    assert np.array_equal(np.rot90(q), rq)
    on = rq > 0
    assert np.allclose(wrap_angle(rang[on]), wrap_angle(np.rot90(ang)[on] + math.pi / 2))


def test_encode_grasp_maps():
    g = GraspRectangles([Grasp((16, 16), 0.4, 60, 12).as_gr])
    y = encode_grasp_maps(*g.draw((32, 32)))
    assert y.shape == (4, 32, 32) and y.dtype == np.float32
    on = y[0] > 0
    assert np.allclose(y[1][on], math.cos(0.8)) and np.allclose(y[2][on], math.sin(0.8))
    assert np.allclose(y[3][on], 60 / WIDTH_SCALE)
    assert np.all(y[1:][:, ~on] == 0)


# --- the vectorised rasteriser against skimage's one polygon at a time -----------------------
def _random_rectangles(rng: np.random.Generator, n: int, size: int) -> GraspRectangles:
    return GraspRectangles.from_grasps(
        rng.uniform(-10, size + 10, (n, 2)), rng.uniform(-math.pi / 2, math.pi / 2, n),
        rng.uniform(1, 60, n), rng.uniform(1, 30, n),
    )  # fmt: skip


def test_fill_convex_polygons_equals_skimage_on_generic_rectangles():
    from skimage.draw import polygon

    rng = np.random.default_rng(0)
    g = _random_rectangles(rng, 400, 48)
    shape = (48, 40)
    owner, rr, cc = fill_convex_polygons(g.points, shape)
    for i, pts in enumerate(g.points):
        r0, c0 = polygon(pts[:, 0], pts[:, 1], shape)
        sel = owner == i
        assert sorted(zip(r0.tolist(), c0.tolist(), strict=False)) == list(
            zip(rr[sel].tolist(), cc[sel].tolist(), strict=False)
        )


def test_fill_convex_polygons_degenerate_and_clipped():
    shape = (16, 16)
    line = np.array([[[2.0, 2.0], [2.0, 9.0], [2.0, 9.0], [2.0, 2.0]]])  # zero area
    nan = np.full((1, 4, 2), np.nan)
    huge = np.array([[[-1e12, -1e12], [-1e12, 1e12], [1e12, 1e12], [1e12, -1e12]]])
    for pts in (line, nan):
        assert all(a.size == 0 for a in fill_convex_polygons(pts, shape))
    _, rr, cc = fill_convex_polygons(huge, shape)
    assert rr.size == 256 and rr.min() == cc.min() == 0 and rr.max() == cc.max() == 15
    axis = np.array([[[1.0, 2.0], [1.0, 5.0], [3.0, 5.0], [3.0, 2.0]]])  # closed: edges count
    _, rr, cc = fill_convex_polygons(axis, shape)
    assert set(zip(rr.tolist(), cc.tolist(), strict=False)) == {
        (r, c) for r in (1, 2, 3) for c in range(2, 6)
    }


def test_draw_with_no_rectangles_is_all_zero():
    for m in GraspRectangles().draw((8, 9)):
        assert m.shape == (8, 9) and m.dtype == np.float32 and not m.any()
    y = GraspRectangles().targets((8, 9))
    assert y.shape == (4, 8, 9) and y.dtype == np.float32 and not y.any()


def test_targets_equal_the_encoded_drawn_maps_on_random_scenes():
    rng = np.random.default_rng(2)
    for _ in range(5):
        g = _random_rectangles(rng, 200, 64)
        for scale in (150.0, 20.0):  # 20: openings clipped
            expected = encode_grasp_maps(*g.draw((64, 48)), width_scale=scale)
            assert np.array_equal(g.targets((64, 48), scale), expected)


def test_stacked_targets_equal_each_images_own():
    """A batch's targets drawn together are each image's alone, bit for bit: empty images,
    rectangles reaching past the frame (clipped to their own image, never the next one) and
    jaw-size runs given or found; mismatched runs are refused."""
    rng = np.random.default_rng(5)
    sets = [_random_rectangles(rng, int(n), 64) for n in (0, 1, 40, 0, 200, 7)]
    sets.append(GraspRectangles.from_grasps(np.array([[62.0, 30.0]]), np.array([1.5]),
                                            np.array([90.0]), np.array([30.0])))  # fmt: skip
    for scale in (150.0, 20.0):
        stacked = stacked_targets(sets, (64, 48), scale)
        assert stacked.shape == (len(sets), 4, 64, 48) and stacked.dtype == np.float32
        for g, y in zip(sets, stacked, strict=True):
            assert np.array_equal(y, encode_grasp_maps(*g.draw((64, 48)), width_scale=scale))
    runs = [g.jaw_size_runs() for g in sets]
    assert np.array_equal(stacked_targets(sets, (64, 48), 20.0, runs), stacked)
    assert stacked_targets([], (8, 8)).shape == (0, 4, 8, 8)
    with pytest.raises(ValueError, match="jaw-size runs"):
        stacked_targets(sets[1:3], (64, 48), 20.0, runs[2:4])
    with pytest.raises(ValueError, match="2 jaw-size runs for 3"):
        stacked_targets(sets[:3], (64, 48), 20.0, runs[:2])


def test_targets_take_jaw_size_runs_from_another_frame():
    """Grasp lines with several jaw sizes (consecutive rectangles, one centre, angle and
    opening): runs found in the source frame give the view's targets exactly as its own
    runs do, for rotated, zoomed and shifted views; and the draw is the reference's."""
    rng = np.random.default_rng(4)
    n = 60
    centers, angles = rng.uniform(0, 64, (n, 2)), rng.uniform(-math.pi / 2, math.pi / 2, n)
    lengths, repeat = rng.uniform(2, 40, n), rng.integers(1, 5, n)
    widths = np.concatenate([np.sort(rng.uniform(1, 20, k))[rng.permutation(k)] for k in repeat])
    source = GraspRectangles.from_grasps(np.repeat(centers, repeat, axis=0),
                                         np.repeat(angles, repeat), np.repeat(lengths, repeat),
                                         widths)  # fmt: skip
    runs = source.jaw_size_runs()
    assert len(runs[0]) == n and list(runs[1]) == list(np.cumsum(repeat) - 1)
    for rot, zoom, shift in ((0.0, 1.0, 0.0), (math.pi / 2, 1.0, 3.0), (0.37, 0.7, -5.5)):
        c, s = math.cos(rot) / zoom, math.sin(rot) / zoom
        view = source.affine(np.array([[c, -s, shift], [s, c, 2 * shift]]))
        expected = view.targets((64, 64), 30.0)
        assert np.array_equal(view.targets((64, 64), 30.0, runs), expected)
        assert np.array_equal(expected, encode_grasp_maps(*view.draw((64, 64)), width_scale=30.0))
        for new, old in zip(view.draw((64, 64)), draw_one_at_a_time(view, (64, 64)), strict=True):
            assert np.array_equal(new, old)
    # Runs of other rectangles are refused, not drawn wrong.
    for other in (source[:-1], source[:5], GraspRectangles()):
        with pytest.raises(ValueError, match="jaw-size runs"):
            source.targets((64, 64), 30.0, other.jaw_size_runs())
    with pytest.raises(ValueError, match="jaw-size runs"):
        GraspRectangles().targets((8, 8), 30.0, runs)


def test_draw_equals_one_rectangle_at_a_time_on_random_scenes():
    rng = np.random.default_rng(1)
    for _ in range(5):
        g = _random_rectangles(rng, 200, 64)
        for new, old in zip(g.draw((64, 64)), draw_one_at_a_time(g, (64, 64)), strict=True):
            assert np.array_equal(new, old)


@pytest.mark.filterwarnings("ignore:.*no image beside them")
def test_draw_equals_reference_on_real_and_synthetic_targets(shared_data, tmp_path):
    """The datasets' own rectangles, in plain and augmented views: identical target maps."""
    from utils.data import CornellDataset, JacquardDataset
    from utils.data.synthetic import ensure_synthetic_dataset

    synth = ensure_synthetic_dataset(tmp_path / "synthetic", n_scenes=4, size=128, seed=0)
    sets = [
        JacquardDataset(shared_data / "jacquard_samples", output_size=224, cache_dir=tmp_path),
        CornellDataset(shared_data / "cornell_samples", output_size=224, cache_dir=tmp_path),
        JacquardDataset(synth, output_size=96, cache_dir=tmp_path),
    ]
    for ds in sets:
        s = ds.output_size
        for i in range(min(len(ds), 6)):
            for rot, zoom in ((0.0, 1.0), (math.pi / 2, 1.0), (0.37, 0.8)):
                g = ds.get_gt(i, rot, zoom)
                for new, old in zip(g.draw((s, s)), draw_one_at_a_time(g, (s, s)), strict=True):
                    assert np.array_equal(new, old), (ds.sample_id(i), rot, zoom)
                expected = encode_grasp_maps(*g.draw((s, s)), width_scale=ds.width_scale)
                assert np.array_equal(g.targets((s, s), ds.width_scale), expected)
                item = ds.view(i, rot, zoom)
                assert np.array_equal(item["y"].numpy(), expected)


def test_max_iou_per_image_equals_max_iou_image_by_image():
    """The batched pass gives each image exactly the value of :func:`max_iou` (no grasp or no
    ground truth: 0), including degenerate and NaN rectangles among the ground truth."""
    rng = np.random.default_rng(3)
    gts = [_random_rectangles(rng, int(n), 64) for n in rng.integers(0, 40, 12)]
    gts[3] = GraspRectangles()
    bad = gts[5].points.copy()
    bad[0, 1] = bad[0, 0]  # a zero-length opening: no area
    bad[1, 2, 0] = np.nan
    gts[5] = GraspRectangles(bad)
    rects = [GraspRectangle(p) for p in _random_rectangles(rng, 12, 64).points]
    rects[7] = None
    got = max_iou_per_image(rects, gts)
    expected = [0.0 if r is None else max_iou(r, g) for r, g in zip(rects, gts, strict=True)]
    assert got.tolist() == expected and got[3] == got[7] == 0.0
    assert (got > 0).sum() >= 3  # the random scenes do overlap
    assert max_iou_per_image([], []).shape == (0,)
