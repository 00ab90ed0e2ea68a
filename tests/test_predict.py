"""The predict API (utils/predict.py), depth frame formats and eval_net.py --images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import NearIsGood, one_line_error, run_script

from models import get_network
from utils.grasp import Grasp, GraspRectangles, encode_grasp_maps
from utils.image import crop_transform, load_depth_frame
from utils.predict import (
    CameraIntrinsics,
    GraspPredictor,
    crop_region,
    find_depth_frames,
    parse_crop,
)

ROWS, COLS, S = 480, 640, 96
CAMERA = CameraIntrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5)


def table_with_box(z_table: float = 0.700, z_box: float = 0.650) -> np.ndarray:
    """A 480 x 640 frame (metres): a table at ``z_table`` and a box top nearer the camera,
    at millimetre-exact depths (so a 16-bit PNG holds it losslessly)."""
    d = np.full((ROWS, COLS), z_table, np.float32)
    d[200:260, 280:400] = z_box
    return d


class MapsOf:
    """An oracle 'network': the target maps of one source-frame grasp, seen through the view
    that the predictor shows it (computed here independently of utils.predict)."""

    def __init__(self, grasp: Grasp, crop, size: int = S) -> None:
        center, side = crop_region(crop, (ROWS, COLS))
        m = crop_transform(center, side, size)
        rect = GraspRectangles([grasp.as_gr]).affine(m)
        self.maps = encode_grasp_maps(*rect.draw((size, size)))

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return self.maps[None].repeat(len(x), axis=0)


def test_min_opening_floors_a_collapsed_opening():
    """A network whose opening map reads 0 (a thin part) gives a grasp of no opening; with
    ``min_opening`` (network-input pixels) the same grasp opens that far, in source pixels."""
    truth = Grasp((229.5, 339.5), 0.3, 40.0, 20.0)
    oracle = MapsOf(truth, "center")
    oracle.maps[3] = 0.0
    depth = table_with_box()
    (closed,) = GraspPredictor(oracle, S).predict(depth)
    (opened,) = GraspPredictor(oracle, S, min_opening=10.0).predict(depth)
    _, side = crop_region("center", (ROWS, COLS))
    assert closed.opening == 0.0
    assert opened.opening == pytest.approx(10.0 * side / S, rel=1e-4)
    assert np.allclose(opened.center, closed.center)
    # a grasp of no opening keeps its angle in the source frame (no edge to read it from)
    assert closed.angle == pytest.approx(0.3, abs=0.02)
    assert opened.angle == pytest.approx(closed.angle, abs=1e-6)


@pytest.mark.parametrize("crop", ["center", "full", "200,100,500,400"])
def test_a_known_grasp_comes_back_at_its_pose_in_metres(crop):
    depth = table_with_box()
    # The gripper at the box top's centre, 3-D point (X, Y, Z), opening 0.06 m, yaw 30 deg.
    row, col, z = 229.5, 339.5, 0.650
    angle = math.radians(-30.0)  # on screen; the camera-frame yaw is +30 deg
    opening_px = 0.06 * CAMERA.fx / z
    truth = Grasp((row, col), angle, opening_px, opening_px / 2)
    predictor = GraspPredictor(MapsOf(truth, parse_crop(crop)), S, crop=crop)
    (g,) = predictor.predict(depth, intrinsics=CAMERA)
    _, side = crop_region(parse_crop(crop), (ROWS, COLS))
    view_px = side / S  # one network pixel, in source pixels
    assert abs(g.center[0] - row) <= view_px and abs(g.center[1] - col) <= view_px
    assert abs(g.angle - angle) < math.radians(2)
    assert abs(g.opening - opening_px) <= 2 * view_px
    footprint = z / CAMERA.fx * view_px  # metres covered by one network pixel
    x, y, zz = g.camera.position
    assert abs(x - (col - CAMERA.cx) * z / CAMERA.fx) <= footprint
    assert abs(y - (row - CAMERA.cy) * z / CAMERA.fy) <= footprint
    assert zz == pytest.approx(z, abs=1e-6)
    assert g.camera.yaw == pytest.approx(-angle, abs=math.radians(2))
    assert abs(g.camera.opening - 0.06) <= 2 * footprint
    assert g.camera.approach_depth == pytest.approx(z, abs=1e-6)  # nothing nearer in the jaws
    assert set(vars(predictor.timing)) == {"preprocess", "network", "postprocess"}


def write_formats(depth: np.ndarray, folder) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    import tifffile

    tifffile.imwrite(folder / "f_tiff.tiff", depth)
    cv2.imwrite(str(folder / "f_png.png"), np.round(depth * 1000).astype(np.uint16))
    np.save(folder / "f_npy.npy", depth)
    tifffile.imwrite(folder / "f_mm.tiff", np.round(depth * 1000).astype(np.uint16))
    try:
        import OpenEXR

        channels = {"Z": depth}
        with OpenEXR.File({"type": OpenEXR.scanlineimage}, channels) as f:
            f.write(str(folder / "f_exr.exr"))
    except ImportError:
        pass
    return sorted(folder.iterdir())


def test_no_phantom_grasps_on_the_mirrored_margin_or_outside_the_box():
    depth = table_with_box()
    margin = Grasp((-60.0, 320.0), 0.0, 40.0, 20.0)  # above the frame: mirrored content
    assert GraspPredictor(MapsOf(margin, "full"), S, crop="full").predict(depth) == []
    outside = Grasp((240.0, 150.0), 0.0, 30.0, 15.0)  # in the frame, left of the box
    box = (200, 100, 500, 400)
    assert GraspPredictor(MapsOf(outside, box), S, crop="200,100,500,400").predict(depth) == []
    inside = Grasp((240.0, 350.0), 0.0, 30.0, 15.0)
    assert len(GraspPredictor(MapsOf(inside, box), S, crop="200,100,500,400").predict(depth)) == 1


def test_depth_in_the_wrong_unit_and_exr_channels(tmp_path):
    f = tmp_path / "mm.npy"
    np.save(f, table_with_box() * 1000)  # float millimetres
    with pytest.raises(ValueError, match="another unit.*--depth-scale"):
        load_depth_frame(f)
    assert load_depth_frame(f, depth_scale=0.001)[0, 0] == pytest.approx(0.7)
    openexr = pytest.importorskip("OpenEXR", reason="optional: requirements-deploy.txt")
    exr = tmp_path / "blender.exr"
    alpha = np.ones((ROWS, COLS), np.float32)
    channels = {"ViewLayer.Combined.A": alpha, "ViewLayer.Depth.Z": table_with_box()}
    with openexr.File({"type": openexr.scanlineimage}, channels) as out:
        out.write(str(exr))
    assert load_depth_frame(exr)[0, 0] == pytest.approx(0.7)  # the Z channel, not alpha


def test_every_depth_format_gives_the_same_grasps(tmp_path):
    depth = table_with_box()
    depth[10:20, 30:40] = np.nan  # missing pixels, written as 0 in the integer formats
    files = write_formats(np.nan_to_num(depth, nan=0.0), tmp_path / "frames")
    predictor = GraspPredictor(NearIsGood(), S)
    results = {}
    for f in files:
        d = load_depth_frame(f)
        assert np.isnan(d[15, 35]) and d[0, 0] == pytest.approx(0.7, abs=1e-6)
        results[f.name] = predictor.predict(d, intrinsics=CAMERA, n_grasps=3)
    first = next(iter(results.values()))
    assert first, "the stand-in network found no grasp"
    for name, grasps in results.items():
        assert len(grasps) == len(first), name
        for a, b in zip(grasps, first, strict=True):
            assert np.allclose(a.center, b.center, atol=1e-3), name
            assert np.allclose(a.camera.position, b.camera.position, atol=1e-5), name
    # A stated scale: the same PNG read as tenths of a millimetre is 10x nearer.
    png = tmp_path / "frames" / "f_png.png"
    assert load_depth_frame(png, depth_scale=1e-4)[0, 0] == pytest.approx(0.07, abs=1e-6)


def test_frames_are_found_by_content_and_intrinsics_parse(tmp_path):
    depth = table_with_box()
    folder = tmp_path / "mixed"
    write_formats(depth, folder)
    cv2.imwrite(str(folder / "photo.png"), np.zeros((8, 8, 3), np.uint8))  # colour: not depth
    names = {f.depth.name for f in find_depth_frames([folder])}
    assert "photo.png" not in names and {"f_png.png", "f_npy.npy", "f_tiff.tiff"} <= names
    k = tmp_path / "camera.json"
    k.write_text(json.dumps({"K": [600, 0, 319.5, 0, 601, 239.5, 0, 0, 1]}))
    assert CameraIntrinsics.parse(str(k)) == CameraIntrinsics(600, 601, 319.5, 239.5)
    assert CameraIntrinsics.parse("600,600,319.5,239.5") == CAMERA
    with pytest.raises(ValueError, match="expected fx,fy,cx,cy"):
        CameraIntrinsics.parse("600,600")
    with pytest.raises(ValueError, match="outside the 640 x 480 frame"):
        GraspPredictor(NearIsGood(), S).predict(
            depth, intrinsics=CameraIntrinsics(600, 600, 900, 240)
        )


def test_a_real_jacquard_view_gives_the_same_grasps_as_the_dataset_path(shared_data):
    """The predictor's preprocessing is the datasets' own: same input tensor for a real view."""
    from utils.data import JacquardDataset

    ds = JacquardDataset(shared_data / "jacquard_samples", output_size=S)
    depth = load_depth_frame(ds.samples[0].depth)
    x, matrix, _ = GraspPredictor(get_network("ggcnn2"), S).prepare(depth)
    assert torch.allclose(x[0], ds[0]["x"], atol=1e-5)
    assert np.allclose(matrix, ds.warp_matrix(0), atol=1e-9)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from utils.checkpoint import make_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "net.pt"
    torch.save(make_checkpoint(get_network("ggcnn2"), epoch=0, args={"input_size": S}), path)
    return path


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        ("rgb8", [], "a 3-channel image is not depth"),
        ("gray8", [], "an 8-bit image is not depth"),
        ("zeros", [], "every depth pixel is missing"),
        ("ok", ["--intrinsics", "600,600"], "--intrinsics 600,600: expected fx,fy,cx,cy"),
        ("ok", ["--intrinsics", "600,600,900,240"], "lies outside the 640 x 480 frame"),
        ("ok", ["--crop", "5,5,2,2"], "--crop 5,5,2,2: expected center, full or x0,y0,x1,y1"),
        ("ok", ["--crop", "0,0,700,100"], "outside the 640 x 480 frame"),
        ("ok", ["--depth-scale", "0"], "--depth-scale must be > 0"),
    ],
)
def test_bad_frames_and_flags_are_one_line_errors(ckpt, tmp_path, make, flags, message):
    f = tmp_path / "frame.png"
    if make in ("rgb8", "gray8"):
        cv2.imwrite(str(f), np.zeros((ROWS, COLS, 3) if make == "rgb8" else (ROWS, COLS), np.uint8))
    else:
        d = np.zeros((ROWS, COLS)) if make == "zeros" else table_with_box() * 1000
        cv2.imwrite(str(f), d.astype(np.uint16))
    res = run_script(
        "eval_net.py", "--network", str(ckpt), "--images", str(f), "--outdir",
        str(tmp_path / "out"), "--device", "cpu", "--amp", "off", *flags, timeout=120,
    )  # fmt: skip
    one_line_error(res, message)


SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "ggcnn2_distilled.pt"


def test_eval_net_images_writes_pixels_and_metres(tmp_path):
    frames = tmp_path / "frames"
    write_formats(table_with_box(), frames)
    res = run_script(
        "eval_net.py", "--network", str(SHIPPED), "--images", str(frames / "f_png.png"),
        "--outdir", str(tmp_path / "out"), "--intrinsics", "600,600,319.5,239.5", "--vis",
        "--device", "cpu", "--amp", "off", "--n-grasps", "2", "--crop", "full", timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "f_png_grasps.json").read_text())
    assert record["frame"] == [ROWS, COLS] and record["crop"] == "full"
    lines = (tmp_path / "out" / "f_png_grasps.txt").read_text().split()
    assert 1 <= len(lines) == len(record["grasps"]) <= 2  # the trained network finds the box
    for g in record["grasps"]:
        assert set(g["camera"]) == {"position", "yaw", "opening", "approach_depth"}
    assert (tmp_path / "out" / "f_png.png").is_file()


def test_frame_flags_need_images(ckpt):
    one_line_error(
        run_script("eval_net.py", "--network", str(ckpt), "--intrinsics", "600,600,320,240"),
        "--intrinsics: only with --images",
    )
