"""Domain-gap statistics: known values on generated scenes, the report on real and synthetic
folders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import one_line_error, run_script
from utils.data.synthetic import Camera, generate_dataset, render_scene
from utils.data.synthetic_render import PlacedObject, Shape, focal_length
from utils.domain_gap import (
    GRASP_STATS,
    VIEW_STATS,
    fit_table,
    folder_statistics,
    ks_distance,
    mask_chords,
    thin_share,
    view_statistics,
)
from utils.grasp import GraspRectangles

SIZE = 200


def _rects(grasps):
    """Rectangles of (centre (row, col), angle, opening, jaw) tuples."""
    c, a, o, j = zip(*grasps, strict=True)
    return GraspRectangles.from_grasps(np.array(c), np.array(a), np.array(o), np.array(j))


TILT = math.radians(8)


def _box_scene(boxes, distance=1.2, tilt=TILT, tilt_dir=0.7):
    """Boxes (a, b, h, (row, col), yaw) in metres/pixels/radians under a tilted table."""
    f = focal_length(SIZE)
    camera = Camera((SIZE, SIZE), f, distance=distance, tilt=tilt, tilt_dir=tilt_dir)
    table = camera.table_depth()
    placed = []
    for a, b, h, centre, yaw in boxes:
        z = float(table[int(centre[0]), int(centre[1])]) - h
        placed.append(
            PlacedObject(
                Shape("box", {"a": a, "b": b, "h": h}, (0.5, 0.5, 0.5)), centre, yaw, f / z
            )
        )
    return render_scene(placed, camera, np.random.default_rng(0)), placed


def test_table_plane_distance_and_tilt_are_recovered():
    for distance, tilt in ((0.7, 0.0), (1.2, math.radians(8)), (1.5, math.radians(12))):
        scene, _ = _box_scene([(0.1, 0.05, 0.04, (100.0, 100.0), 0.3)], distance, tilt)
        plane = fit_table(scene.depth, ~scene.mask)
        assert plane.distance == pytest.approx(distance, rel=1e-4)
        assert math.degrees(plane.tilt) == pytest.approx(math.degrees(tilt), abs=0.05)


def test_a_known_box_gives_its_size_height_and_fill():
    a, b, h, yaw = 0.16, 0.06, 0.05, math.radians(25)
    scene, (obj,) = _box_scene([(a, b, h, (90.0, 110.0), yaw)])
    s = view_statistics(scene.depth, scene.mask, scene.stereo_depth)
    v = s.view
    assert v["distance"] == [pytest.approx(1.2, rel=1e-4)]
    assert v["tilt"] == [pytest.approx(8.0, abs=0.05)]
    assert v["n_objects"] == [1.0]
    assert v["mask_area"] == [pytest.approx(100 * scene.mask.mean())]
    # Extents: the footprint at the object's own scale, within a pixel (and a bit for the
    # tilted table under it).
    px = obj.px_per_m
    assert v["length"][0] * SIZE / 100 == pytest.approx(a * px, abs=1.5)
    assert v["width"][0] * SIZE / 100 == pytest.approx(b * px, abs=1.5)
    assert v["height"][0] == pytest.approx(1000 * h, abs=1.0)
    # A rotated rectangle's pixels fill its pixel-edge extents a little less than 100%.
    assert 90.0 <= v["fill"][0] <= 100.0
    # A 6 cm wide box has no part thinner than 2 cm (the opening only rounds its corners).
    assert v["thin_share"][0] < 3.0
    assert 0 < v["holes"][0] < 100 and 0 < v["noise"][0] < 10
    assert s.grasp == {}


def test_thin_share_of_a_frame_and_a_plate():
    frame = np.zeros((120, 120), bool)
    frame[10:110, 10:18] = frame[10:110, 100:108] = frame[50:56, 10:108] = True  # 8 px rails
    plate = np.zeros((120, 120), bool)
    plate[20:100, 30:90] = True
    assert thin_share(frame, 10) == 100.0
    assert thin_share(frame, 5) < 5.0
    assert 20.0 < thin_share(frame, 7) < 30.0  # the 6 px rung only
    assert thin_share(plate, 10) < 4.0  # its four rounded corners
    assert thin_share(np.zeros((5, 5), bool), 3) == 0.0


def test_grasp_statistics_of_known_grasps():
    a, b, h, yaw = 0.20, 0.05, 0.04, math.radians(30)
    centre = (100.0, 100.0)
    scene, (obj,) = _box_scene([(a, b, h, centre, yaw)], tilt=0.0)
    px = obj.px_per_m
    major = np.array([-math.sin(yaw), math.cos(yaw)])  # the box's u axis on screen
    across = yaw + math.pi / 2
    along_end = np.array(centre) + major * (0.8 * a / 2) * px
    grasps = _rects(
        [
            (centre, across, 0.07 * px, 0.02 * px),  # at the centroid, across
            (tuple(along_end), across, 0.07 * px, 0.02 * px),  # near an end, across
            (centre, yaw, 0.07 * px, 0.02 * px),  # along the long axis
        ]
    )
    g = view_statistics(scene.depth, scene.mask, None, grasps).grasp
    mm_per_px = 1000 * 1.2 / focal_length(SIZE)  # the table's depth under an untilted box
    assert g["opening"] == pytest.approx(0.07 * px * mm_per_px * np.ones(3), rel=1e-6)
    assert g["jaw"] == pytest.approx(0.02 * px * mm_per_px * np.ones(3), rel=1e-6)
    assert g["angle"] == pytest.approx([90.0, 90.0, 0.0], abs=1.5)
    assert g["to_centroid"][0] == pytest.approx(0.0, abs=0.03)
    assert g["along_axis"][1] == pytest.approx(0.8, abs=0.03)
    assert g["to_centroid"][1] == pytest.approx(0.8, abs=0.03)
    assert list(g["on_mask"]) == [100.0, 100.0, 100.0]
    # At the centroid the part is the box's 5 cm width (within the distance transform's
    # rounding and a pixel), in millimetres at the table's scale.
    assert g["thickness"][0] == pytest.approx(50.0 * px * mm_per_px / 1000, abs=2 * mm_per_px)
    # Opening over the chord along the opening: 7 cm over the 5 cm width (across), over the
    # 20 cm length (along), within a pixel of the chord.
    chords = np.array([b, b, a]) * px
    ratio = 0.07 * px / chords
    assert g["opening_chord"] == pytest.approx(ratio, rel=1.5 / chords.min())


def test_two_objects_own_their_grasps_and_jaw_rows_are_counted():
    scene, objs = _box_scene(
        [(0.08, 0.04, 0.03, (60.0, 60.0), 0.0), (0.10, 0.03, 0.05, (140.0, 140.0), 1.0)], tilt=0.0
    )
    px = objs[0].px_per_m
    # Two grasps on the first box (the second with three jaw sizes), one just off the second.
    grasps = _rects(
        [
            ((60.0, 60.0), math.pi / 2, 0.06 * px, 0.01 * px),
            ((60.0, 62.0), math.pi / 2, 0.06 * px, 0.01 * px),
            ((60.0, 62.0), math.pi / 2, 0.06 * px, 0.02 * px),
            ((60.0, 62.0), math.pi / 2, 0.06 * px, 0.03 * px),
            ((140.0, 140.0 + 0.03 * px), 0.0, 0.06 * px, 0.01 * px),
        ]
    )
    s = view_statistics(scene.depth, scene.mask, None, grasps)
    assert s.view["n_objects"] == [2.0]
    # Objects are numbered by decreasing area: the 10 x 3 cm box (30 cm^2) is smaller than
    # the 8 x 4 cm one (32 cm^2).
    assert s.view["grasps"] == [2.0, 1.0]
    assert sorted(s.view["jaws"]) == [1.0, 1.0, 3.0]
    assert s.grasp["on_mask"][-1] == 0.0 and s.grasp["thickness"][-1] == 0.0
    # The off-mask grasp is measured against the second box (its centroid is ~0.6 of its
    # half length away, not ~1.4 m of the first box).
    assert s.grasp["to_centroid"][-1] < 1.0


def test_mask_chords_of_a_bar():
    mask = np.zeros((40, 60), bool)
    mask[10:14, 5:35] = True  # a bar: 30 px along the columns, 4 px along the rows
    centres = np.array([[12.0, 20.0], [12.0, 20.0], [30.0, 30.0], [11.0, 5.0]])
    dirs = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert list(mask_chords(mask, centres, dirs)) == [30.0, 4.0, 0.0, 30.0]


def test_ks_distance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    assert ks_distance(x, x) == 0.0
    assert ks_distance(x, x + 100) == 1.0
    y = rng.normal(0.5, 1, 400)
    assert ks_distance(x, y) == pytest.approx(ks_distance(y, x))
    assert 0.1 < ks_distance(x, y) < 0.35
    assert math.isnan(ks_distance(x, []))


def test_folder_statistics_of_a_generated_set(tmp_path):
    root = generate_dataset(tmp_path / "syn", "jacquard", n_scenes=6, seed=5, size=96, views=3)
    stats = folder_statistics(root)
    assert stats.views == 6 and stats.labelled == 6
    for key, _, _ in VIEW_STATS + GRASP_STATS:
        assert len(stats.array(key)) > 0, key
    assert np.all(stats.array("n_objects") >= 1)
    assert folder_statistics(root, max_views=2).views == 2


def test_report_on_real_and_synthetic_folders(shared_data, tmp_path):
    syn = generate_dataset(tmp_path / "syn", "jacquard", n_scenes=4, seed=5, size=96, views=2)
    res = run_script(
        "benchmarks/domain_gap.py",
        str(shared_data / "jacquard_samples"),
        str(shared_data / "jacquard_unlabelled"),
        str(syn),
        "--max-views", "6",
        "--json", str(tmp_path / "gap.json"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line for line in res.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(VIEW_STATS) + len(GRASP_STATS)
    # Real Jacquard: one camera pose (1.5 m, 10 degrees) for every view.
    assert "| table distance | m | 1.50 [1.50, 1.50]" in res.stdout
    assert "| table tilt | deg | 10.00 [10.00, 10.00]" in res.stdout
    import json

    data = json.loads((tmp_path / "gap.json").read_text())
    assert data["opening"]["jacquard_unlabelled"]["n"] == 0  # no grasp files there
    assert 0.0 <= data["distance"][syn.name]["ks_to_reference"] <= 1.0


def test_report_names_a_missing_folder(tmp_path):
    one_line_error(
        run_script("benchmarks/domain_gap.py", str(tmp_path / "nope")), "folder not found"
    )
    (tmp_path / "empty").mkdir()
    one_line_error(
        run_script("benchmarks/domain_gap.py", str(tmp_path / "empty")), "no Jacquard views found"
    )


def test_label_agreement_recovers_the_generators_geometry_and_labels():
    """benchmarks/label_agreement.py: a generated scene's depth and mask give back its height
    field and scale, the labeller then gives back its labels, and labels match themselves."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import label_agreement as la

    scene, placed = _box_scene(
        [(0.12, 0.04, 0.05, (80.0, 90.0), 0.4), (0.06, 0.06, 0.03, (140.0, 130.0), 1.0)]
    )
    heights, labels, scale = la.real_geometry(scene.depth, scene.mask)
    on = scene.mask
    assert np.abs(heights[on] - scene.heights[on]).max() < 2e-3
    ours = la.synthetic_labels.find_grasps(heights, labels, scale).rectangles("all")
    truth = scene.grasp_labels.rectangles("all")
    assert len(ours) > 10
    # Objects come back in another order (by area), so compare the rectangles themselves.
    assert la.matched(truth, ours).mean() > 0.95 and la.matched(ours, truth).mean() > 0.95
    assert la.matched(truth, truth).all()
    agreement = la.view_agreement(scene.depth, scene.mask, truth)
    for counts in agreement.values():
        assert counts["real_matched"] / counts["real"] > 0.95
