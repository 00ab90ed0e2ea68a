"""Drawing helpers (OpenCV/numpy only): depth to colour, grasp rectangles, image grids, PNGs.

Images are uint8 (H, W, 3) in RGB order; coordinates are (row, col) pixels with pixel centres
at integer coordinates (the :mod:`utils.grasp` convention). Grasp rectangles are drawn with
their two jaw edges (p1 -> p2 and p3 -> p0, across the opening) in ``jaw_color`` and the two
opening edges (p0 -> p1 and p2 -> p3, along the closing direction) in ``color``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from utils.atomic import atomic_open
from utils.grasp import Grasp, GraspRectangles

#: Default colours (RGB): opening edges green, jaw edges red, grasp centres yellow.
OPENING_COLOR = (40, 220, 40)
JAW_COLOR = (230, 30, 30)
CENTER_COLOR = (255, 220, 0)
_SHIFT = 4  # sub-pixel bits for cv2 drawing: coordinates are multiplied by 2**4


def depth_to_rgb(
    depth: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    colormap: int | None = None,
    invalid_color: Sequence[int] = (0, 0, 0),
    invalid_below: float | None = 0.0,
) -> np.ndarray:
    """Depth (H, W) to uint8 RGB: near = bright (grey) or a cv2 colormap (e.g. cv2.COLORMAP_JET).

    Invalid pixels (non-finite, and <= ``invalid_below``: the -1 of Jacquard stereo, Cornell's
    0) get ``invalid_color``; pass ``invalid_below=None`` for depth that may be negative (e.g.
    the network's mean-subtracted input). The range defaults to the 1st-99th percentile of the
    valid pixels, so a few outliers do not flatten the picture.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim == 3 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise ValueError(f"depth_to_rgb: expected a 2-D depth image, got shape {d.shape}")
    valid = np.isfinite(d)
    if invalid_below is not None:
        valid &= d > invalid_below
    if valid.any():
        lo, hi = np.percentile(d[valid], [1, 99])
    else:
        lo, hi = 0.0, 1.0
    lo = lo if vmin is None else vmin
    hi = hi if vmax is None else vmax
    t = np.clip((hi - np.where(valid, d, hi)) / max(hi - lo, 1e-9), 0, 1)
    grey = (t * 255 + 0.5).astype(np.uint8)
    if colormap is None:
        out = np.repeat(grey[..., None], 3, axis=2)
    else:
        out = cv2.cvtColor(cv2.applyColorMap(grey, colormap), cv2.COLOR_BGR2RGB)
    out[~valid] = invalid_color
    return out


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {img.dtype} (use depth_to_rgb first)")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    return np.ascontiguousarray(img).copy()


def _fixed(points_rc: np.ndarray) -> np.ndarray:
    """(row, col) float points -> cv2 (x, y) int32 with _SHIFT fractional bits."""
    return np.round(points_rc[..., ::-1] * (1 << _SHIFT)).astype(np.int32)


def gray_map(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A map (H, W) as uint8 RGB gray levels, ``lo`` black and ``hi`` white (clipped)."""
    g = np.clip((np.asarray(values, dtype=np.float32) - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=-1)


def draw_grasp_rectangles(
    image: np.ndarray,
    rects: GraspRectangles | np.ndarray,
    color: Sequence[int] = OPENING_COLOR,
    thickness: int = 1,
    jaw_color: Sequence[int] | None = JAW_COLOR,
    center_color: Sequence[int] | None = None,
) -> np.ndarray:
    """A copy of ``image`` (uint8 RGB or grey) with grasp rectangles drawn on it.

    ``rects``: :class:`GraspRectangles` or an (N, 4, 2) (row, col) corner array. The opening
    edges (p0 -> p1, p2 -> p3) are drawn in ``color`` and the jaw edges (p1 -> p2, p3 -> p0)
    in ``jaw_color`` (``None``: same as ``color``); ``center_color`` adds a dot at each centre.
    Anti-aliased, sub-pixel accurate lines.
    """
    out = _as_rgb(image)
    pts = (
        rects.points if isinstance(rects, GraspRectangles) else np.asarray(rects, dtype=np.float64)
    )
    pts = pts.reshape(-1, 4, 2)
    if len(pts) == 0:
        return out
    jaw = tuple(int(v) for v in (jaw_color if jaw_color is not None else color))
    col = tuple(int(v) for v in color)
    fp = _fixed(pts)
    for p in fp:
        cv2.line(out, tuple(p[0]), tuple(p[1]), col, thickness, cv2.LINE_AA, _SHIFT)
        cv2.line(out, tuple(p[2]), tuple(p[3]), col, thickness, cv2.LINE_AA, _SHIFT)
    # Jaws last so they stay visible where edges meet.
    for p in fp:
        cv2.line(out, tuple(p[1]), tuple(p[2]), jaw, thickness + 1, cv2.LINE_AA, _SHIFT)
        cv2.line(out, tuple(p[3]), tuple(p[0]), jaw, thickness + 1, cv2.LINE_AA, _SHIFT)
    if center_color is not None:
        cc = tuple(int(v) for v in center_color)
        for c in _fixed(pts.mean(axis=1)):
            cv2.circle(out, tuple(c), (thickness + 1) << _SHIFT, cc, -1, cv2.LINE_AA, _SHIFT)
    return out


def draw_grasps(
    image: np.ndarray,
    grasps: Sequence[Grasp],
    color: Sequence[int] = OPENING_COLOR,
    thickness: int = 1,
    jaw_color: Sequence[int] | None = JAW_COLOR,
    center_color: Sequence[int] | None = CENTER_COLOR,
) -> np.ndarray:
    """Like :func:`draw_grasp_rectangles` for a list of :class:`Grasp` (e.g. detections)."""
    rects = GraspRectangles([g.as_gr for g in grasps])
    return draw_grasp_rectangles(image, rects, color, thickness, jaw_color, center_color)


def image_grid(
    images: Sequence[np.ndarray], ncols: int, pad: int = 4, pad_value: int = 255
) -> np.ndarray:
    """Tile uint8 images (grey or RGB, any sizes) row by row into one RGB image.

    Each cell is as large as the largest image; smaller ones are centred. Missing cells of the
    last row stay ``pad_value``.
    """
    if not images:
        raise ValueError("image_grid: no images")
    if ncols < 1:
        raise ValueError(f"image_grid: ncols must be >= 1, got {ncols}")
    imgs = [_as_rgb(im) for im in images]
    ch = max(im.shape[0] for im in imgs)
    cw = max(im.shape[1] for im in imgs)
    ncols = min(ncols, len(imgs))
    nrows = -(-len(imgs) // ncols)
    grid = np.full(
        (nrows * ch + (nrows + 1) * pad, ncols * cw + (ncols + 1) * pad, 3), pad_value, np.uint8
    )
    for i, im in enumerate(imgs):
        r, c = divmod(i, ncols)
        y = pad + r * (ch + pad) + (ch - im.shape[0]) // 2
        x = pad + c * (cw + pad) + (cw - im.shape[1]) // 2
        grid[y : y + im.shape[0], x : x + im.shape[1]] = im
    return grid


def save_png(path: str | Path, image: np.ndarray, compression: int = 9) -> Path:
    """Write a uint8 grey or RGB image as PNG (parent folders are created); returns the path."""
    path = Path(path)
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"save_png: expected uint8, got {img.dtype}")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise OSError(f"{path}: cannot encode PNG")
    with atomic_open(path, "wb") as f:
        f.write(png.tobytes())
    return path


def example_panels(examples: list[dict[str, np.ndarray]], width_scale: float) -> np.ndarray:
    """N x H x (5W) x 3 uint8 rows: input, target quality, predicted quality, angle, opening."""
    gray = gray_map
    rows = []
    for ex in examples:
        x0 = ex["x"][0]
        tq = ex["y"][0] if ex["y"] is not None else np.zeros_like(ex["q"])
        rows.append(
            np.concatenate(
                [
                    gray(x0, float(x0.min()), float(x0.max())),
                    gray(tq, 0, 1),
                    gray(ex["q"], 0, 1),
                    gray(ex["angle"], -math.pi / 2, math.pi / 2),
                    gray(ex["width"], 0, width_scale),
                ],
                axis=1,
            )
        )
    return np.stack(rows) if rows else np.zeros((0, 1, 1, 3), np.uint8)


def draw_frame_grasps(depth: np.ndarray, grasps: Sequence[Any]) -> np.ndarray:
    """A depth frame (metres, NaN = missing) in colour with predicted grasps
    (:class:`utils.predict.PredictedGrasp`) drawn in its own pixels, best first and thickest,
    each labelled with its rank and quality, and its camera-frame position when known."""
    img = depth_to_rgb(depth, colormap=cv2.COLORMAP_VIRIDIS)
    scale = max(1, round(max(img.shape[:2]) / 500))
    for rank, g in reversed(list(enumerate(grasps, start=1))):
        img = draw_grasp_rectangles(
            img, GraspRectangles([g.rectangle]), color=(0, 220, 0),
            thickness=scale * (2 if rank == 1 else 1), center_color=CENTER_COLOR,
        )  # fmt: skip
        text = f"{rank}: q {g.quality:.2f}"
        if g.camera is not None:
            x, y, z = g.camera.position
            text += f" ({x:+.3f}, {y:+.3f}, {z:.3f}) m"
        org = (int(g.center[1]) + 6 * scale, int(g.center[0]) - 6 * scale)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (255, 255, 255),
                    scale, cv2.LINE_AA)  # fmt: skip
    return img
