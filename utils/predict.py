"""From a camera's depth frame to grasps: the predict API a robot loop calls.

    from utils.image import load_depth_frame
    from utils.predict import GraspPredictor, CameraIntrinsics
    predictor = GraspPredictor.from_checkpoint("weights/ggcnn2_distilled.pt")
    depth = load_depth_frame("frame.png")                   # (H, W) metres, NaN = missing
    camera = CameraIntrinsics(fx=615.0, fy=615.0, cx=320.0, cy=240.0)
    grasps = predictor.predict(depth, intrinsics=camera)    # best first; [] if none passes
    best = grasps[0]
    print(best.center, best.angle, best.camera.position)    # pixels (row, col); rad; metres

Conventions: pixel coordinates are (row, col) of the *source frame* (the depth image given),
pixel centres at integers; grasp angles are radians, counter-clockwise on screen, in
[-pi/2, pi/2) (see :mod:`utils.grasp`). The camera frame is the usual optical one: x right
(along columns), y down (along rows), z along the optical axis, metres; the intrinsics
(fx, fy, cx, cy) are in pixels, with (cx, cy) the principal point as (col, row).

The preprocessing is the datasets' own (:class:`utils.data.base.GraspDataset`): missing depth
inpainted at full resolution, a square region (``crop``) shrunk with area averaging when it is
larger than the network input, resampled with a mirrored border, mean-subtracted and clipped;
the network's maps go through :func:`utils.post_process.post_process_output` and
:func:`utils.post_process.detect_grasps`, and the grasps are mapped back to the source frame.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from utils.depth import normalise_depth, trained_depth_norm
from utils.grasp import WIDTH_SCALE, Grasp, GraspRectangle
from utils.image import (
    IMAGE_BORDER,
    compose_affine,
    crop_transform,
    inpaint_depth,
    invalid_depth,
    invert_affine,
    normalise_rgb,
    resize_image,
    resize_transform,
    warp_image,
)
from utils.post_process import detect_grasps, post_process_output

#: ``crop`` choices besides a pixel box "x0,y0,x1,y1".
CROPS = ("center", "full")


# --- the camera -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels: focal lengths ``fx`` (columns), ``fy`` (rows) and the
    principal point ``(cx, cy)`` = (col, row) of the source frame."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"--intrinsics: fx and fy must be > 0, got {self.fx}, {self.fy}")
        if not all(math.isfinite(v) for v in (self.cx, self.cy)):
            raise ValueError(f"--intrinsics: cx and cy must be finite, got {self.cx}, {self.cy}")

    @classmethod
    def parse(cls, text: str) -> CameraIntrinsics:
        """``fx,fy,cx,cy``, or a JSON file with keys fx, fy, cx, cy (or ``K``: the 3 x 3
        camera matrix, as ROS camera_info and OpenCV calibration write it)."""
        path = Path(text)
        if path.suffix.lower() == ".json" or path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"--intrinsics {text}: not a readable JSON file ({e})") from None
            if isinstance(data, dict) and "K" in data:
                k = np.asarray(data["K"], dtype=np.float64).reshape(-1)
                if k.size != 9:
                    raise ValueError(f"--intrinsics {text}: K must hold 9 numbers, got {k.size}")
                return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]))
            try:
                return cls(*(float(data[k]) for k in ("fx", "fy", "cx", "cy")))
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"--intrinsics {text}: expected keys fx, fy, cx, cy (pixels) or K"
                ) from None
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(
                f"--intrinsics {text}: expected fx,fy,cx,cy in pixels or a JSON file"
            ) from None
        return cls(*values)

    def check_frame(self, shape: tuple[int, int]) -> None:
        rows, cols = shape
        if not (0 <= self.cx <= cols and 0 <= self.cy <= rows):
            raise ValueError(
                f"--intrinsics: principal point (cx, cy) = ({self.cx}, {self.cy}) lies outside "
                f"the {cols} x {rows} frame: intrinsics of another resolution?"
            )


@dataclass
class CameraGrasp:
    """A grasp in the camera frame (x right, y down, z along the optical axis; metres).

    ``position``: the point on the surface at the grasp centre. ``yaw``: the gripper's
    rotation about the optical axis, radians, right-handed in the camera frame (the opening
    direction is (cos yaw, sin yaw, 0)); it is minus the on-screen angle. ``opening``: the
    jaw distance. ``approach_depth``: the nearest surface inside the grasp rectangle (the
    depth at which the open gripper, coming along the optical axis, first meets something).
    """

    position: tuple[float, float, float]
    yaw: float
    opening: float
    approach_depth: float


@dataclass
class PredictedGrasp:
    """One grasp in the source frame: centre (row, col) and sizes in pixels, angle in radians
    (counter-clockwise on screen), quality in [0, 1] (the smoothed quality-map peak)."""

    center: tuple[float, float]
    angle: float
    opening: float
    jaw_size: float
    quality: float
    camera: CameraGrasp | None = None

    @property
    def rectangle(self) -> GraspRectangle:
        return Grasp(self.center, self.angle, self.opening, self.jaw_size).as_gr

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.camera is None:
            d.pop("camera")
        return d


def _camera_grasp(
    g: PredictedGrasp, depth: np.ndarray, filled: np.ndarray, k: CameraIntrinsics
) -> CameraGrasp:
    """``g`` in metres from the source depth (NaN = missing) and its inpainted copy."""
    rows, cols = depth.shape
    r, c = g.center
    rad = max(2, round(0.25 * g.jaw_size))
    r0, r1 = max(0, round(r) - rad), min(rows, round(r) + rad + 1)
    c0, c1 = max(0, round(c) - rad), min(cols, round(c) + rad + 1)
    window = depth[r0:r1, c0:c1]
    valid = window[np.isfinite(window)]
    ri, ci = min(max(round(r), 0), rows - 1), min(max(round(c), 0), cols - 1)
    z = float(np.median(valid)) if valid.size else float(filled[ri, ci])
    x, y = (c - k.cx) * z / k.fx, (r - k.cy) * z / k.fy
    a = g.angle
    opening = g.opening * z * math.hypot(math.cos(a) / k.fx, math.sin(a) / k.fy)
    rr, cc = g.rectangle.polygon_coords((rows, cols))
    inside = depth[rr, cc]
    inside = inside[np.isfinite(inside)]
    approach = float(inside.min()) if inside.size else z
    return CameraGrasp((float(x), float(y), z), float(-a), float(opening), approach)


# --- the region the network sees -------------------------------------------------------------
def parse_crop(text: str) -> str | tuple[int, int, int, int]:
    """``center``, ``full`` or a pixel box ``x0,y0,x1,y1`` (columns x, rows y; x1, y1
    exclusive)."""
    if text in CROPS:
        return text
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1] or min(box) < 0:
        raise ValueError(
            f"--crop {text}: expected center, full or x0,y0,x1,y1 with x0 < x1, y0 < y1"
        )
    return box  # type: ignore[return-value]


def crop_region(
    crop: str | Sequence[int], shape: tuple[int, int]
) -> tuple[tuple[float, float], float]:
    """(centre (row, col), side) in source pixels of the square the network sees: the largest
    centred square (``center``), the whole frame with a mirrored margin (``full``), or the
    square around a pixel box, which must lie inside the frame."""
    rows, cols = shape
    if crop == "center":
        return ((rows - 1) / 2.0, (cols - 1) / 2.0), float(min(rows, cols))
    if crop == "full":
        return ((rows - 1) / 2.0, (cols - 1) / 2.0), float(max(rows, cols))
    x0, y0, x1, y1 = crop
    if x1 > cols or y1 > rows:
        raise ValueError(f"--crop {x0},{y0},{x1},{y1}: outside the {cols} x {rows} frame")
    return ((y0 + y1 - 1) / 2.0, (x0 + x1 - 1) / 2.0), float(max(x1 - x0, y1 - y0))


def view_of(
    image: np.ndarray, center: tuple[float, float], side: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` x ``size`` view of ``image`` (depth or RGB, already hole-free) and its
    2 x 3 source-to-view (row, col) matrix; area-averaged first when shrinking, as the
    datasets do."""
    matrix = crop_transform(center, side, size)
    factor = size / side
    src = image
    m = matrix
    if factor < 1.0 - 1e-9:
        shape = (max(1, round(image.shape[0] * factor)), max(1, round(image.shape[1] * factor)))
        src = resize_image(image, shape)
        m = compose_affine(matrix, invert_affine(resize_transform(image.shape[:2], shape)))
    return warp_image(src, m, size, cv2.INTER_LINEAR, IMAGE_BORDER), matrix


