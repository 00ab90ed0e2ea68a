"""Depth input of the networks: normalisation, and randomisation for sim-to-real training.

Normalisations (``--depth-norm``; a checkpoint records its own, older ones mean ``mean``):

- ``mean`` (GG-CNN): ``depth - mean(depth)``, clipped to [-1, 1] m. Depends on what the view
  holds (a big object moves the mean) and keeps the table's tilt as a ramp across the input.
- ``table``: ``depth - table(depth)``, clipped to [-1, 1] m, where ``table`` is a plane fitted
  to the view's table pixels (objects lie above it). Table pixels are 0 and an object's pixels
  are minus its height, whatever the camera's distance or the table's tilt. The plane is
  exact in a pinhole view (its inverse depth is linear in the pixel coordinates), fitted by
  least squares on a grid of pixels, refitted twice without the pixels more than
  :data:`OBJECT_MARGIN` above the last plane (objects) or far below it.

Randomisation (``--depth-aug``, training only), on the normalised depth (metres), each part
drawn per item: heights scaled by U(0.85, 1.15); a ramp of up to 3 cm across the view (a
table tilted a further 2 degrees); Gaussian blur (sigma 0.5 to 1.5 px) on 30% of the items;
pixel noise (sigma up to 3 mm) on 50%; 1 to 4 holes, filled as inpainting fills stereo holes
(from the surrounding depth), on 30%.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

DEPTH_NORMS = ("mean", "table")
#: The normalisation of checkpoints written before ``--depth-norm`` existed (GG-CNN's).
LEGACY_DEPTH_NORM = "mean"
#: Pixels this far above the fitted plane (m) are objects, left out of the refit.
OBJECT_MARGIN = 0.004
#: Pixels this far below the plane (m) are outliers (holes, the table's far edge).
BELOW_MARGIN = 0.05


@dataclass
class TablePlane:
    """A plane seen by a pinhole camera: ``1 / z = p0 + p1 x' + p2 y'`` with normalised image
    coordinates x' = (col - cx) / f, y' = (row - cy) / f (principal point at the centre)."""

    p: np.ndarray
    f: float
    shape: tuple[int, int]

    @property
    def distance(self) -> float:
        """Distance along the optical axis to the plane, metres."""
        return float(1.0 / self.p[0])

    @property
    def tilt(self) -> float:
        """Angle between the plane's normal and the optical axis, radians."""
        return float(math.acos(min(1.0, abs(self.p[0]) / float(np.linalg.norm(self.p)))))

    def inverse_depth(self) -> np.ndarray:
        """1 / z of the plane under every pixel, float64 (H, W)."""
        xp, yp = _normalised_coords(self.shape, self.f)
        return (self.p[0] + self.p[1] * xp) + self.p[2] * yp  # one H x W operation

    def depth(self) -> np.ndarray:
        """z-depth (m) of the plane under every pixel, float64 (H, W)."""
        return 1.0 / self.inverse_depth()


def _normalised_coords(shape: tuple[int, int], f: float) -> tuple[np.ndarray, np.ndarray]:
    """x' as a 1 x W row and y' as an H x 1 column (they broadcast to H x W)."""
    rows, cols = shape
    yp = ((np.arange(rows) - (rows - 1) / 2.0) / f)[:, None]
    xp = ((np.arange(cols) - (cols - 1) / 2.0) / f)[None, :]
    return xp, yp


