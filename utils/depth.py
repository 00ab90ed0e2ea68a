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

import cv2
import numpy as np

DEPTH_NORMS = ("mean", "table")
#: Pixels this far above the fitted plane (m) are objects, left out of the refit.
OBJECT_MARGIN = 0.004
#: Pixels this far below the plane (m) are outliers (holes, the table's far edge).
BELOW_MARGIN = 0.05


def fit_table_plane(depth: np.ndarray, step: int = 4, iterations: int = 3) -> np.ndarray:
    """Depth (m) of the table plane under every pixel, float32 (H, W), fitted to ``depth``.

    Least squares of 1 / depth on (1, row, col) over every ``step``-th pixel of a grid, then
    refits without the pixels more than :data:`OBJECT_MARGIN` above the plane or
    :data:`BELOW_MARGIN` below it. Falls back to the median depth when fewer than 3 pixels
    are left or the fit is degenerate."""
    d = np.asarray(depth, dtype=np.float64)
    h, w = d.shape
    rr, cc = np.mgrid[0:h:step, 0:w:step]
    z = d[rr, cc].ravel()
    a = np.stack([np.ones(z.size), rr.ravel() / h, cc.ravel() / w], axis=1)
    keep = np.isfinite(z) & (z > 0)
    p = None
    for _ in range(iterations):
        if keep.sum() < 3:
            break
        p = np.linalg.lstsq(a[keep], 1.0 / z[keep], rcond=None)[0]
        plane = 1.0 / (a @ p)
        keep = np.isfinite(z) & (z > 0) & (z >= plane - OBJECT_MARGIN) & (z <= plane + BELOW_MARGIN)
    if p is None:
        return np.full(d.shape, np.nanmedian(np.where(d > 0, d, np.nan)), np.float32)
    inv = p[0] + p[1] * (np.arange(h)[:, None] / h) + p[2] * (np.arange(w)[None, :] / w)
    if not np.all(inv > 0):  # a plane through the camera: not a table
        return np.full(d.shape, float(np.median(z[np.isfinite(z)])), np.float32)
    return (1.0 / inv).astype(np.float32)


def normalise_depth(depth: np.ndarray, mode: str = "mean") -> np.ndarray:
    """The network's depth input (float32, metres, clipped to [-1, 1]); see the module doc."""
    d = np.asarray(depth, dtype=np.float32)
    if mode == "mean":
        ref = d.mean()
    elif mode == "table":
        ref = fit_table_plane(d)
    else:
        raise ValueError(f"depth normalisation must be one of {DEPTH_NORMS}, got {mode!r}")
    return np.clip(d - ref, -1.0, 1.0).astype(np.float32, copy=False)


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