# --- the predictor ------------------------------------------------------------------------------
@dataclass
class Timing:
    """Milliseconds of the last :meth:`GraspPredictor.predict` call, by stage."""

    preprocess: float = 0.0
    network: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.network + self.postprocess


@dataclass
class GraspPredictor:
    """A loaded network and its input settings; :meth:`predict` turns a depth frame into
    grasps.

    ``model``: a grasp network (eval mode is set here) or any callable from an N x C x S x S
    float32 tensor to N x 4 x S x S maps (:class:`utils.export.OnnxNetwork`, say).
    ``input_size``: S, pixels. ``crop``: see :func:`crop_region`. ``precision``: autocast
    settings (:func:`utils.precision.resolve_precision`; None: fp32). ``depth_norm``: the
    depth normalisation the network was trained with (:func:`utils.depth.normalise_depth`).
    """

    model: Any
    input_size: int
    input_channels: int = 1
    crop: str | tuple[int, int, int, int] = "center"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Any = None
    width_scale: float = WIDTH_SCALE
    depth_norm: str = "mean"
    #: Smallest opening a grasp is given, pixels of the network input (``eval_net --min-opening``).
    min_opening: float = 0.0
    timing: Timing = field(default_factory=Timing)
    #: View pixels inside the frame (and box), cached for one (frame shape, crop, size).
    _inside_key: tuple | None = field(default=None, init=False, repr=False)
    _inside_mask: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.model, nn.Module):
            self.model = self.model.to(self.device).eval()
            if self.precision is not None and self.precision.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
        if isinstance(self.crop, str):
            self.crop = parse_crop(self.crop)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        amp: str = "auto",
        channels_last: str = "on",
        crop: str = "center",
        input_size: int | None = None,
        weights: str = "auto",
    ) -> GraspPredictor:
        """A predictor for a checkpoint of this project (its training input size unless
        ``input_size``; ``amp`` / ``channels_last`` as the training flags, but channels_last
        on by default: in fp32 too it is 1.7-10x faster on the CPUs measured, same results).
        ``amp="auto"`` with channels_last on a CPU with bf16 instructions times bf16 against
        fp32 for this network at batch 1 and keeps the faster (about a second;
        :func:`utils.precision.choose_precision`)."""
        from utils.checkpoint import load_model
        from utils.distributed import resolve_device
        from utils.precision import choose_precision, resolve_precision

        dev = resolve_device(device)
        model, ckpt = load_model(path, weights=weights)
        trained = ckpt.get("args", {})
        size = int(input_size or trained.get("input_size", 224))
        precision = resolve_precision(amp, channels_last, dev)
        if amp == "auto" and precision.channels_last:
            shape = (1, model.input_channels, size, size)
            precision = choose_precision("auto", "auto", dev, model, shape, train=False)[0]
        return cls(
            model, size, model.input_channels, crop, dev, precision,
            depth_norm=trained_depth_norm(trained),
        )  # fmt: skip

    @classmethod
    def from_onnx(
        cls, path: str | Path, crop: str = "center", input_size: int | None = None,
        threads: int | None = None,
    ) -> GraspPredictor:  # fmt: skip
        """A predictor running an ONNX file (``export.py``) with onnxruntime instead of
        torch; the input size is the export's unless ``input_size`` (dynamic-size exports)."""
        from utils.export import OnnxNetwork

        net = OnnxNetwork(path, threads)
        size = input_size or net.input_size or 224
        if input_size and net.metadata.get("dynamic_size") == "False" and size != net.input_size:
            raise ValueError(
                f"--input-size {size}: {path} was exported for {net.input_size} px only"
            )
        return cls(net, int(size), net.input_channels, crop,
                   depth_norm=trained_depth_norm(net.metadata))  # fmt: skip

    # -- stages ------------------------------------------------------------------------------
    def prepare(
        self, depth: np.ndarray, rgb: np.ndarray | None = None
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """(input 1 x C x S x S, source-to-view matrix, inpainted source depth) of a frame."""
        depth = np.asarray(depth, dtype=np.float32)
        if depth.ndim != 2:
            raise ValueError(f"depth: expected an (H, W) array in metres, got shape {depth.shape}")
        filled = inpaint_depth(depth)  # NaN, inf and <= 0 are missing
        center, side = crop_region(self.crop, depth.shape)
        parts = []
        view, matrix = view_of(filled, center, side, self.input_size)
        if self.input_channels in (1, 4):
            parts.append(normalise_depth(view, self.depth_norm)[None])
        if self.input_channels in (3, 4):
            if rgb is None:
                raise ValueError("this network takes RGB too: pass rgb (H, W, 3 uint8)")
            rgb = np.asarray(rgb)
            if rgb.shape[:2] != depth.shape or rgb.ndim != 3 or rgb.dtype != np.uint8:
                raise ValueError(
                    f"rgb: expected uint8 {depth.shape[0]} x {depth.shape[1]} x 3 like the "
                    f"depth, got {rgb.dtype} {rgb.shape}"
                )
            parts.append(normalise_rgb(view_of(rgb, center, side, self.input_size)[0]))
        x = torch.from_numpy(np.concatenate(parts, axis=0)[None])
        return x, matrix, filled

    @torch.no_grad()
    def maps(self, x: torch.Tensor) -> np.ndarray:
        """Raw network maps (N x 4 x S x S float32 numpy) of an input batch."""
        if isinstance(self.model, nn.Module):
            from utils.precision import resolve_precision
            from utils.scoring import predict_maps

            p = self.precision or resolve_precision("off", "off", self.device)
            return predict_maps(self.model, x, p, self.device).cpu().numpy()
        return np.asarray(self.model(x))

    def _inside(self, shape: tuple[int, int], to_source: np.ndarray) -> np.ndarray:
        """S x S bool: view pixels whose centre falls inside the frame (and the crop box)."""
        key = (shape, self.crop, self.input_size)
        if self._inside_key != key:
            rows, cols = shape
            r0, c0, r1, c1 = -0.5, -0.5, rows - 0.5, cols - 0.5
            if not isinstance(self.crop, str):
                x0, y0, x1, y1 = self.crop
                r0, c0, r1, c1 = y0 - 0.5, x0 - 0.5, y1 - 0.5, x1 - 0.5
            g = np.stack(np.mgrid[0 : self.input_size, 0 : self.input_size], axis=-1)
            src = g @ to_source[:, :2].T + to_source[:, 2]
            self._inside_mask = (
                (src[..., 0] >= r0) & (src[..., 0] < r1) & (src[..., 1] >= c0) & (src[..., 1] < c1)
            )
            self._inside_key = key
        return self._inside_mask

    def predict(
        self,
        depth: np.ndarray,
        rgb: np.ndarray | None = None,
        intrinsics: CameraIntrinsics | None = None,
        n_grasps: int = 1,
    ) -> list[PredictedGrasp]:
        """The top ``n_grasps`` grasps of a depth frame (H x W metres; NaN, 0 or negative =
        missing), best first, in the frame's pixels; with ``intrinsics`` also in metres."""
        t0 = time.perf_counter()
        depth = np.asarray(depth, dtype=np.float32)
        x, matrix, filled = self.prepare(depth, rgb)
        if intrinsics is not None:
            intrinsics.check_frame(depth.shape)
        t1 = time.perf_counter()
        raw = self.maps(x)[0]
        t2 = time.perf_counter()
        q, ang, wid = post_process_output(
            raw[0], raw[1], raw[2], raw[3], self.width_scale, min_opening=self.min_opening
        )
        to_source = invert_affine(matrix)
        # Peaks on the mirrored margin (crop full, a box near the edge) or outside a box would
        # map to phantom grasps: only view pixels that show the frame (the box) may be picked.
        q = np.where(self._inside(depth.shape, to_source), q, np.float32(0))
        measured = None
        if intrinsics is not None:
            measured = np.where(invalid_depth(depth), np.float32(np.nan), depth)
        out = []
        for g in detect_grasps(q, ang, wid, n_grasps=n_grasps):
            rect = g.as_gr.affine(to_source)
            center = rect.center
            # A grasp of no opening has no edge to carry its angle: take it from a unit one.
            unit = rect if g.length > 0 else Grasp(g.center, g.angle, 1.0, 1.0).as_gr
            angle = unit.angle if unit is rect else unit.affine(to_source).angle
            pg = PredictedGrasp(
                (float(center[0]), float(center[1])), angle, rect.length, rect.width,
                float(g.quality),
            )  # fmt: skip
            if intrinsics is not None:
                pg.camera = _camera_grasp(pg, measured, filled, intrinsics)
            out.append(pg)
        t3 = time.perf_counter()
        self.timing = Timing(1000 * (t1 - t0), 1000 * (t2 - t1), 1000 * (t3 - t2))
        return out


# --- files ---------------------------------------------------------------------------------------
@dataclass
class DepthFrame:
    """A depth file to predict on, with its RGB partner if there is one; ``frame_id`` names
    its outputs."""

    depth: Path
    rgb: Path | None
    frame_id: str


def _is_16bit_png(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode in ("I;16", "I;16B", "I;16L", "I")
    except Exception:  # noqa: BLE001 -- not an image: not a depth frame either
        return False


def _rgb_partner(depth: Path) -> Path | None:
    stem = depth.stem
    names = [f"{stem}_RGB.png", f"{stem}_rgb.png", f"{stem}.png", f"{stem}.jpg"]
    if stem.endswith("d"):  # Cornell: pcd0100d.tiff beside pcd0100r.png
        names.insert(0, f"{stem[:-1]}r.png")
    for name in names:
        p = depth.with_name(name)
        if p != depth and p.is_file() and not _is_16bit_png(p):
            return p
    return None


def find_depth_frames(paths: Sequence[str | Path], depth_type: str = "perfect") -> list[DepthFrame]:
    """Depth frames in files and folders: a folder in the Jacquard layout
    (``<object>/<view>_<object>_<depth_type>_depth.tiff``) gives those; any other folder its
    ``.tif(f)``, ``.npy``, ``.exr`` files and 16-bit ``.png`` files (8-bit PNGs are colour)."""
    from utils.image import DEPTH_FRAME_SUFFIXES

    frames: list[DepthFrame] = []
    for item in paths:
        p = Path(item)
        if p.is_file():
            frames.append(DepthFrame(p, _rgb_partner(p), p.stem))
        elif p.is_dir():
            suffix = f"_{depth_type}_depth.tiff"
            found = [
                DepthFrame(
                    d, d.with_name(d.name[: -len(suffix)] + "_RGB.png"), d.name[: -len(suffix)]
                )
                # A Jacquard root (object folders) or one object folder.
                for d in sorted(p.glob(f"*/*{suffix}")) or sorted(p.glob(f"*{suffix}"))
            ]
            if not found:
                found = [
                    DepthFrame(f, _rgb_partner(f), f.stem)
                    for f in sorted(p.iterdir())
                    if f.is_file()
                    and f.suffix.lower() in DEPTH_FRAME_SUFFIXES
                    and (f.suffix.lower() != ".png" or _is_16bit_png(f))
                ]
            if not found:
                raise ValueError(
                    f"{p}: no depth frames found (expected */*{suffix}, or .tiff, .npy, .exr "
                    "or 16-bit .png files)"
                )
            frames += found
        else:
            raise ValueError(f"--images {p}: no such file or folder")
    seen: dict[str, int] = {}
    for f in frames:
        if f.rgb is not None and not f.rgb.is_file():
            f.rgb = None
        # Outputs are named by frame id: f.tiff and f.npy, or two folders with the same file
        # names, must not overwrite each other's.
        n = seen.get(f.frame_id, 0)
        seen[f.frame_id] = n + 1
        if n:
            f.frame_id = f"{f.frame_id}_{f.depth.suffix.lstrip('.')}{n if n > 1 else ''}"
    return frames