@functools.lru_cache(maxsize=16)
def _grid_design(shape: tuple[int, int], f: float, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The fit's design for every ``step``-th pixel: (1, x', y') as a 3 x n matrix and the six
    distinct products of its rows (1, x', y', x'x', x'y', y'y') as 6 x n; read-only, cached
    (one per input size: a training item fits a plane per read)."""
    xp, yp = _normalised_coords(shape, f)
    xp, yp = xp[0, ::step], yp[::step, 0]
    x, y = np.tile(xp, yp.size), np.repeat(yp, xp.size)
    a = np.stack([np.ones(x.size), x, y])
    outer = np.stack([a[0], x, y, x * x, x * y, y * y])
    a.flags.writeable = outer.flags.writeable = False
    return a, outer


def fit_table(
    depth: np.ndarray,
    table: np.ndarray | None = None,
    f: float | None = None,
    step: int = 4,
    iterations: int = 3,
) -> TablePlane:
    """The table plane of a depth image (m): least squares of 1 / depth on (1, x', y') over
    every ``step``-th pixel of a grid (of the ``table`` pixels when a mask is given), refitted
    without the pixels more than :data:`OBJECT_MARGIN` above the last plane (objects) or
    :data:`BELOW_MARGIN` below it. ``f``: focal length in pixels (default: the synthetic
    camera's, :func:`utils.data.synthetic_render.focal_length`; it changes the plane's
    distance and tilt, never its depth). Raises ValueError with fewer than 3 pixels."""
    from utils.data.synthetic_render import focal_length

    d = np.asarray(depth)
    f = focal_length(d.shape[0]) if f is None else float(f)
    # Only the grid is fitted: subsample before converting (a training item fits one per read).
    grid = (slice(None, None, step), slice(None, None, step))
    z = d[grid].astype(np.float64).ravel()
    a, outer = _grid_design(d.shape, f, step)
    valid = np.isfinite(z) & (z > 0)
    if table is not None:
        valid &= np.asarray(table, dtype=bool)[grid].ravel()
    inv_z = np.zeros_like(z)
    np.divide(1.0, z, out=inv_z, where=valid)
    a_inv_z = a * inv_z  # 3 x n
    keep, p = valid, None
    for _ in range(iterations):
        w = keep.astype(np.float64)
        if w.sum() < 3:
            break
        # The normal equations as weighted sums over the grid (weights: the kept pixels): the
        # same 3 x 3 system as indexing the kept columns, without copying them.
        m = (outer @ w)[[0, 1, 2, 1, 3, 4, 2, 4, 5]].reshape(3, 3)
        rhs = a_inv_z @ w
        try:  # well conditioned for (1, x', y'), 3x faster than lstsq
            p = np.linalg.solve(m, rhs)
        except np.linalg.LinAlgError:  # degenerate pixels (all on one line)
            p = np.linalg.lstsq(a[:, keep].T, inv_z[keep], rcond=None)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            plane = 1.0 / (p @ a)
        keep = valid & (z >= plane - OBJECT_MARGIN) & (z <= plane + BELOW_MARGIN)
    if p is None:
        raise ValueError("fit_table: fewer than 3 table pixels")
    return TablePlane(p=p, f=f, shape=d.shape)


def fit_table_plane(depth: np.ndarray, step: int = 4, iterations: int = 3) -> np.ndarray:
    """Depth (m) of the table plane under every pixel, float32 (H, W) (:func:`fit_table`);
    the median depth when there is no plane to fit or it passes through the camera."""
    d = np.asarray(depth, dtype=np.float32)
    try:
        plane = fit_table(d, step=step, iterations=iterations)
    except ValueError:
        plane = None
    out = None
    if plane is not None:
        xp, yp = _normalised_coords(d.shape, plane.f)
        row, col = plane.p[0] + plane.p[1] * xp, plane.p[2] * yp  # 1 / z = row + col
        # 1 / z is linear in the pixel coordinates: positive everywhere iff at the four
        # corners. Rounded to float32, a row and a column each stay monotonic, so the corners
        # decide again after rounding (a plane nearly through the camera may fail only then).
        if np.all(row[0, [0, -1, 0, -1]] + col[[0, 0, -1, -1], 0] > 0):
            # In float32, two passes over the image: a training item normalises one per
            # read, and float32 rounding (1e-7 m at 1 m) is far below any depth sensor's.
            out = np.add(row.astype(np.float32), col.astype(np.float32))
            if not np.all(out[[0, 0, -1, -1], [0, -1, 0, -1]] > 0):
                out = None
    if out is None:
        ok = np.isfinite(d) & (d > 0)
        return np.full(d.shape, float(np.median(d[ok])) if ok.any() else 0.0, np.float32)
    return np.divide(np.float32(1.0), out, out=out)


def trained_depth_norm(trained: dict) -> str:
    """The depth normalisation recorded in a checkpoint's (or export's) arguments."""
    return trained.get("depth_norm", LEGACY_DEPTH_NORM)


def normalise_depth(depth: np.ndarray, mode: str = "mean") -> np.ndarray:
    """The network's depth input (float32, metres, clipped to [-1, 1]); see the module doc."""
    d = np.asarray(depth, dtype=np.float32)
    if mode == "mean":
        return np.clip(d - d.mean(), -1.0, 1.0).astype(np.float32, copy=False)
    if mode == "table":
        x = fit_table_plane(d)  # a new float32 array: subtract and clip in place
        np.subtract(d, x, out=x)
        return np.clip(x, -1.0, 1.0, out=x)
    raise ValueError(f"depth normalisation must be one of {DEPTH_NORMS}, got {mode!r}")


def randomise_depth(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random perturbation (module doc) of a normalised depth input (H, W) float32 m."""
    h, w = x.shape
    out = x * np.float32(rng.uniform(0.85, 1.15))
    gr, gc = rng.uniform(-0.015, 0.015, 2)
    ramp = (
        gr * np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        + gc * np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    )
    out = out + ramp.astype(np.float32)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.5:
        out = out + rng.normal(0.0, rng.uniform(0.0, 0.003), (h, w)).astype(np.float32)
    if rng.random() < 0.3:
        holes = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            centre = (int(rng.integers(w)), int(rng.integers(h)))
            axes = (
                max(1, int(rng.uniform(0.01, 0.04) * w)),
                max(1, int(rng.uniform(0.01, 0.03) * h)),
            )
            cv2.ellipse(holes, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        # The hole's surroundings, spread inward: a smooth fill like inpainting's.
        k = 2 * max(3, int(0.05 * w)) + 1
        valid = (holes == 0).astype(np.float32)
        num = cv2.blur(out * valid, (k, k))
        den = cv2.blur(valid, (k, k))
        fill = np.where(den > 1e-3, num / np.maximum(den, 1e-3), out)
        out = np.where(holes > 0, fill, out)
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)
