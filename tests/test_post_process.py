"""Decoding maps into grasps, and the rectangle metric end to end on drawn targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.evaluation import (
    EvaluationResults,
    calculate_iou_match,
    evaluate_grasps,
    evaluate_image,
)
from utils.grasp import WIDTH_SCALE, Grasp, GraspRectangles, angle_difference, encode_grasp_maps
from utils.post_process import detect_grasps, post_process_output


def target_for(grasps: list[Grasp], size: int = 96, width_scale: float = WIDTH_SCALE):
    gt = GraspRectangles([g.as_gr for g in grasps])
    return gt, encode_grasp_maps(*gt.draw((size, size)), width_scale=width_scale)


def test_perfect_maps_decode_to_the_grasp():
    g = Grasp((40, 50), 0.6, 36, 18)
    gt, y = target_for([g])
    q, ang, wid = post_process_output(*y)
    (det,) = detect_grasps(q, ang, wid, n_grasps=1)
    assert np.hypot(*(det.center - g.center)) <= 1.5
    assert angle_difference(det.angle, g.angle) < 0.02
    assert det.length == pytest.approx(36, rel=0.05)
    assert calculate_iou_match(q, ang, gt, width=wid)


def test_same_width_scale_on_both_sides():
    g = Grasp((40, 50), 0.0, 80, 20)
    for scale in (100.0, 150.0, 300.0):
        _, y = target_for([g], width_scale=scale)
        _, _, wid = post_process_output(*y, width_scale=scale, sigma=(0, 0, 0))
        assert wid[40, 50] == pytest.approx(80, rel=1e-5)


def test_negative_opening_is_no_grasp():
    """The width head has no activation: a negative opening drew the same rectangle as its
    absolute value (both half-extents flip) and scored as a hit. It decodes to 0 instead, a
    grasp of no area, on both the whole-map and the at-the-peak paths."""
    from utils.evaluation import evaluate_raw_batch

    g = Grasp((32, 32), 0.3, 40, 20)
    gt, y = target_for([g], 64)
    assert evaluate_raw_batch(y[None], [gt])[0].success  # the true maps hit
    y[3] *= -1.0
    _, _, wid = post_process_output(*y)
    assert wid.min() == 0.0
    (res,) = evaluate_raw_batch(y[None], [gt])
    assert not res.success and res.best_iou == 0.0 and res.grasps[0].length == 0.0
    assert not calculate_iou_match(*post_process_output(*y)[:2], gt, width=wid)


def test_angle_smoothing_does_not_average_across_the_wrap():
    # Left half just below +pi/2, right half just above -pi/2: the same physical grasp angle.
    a = np.full((32, 32), math.pi / 2 - 0.05, dtype=np.float32)
    a[:, 16:] = -math.pi / 2 + 0.05
    q = np.ones_like(a)
    _, ang, _ = post_process_output(q, np.cos(2 * a), np.sin(2 * a), q, sigma=(2, 4, 1))
    assert np.all(angle_difference(ang, math.pi / 2) < 0.06)


def test_unsmoothed_angle_is_half_the_atan2_of_the_maps():
    # Every quadrant and the wrap: the decoded angle is atan2(sin, cos) / 2 in [-pi/2, pi/2].
    rng = np.random.default_rng(0)
    c, s = rng.normal(size=(2, 3, 20, 20)).astype(np.float32)
    _, ang, _ = post_process_output(c, c, s, c, sigma=(0, 0, 0))
    assert ang.dtype == np.float32 and ang.shape == (3, 20, 20)
    assert np.allclose(ang, 0.5 * np.arctan2(s, c), atol=1e-6)
    assert np.all(np.abs(ang) <= math.pi / 2 + 1e-6)


def test_batch_and_torch_inputs():
    grasps = [Grasp((30, 30), 0.2, 30, 10), Grasp((60, 40), -1.2, 40, 10)]
    ys = np.stack([target_for([g])[1] for g in grasps])  # N x 4 x H x W
    t = torch.from_numpy(ys)
    q, ang, wid = post_process_output(t[:, 0:1], t[:, 1:2], t[:, 2:3], t[:, 3:4])
    assert q.shape == (2, 96, 96) and ang.dtype == np.float32
    q1, ang1, _ = post_process_output(ys[1, 0], ys[1, 1], ys[1, 2], ys[1, 3])
    assert np.allclose(q[1], q1, atol=1e-6) and np.allclose(ang[1], ang1, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        post_process_output(np.zeros(5), np.zeros(5), np.zeros(5), np.zeros(5))


def test_detect_grasps_best_first_and_threshold():
    q = np.zeros((64, 64), dtype=np.float32)
    q[10, 10], q[50, 50] = 0.5, 0.9
    zeros = np.zeros_like(q)
    found = detect_grasps(q, zeros, zeros + 30, n_grasps=3)
    assert [tuple(g.center) for g in found] == [(50, 50), (10, 10)]
    assert found[0].quality == pytest.approx(0.9) and found[0].width == pytest.approx(15)
    assert detect_grasps(q, zeros, zeros, threshold=0.95) == []


def test_wrong_angle_or_place_fails():
    g = Grasp((40, 50), 0.0, 36, 18)
    gt = GraspRectangles([g.as_gr])
    assert not evaluate_grasps([Grasp((40, 50), math.radians(35), 36, 18)], gt).success
    assert evaluate_grasps([Grasp((40, 50), math.radians(25), 36, 18)], gt).success
    assert not evaluate_grasps([Grasp((80, 90), 0.0, 36, 18)], gt).success
    assert not evaluate_grasps([], gt).success


def test_top_n_grasps_any_match_counts():
    gt = GraspRectangles([Grasp((20, 20), 0.0, 20, 10).as_gr])
    q = np.zeros((64, 64), dtype=np.float32)
    q[50, 50], q[20, 20] = 1.0, 0.8  # the best peak is wrong, the second right
    ang, wid = np.zeros_like(q), np.full_like(q, 20)
    assert not evaluate_image(q, ang, gt, wid, n_grasps=1).success
    assert evaluate_image(q, ang, gt, wid, n_grasps=2).success


def test_results_summary_and_merge():
    a, b = EvaluationResults(), EvaluationResults()
    gt = GraspRectangles([Grasp((20, 20), 0.0, 20, 10).as_gr])
    a.add("x", evaluate_grasps([Grasp((20, 20), 0.0, 20, 10)], gt))
    b.add("y", evaluate_grasps([], gt))
    m = a.merge(b)
    assert len(m) == 2 and m.success_rate == 0.5 and m.mean_best_iou == pytest.approx(0.5)
    assert m.to_dict()["per_image"]["ids"] == ["x", "y"]
    assert EvaluationResults().success_rate == 0.0


def test_batched_evaluation_equals_image_by_image():
    """evaluate_batch's vectorised peak = detect_grasps' peak_local_max, ties, flat maps,
    border peaks, sub-threshold and NaN maps included; the same scores."""
    from utils.evaluation import evaluate_batch, evaluate_image
    from utils.grasp import GraspRectangles

    rng = np.random.default_rng(0)
    n, h, w = 40, 48, 56
    q = rng.random((n, h, w)).astype(np.float32) * 0.8
    q[1] = 0.5  # flat: no peak
    q[2] *= 0.2  # all under the threshold
    q[3, 0, 5] = q[3, 30, 40] = 2.0  # a tie: the first in raster order
    q[4, 0, 0] = 3.0  # in the corner (the border band counts)
    q[5, 10, 10] = np.nan
    ang = rng.uniform(-np.pi / 2, np.pi / 2, (n, h, w)).astype(np.float32)
    wid = rng.uniform(5, 40, (n, h, w)).astype(np.float32)
    gts = [
        GraspRectangles.from_grasps(rng.uniform(0, 48, (6, 2)), rng.uniform(-1.5, 1.5, 6),
                                    rng.uniform(10, 40, 6), rng.uniform(5, 20, 6))
        for _ in range(n)
    ]  # fmt: skip
    batched = evaluate_batch(q, ang, wid, gts)
    assert evaluate_batch(q[:0], ang[:0], wid[:0], []) == []
    for i in range(n):
        one = evaluate_image(q[i], ang[i], gts[i], wid[i])
        assert (one.success, one.best_iou) == (batched[i].success, batched[i].best_iou), i
        centres = [[tuple(map(float, g.center)) for g in r.grasps] for r in (one, batched[i])]
        assert centres[0] == centres[1], i
    assert batched[1].grasps == [] and batched[2].grasps == [] and batched[5].grasps
    assert tuple(batched[3].grasps[0].center) == (0, 5)
    assert tuple(batched[4].grasps[0].center) == (0, 0)
    assert sum(r.success for r in batched) > 0  # the comparison saw successes too


@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.0, 3.5])
def test_smoothing_at_a_pixel_equals_the_smoothed_map_there(sigma):
    """smooth_at reads the blurred map at one pixel per map, borders (reflected) and maps
    smaller than the kernel included."""
    from utils.post_process import smooth_at, smooth_maps

    rng = np.random.default_rng(1)
    for shape in [(6, 40, 52), (3, 7, 5)]:
        x = rng.normal(size=shape).astype(np.float32)
        full = smooth_maps(x, sigma)
        for r, c in [(0, 0), (shape[1] - 1, shape[2] - 1), (0, shape[2] - 1), (3, 2)]:
            pts = np.tile([r, c], (len(x), 1))
            np.testing.assert_allclose(smooth_at(x, pts, sigma), full[:, r, c], atol=2e-6)
        pts = np.stack([rng.integers(0, shape[1], len(x)), rng.integers(0, shape[2], len(x))], 1)
        np.testing.assert_allclose(
            smooth_at(x, pts, sigma), full[np.arange(len(x)), pts[:, 0], pts[:, 1]], atol=2e-6
        )


def test_raw_batch_evaluation_equals_decoding_whole_maps():
    """evaluate_raw_batch (the angle and opening decoded at the peak only) gives the results
    of post_process_output + evaluate_batch: grasps, IoUs and decisions; flat, sub-threshold
    and NaN maps included."""
    from utils.evaluation import evaluate_batch, evaluate_raw_batch
    from utils.post_process import decode_at

    rng = np.random.default_rng(2)
    n, size = 24, 64
    grasps = [
        [Grasp(tuple(rng.uniform(10, 54, 2)), rng.uniform(-1.5, 1.5), rng.uniform(12, 40), 10)]
        for _ in range(n)
    ]
    targets = [target_for(g, size) for g in grasps]
    raw = np.stack([y for _, y in targets]) + rng.normal(0, 0.1, (n, 4, size, size))
    raw = raw.astype(np.float32)
    raw[1] = 0.5  # flat
    raw[2, 0] *= 0.1  # under the threshold
    raw[3, 1, 5, 5] = np.nan
    gts = [gt for gt, _ in targets]
    whole = evaluate_batch(*post_process_output(*raw.transpose(1, 0, 2, 3)), gts)
    fast = evaluate_raw_batch(raw, gts)
    for a, b in zip(whole, fast, strict=True):
        assert a.success == b.success
        assert a.best_iou == pytest.approx(b.best_iou, abs=1e-5)
        assert len(a.grasps) == len(b.grasps)
        for ga, gb in zip(a.grasps, b.grasps, strict=True):
            assert tuple(ga.center) == tuple(gb.center)
            assert ga.angle == pytest.approx(gb.angle, abs=1e-5)
            assert ga.length == pytest.approx(gb.length, rel=1e-5)
    assert sum(r.success for r in fast) > n // 2  # the comparison saw successes
    # decode_at is post_process_output read at the points
    q, ang, wid = post_process_output(*raw.transpose(1, 0, 2, 3))
    pts = np.stack([rng.integers(0, size, n), rng.integers(0, size, n)], 1)
    a, w = decode_at(raw[:, 1], raw[:, 2], raw[:, 3], pts)
    i = np.arange(n)
    ok = np.isfinite(ang[i, pts[:, 0], pts[:, 1]])
    np.testing.assert_allclose(a[ok], ang[i, pts[:, 0], pts[:, 1]][ok], atol=1e-5)
    np.testing.assert_allclose(w[ok], wid[i, pts[:, 0], pts[:, 1]][ok], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        evaluate_raw_batch(raw[:, :3], gts)


def test_min_opening_raises_short_openings_on_both_paths():
    """--min-opening: a grasp whose opening collapsed to 0 (a thin part) is decoded at the
    floor instead, on the whole-map and the at-the-peak paths alike; longer ones stay."""
    from utils.evaluation import evaluate_batch, evaluate_raw_batch

    g = Grasp((32, 32), 0.3, 12, 6)
    gt, y = target_for([g], 64)
    y[3] = 0.0  # the width head read 0 everywhere
    (miss,) = evaluate_raw_batch(y[None], [gt])
    assert not miss.success and miss.outcome == "opening short"
    (hit,) = evaluate_raw_batch(y[None], [gt], min_opening=12.0)
    assert hit.success and hit.grasps[0].length == pytest.approx(12.0)
    maps = post_process_output(*y, min_opening=12.0)
    assert maps[2].min() == pytest.approx(12.0)
    (whole,) = evaluate_batch(*(m[None] for m in maps), [gt])
    assert whole.success and whole.best_iou == pytest.approx(hit.best_iou, abs=1e-5)
    y[3] = 40 / WIDTH_SCALE  # longer than the floor: unchanged
    assert post_process_output(*y, min_opening=12.0)[2].min() == pytest.approx(40.0, rel=1e-4)


def test_outcome_names_why_a_grasp_missed():
    from utils.evaluation import OUTCOMES, outcome

    true = Grasp((40, 40), 0.4, 30, 15)
    gt = GraspRectangles([true.as_gr])

    def why(g):
        return outcome(g, gt, g.max_iou(gt) if g is not None else 0.0)

    assert why(true) == "hit"  # a grasp equals itself
    assert why(None) == "no grasp"
    assert why(Grasp((5, 5), 0.4, 30, 15)) == "off the grasps"
    assert why(Grasp((40, 40), 0.4 + math.pi / 2, 30, 15)) == "angle"
    assert why(Grasp((40, 40), 0.4, 0.0, 0.0)) == "opening short"
    assert why(Grasp((40, 40), 0.4, 300, 150)) == "opening long"
    assert why(Grasp((40, 40), 0.4, 30, 400)) == "size"  # the jaw, not the opening
    assert outcome(true, GraspRectangles(), 0.0) == "off the grasps"
    assert set(OUTCOMES) >= {"hit", "no grasp", "off the grasps", "angle", "size"}
    # the rectangle metric's own results carry the outcome, and the counts add up
    res = EvaluationResults()
    for g in (true, None, Grasp((40, 40), 0.4, 0.0, 0.0)):
        res.add("x", evaluate_grasps([] if g is None else [g], gt))
    assert res.outcomes == ["hit", "no grasp", "opening short"]
    assert res.outcome_counts() == {"hit": 1, "no grasp": 1, "opening short": 1}
    assert res.merge(res).outcome_counts()["hit"] == 2


def test_a_network_that_finds_no_grasp_in_most_images_gets_a_hint():
    true = Grasp((40, 40), 0.4, 30, 15)
    gt = GraspRectangles([true.as_gr])
    res = EvaluationResults()
    assert res.no_grasp_hint() is None  # no images
    res.add("a", evaluate_grasps([true], gt))
    res.add("b", evaluate_grasps([], gt))
    hint = res.no_grasp_hint()  # half of the images: the hint
    assert hint is not None and hint.startswith("1 of 2 images have no quality peak")
    res.add("c", evaluate_grasps([true], gt))
    assert res.no_grasp_hint() is None  # a third: a network that works, with misses
