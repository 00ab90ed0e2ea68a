"""Non-learned grasp baselines: grasp an object mask at its centroid across its minor axis.

Conventions are those of :mod:`utils.grasp`: (row, col) pixels, pixel centres at integer
coordinates, angles in radians in [-pi/2, pi/2) counter-clockwise on screen (the opening
direction of angle a is (d_row, d_col) = (-sin a, cos a)), length = opening, width = jaw size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from utils.grasp import Grasp, wrap_angle


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (empty mask -> empty mask)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return m.copy()
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m.copy()
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return lab == best


def mask_centroid_grasp(
    mask: np.ndarray,
    margin: float = 0.1,
    width_fraction: float = 0.5,
    min_width: float = 2.0,
    largest: bool = True,
) -> Grasp:
    """Grasp a mask at its centroid, closing across its minor principal axis.

    The principal axes come from the second central moments of the pixel coordinates; the
    gripper closes along the minor axis (the direction of least spread), so its jaws are
    parallel to the major axis. The opening is the mask's extent along the minor axis,
    measured over the pixels within half a jaw of the closing line through the centroid
    (the whole mask if that band is empty), as the distance between the outer pixel edges,
    times ``1 + margin``. The jaw size is ``width_fraction`` x opening (at least
    ``min_width`` px). Centroid, opening and jaw size are in pixels.

    With several objects (connected components) only the largest is grasped when
    ``largest`` (the default); otherwise all pixels count as one object. Raises ValueError
    for an empty mask.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask_centroid_grasp: expected a 2-D mask, got shape {m.shape}")
    m = m > 0 if m.dtype != bool else m
    if largest:
        m = largest_component(m)
    rows, cols = np.nonzero(m)
    if len(rows) == 0:
        raise ValueError("mask_centroid_grasp: the mask is empty")
    pts = np.stack([rows, cols], axis=1).astype(np.float64)
    center = pts.mean(axis=0)
    d = pts - center
    cov = d.T @ d / len(pts)
    evals, evecs = np.linalg.eigh(cov)  # ascending: column 0 is the minor axis
    minor = evecs[:, 0]  # (d_row, d_col), unit
    major = evecs[:, 1]
    angle = float(wrap_angle(math.atan2(-minor[0], minor[1])))
    along = d @ minor
    across = d @ major
    # First estimate of the jaw from the whole extent, then measure in the jaw's band.
    full = along.max() - along.min() + 1.0
    half_jaw = max(width_fraction * full, min_width) / 2
    band = np.abs(across) <= half_jaw
    sel = along[band] if band.any() else along
    extent = sel.max() - sel.min() + 1.0  # pixel centres span extent - 1; add one pixel
    length = extent * (1.0 + margin)
    width = max(width_fraction * length, min_width)
    # Centre the grasp on the measured extent (the centroid may sit off the band's middle).
    offset = (sel.max() + sel.min()) / 2
    return Grasp(center + offset * minor, angle, length, width)


def depth_mask(
    depth: np.ndarray,
    min_height: float = 0.01,
    min_area: int = 20,
    step: int = 4,
    iterations: int = 5,
) -> np.ndarray:
    """Object mask from a depth image alone: pixels at least ``min_height`` (depth units,
    metres for Jacquard) nearer than the table.

    The table is a quadratic surface depth(row, col) fitted robustly (iterated least squares
    on every ``step``-th pixel, keeping points within 3 median absolute deviations, at least
    2 mm, of the fit), so tilted tables and Cornell's distance-not-z images fit too. Invalid
    pixels (NaN, inf, <= 0) are never objects. Small speckles are removed by a 3 x 3 opening
    and components under ``min_area`` pixels are dropped.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth_mask: expected a 2-D depth image, got shape {d.shape}")
    valid = np.isfinite(d) & (d > 0)
    if valid.sum() < 10:
        return np.zeros(d.shape, dtype=bool)
    h, w = d.shape
    rr, cc = np.mgrid[0:h:step, 0:w:step]
    z = d[rr, cc]
    ok = valid[rr, cc]
    # Normalised coordinates keep the quadratic design matrix well conditioned.
    u = (rr[ok] - h / 2) / max(h, w)
    v = (cc[ok] - w / 2) / max(h, w)
    z = z[ok]
    a = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    keep = np.ones(len(z), dtype=bool)
    coef = np.zeros(6)
    for _ in range(iterations):
        coef, *_ = np.linalg.lstsq(a[keep], z[keep], rcond=None)
        res = z - a @ coef
        mad = np.median(np.abs(res[keep] - np.median(res[keep])))
        keep = np.abs(res) <= max(3 * 1.4826 * mad, 0.002)
        if keep.sum() < 6:
            break
    ur = ((np.arange(h) - h / 2) / max(h, w))[:, None]
    vc = ((np.arange(w) - w / 2) / max(h, w))[None, :]
    table = (
        coef[0]
        + coef[1] * ur
        + coef[2] * vc
        + coef[3] * ur**2
        + coef[4] * ur * vc
        + coef[5] * vc**2
    )
    mask = valid & (table - d >= min_height)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    if min_area > 1 and mask.any():
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
        mask &= ~np.isin(lab, small[small > 0])
    return mask


def depth_centroid_grasp(depth: np.ndarray, min_height: float = 0.01, **kwargs) -> Grasp:
    """:func:`mask_centroid_grasp` of :func:`depth_mask` (for images without a mask file).

    ``kwargs`` go to :func:`mask_centroid_grasp`. Raises ValueError if no object is found.
    """
    mask = depth_mask(depth, min_height=min_height)
    if not mask.any():
        raise ValueError("depth_centroid_grasp: no object found above the table")
    return mask_centroid_grasp(mask, **kwargs)
