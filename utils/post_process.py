"""Network maps -> smoothed grasp maps -> grasps.

The network predicts four maps per image: quality, cos 2a, sin 2a and the opening divided by a
width scale (see ``utils/grasp.py`` for the conventions). :func:`post_process_output` decodes
them into quality, angle (radians, CCW on screen) and opening (pixels) maps;
:func:`detect_grasps` picks local quality peaks as :class:`~utils.grasp.Grasp` objects.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from skimage.feature import peak_local_max

from utils.grasp import WIDTH_SCALE, Grasp

ArrayLike = np.ndarray | torch.Tensor

#: Bumped whenever decoding changes what a grasp is, so stored scores of an older decoding are
#: not reused (eval_net writes it into its results; ``benchmarks/results_table.cached_score``
#: compares). 1: openings as predicted, a negative one scoring as its absolute value (before
#: 2026-12-04); 2: openings clamped at 0.
DECODING_VERSION = 2
#: A grasp is a quality peak above this (absolute quality in [0, 1]; GG-CNN's default).
DETECTION_THRESHOLD = 0.2


def _as_numpy_batch(x: ArrayLike) -> tuple[np.ndarray, bool]:
    """(N, H, W) float32 numpy from (H, W), (N, H, W) or (N, 1, H, W); and whether it was batched."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return x[None], False
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0], True
    if x.ndim == 3:
        return x, True
    raise ValueError(f"expected a map of shape (H, W), (N, H, W) or (N, 1, H, W), got {x.shape}")


def _kernel_radius(sigma: float) -> int:
    """scipy.ndimage.gaussian_filter's truncation: radius int(4 sigma + 0.5) pixels."""
    return int(4.0 * sigma + 0.5)


def smooth_maps(x: np.ndarray, sigma: float) -> np.ndarray:
    """Each (H, W) map of an (N, H, W) float32 stack blurred with a Gaussian of ``sigma``
    pixels (0: unchanged): scipy.ndimage.gaussian_filter's kernel and 'reflect' border
    (``cba|abcd|dcb``: the edge pixel repeated), computed by OpenCV: the same maps within
    float32 rounding, ~8x faster than scipy."""
    if sigma <= 0:
        return x
    k = 2 * _kernel_radius(sigma) + 1
    out = np.empty_like(x)  # each map blurred straight into its slot: no stacking copy
    for m, dst in zip(x, out, strict=True):
        cv2.GaussianBlur(m, (k, k), sigma, dst=dst, borderType=cv2.BORDER_REFLECT)
    return out


def smooth_at(x: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    """``smooth_maps(x, sigma)[i, r_i, c_i]`` for one (row, col) pixel per map, (N,) float32,
    without blurring whole maps: the kernel's window around each point, borders reflected as
    there. ``x`` is (N, H, W), ``points`` (N, 2) integer pixels inside the maps."""
    x = np.asarray(x, dtype=np.float32)
    points = np.asarray(points, dtype=np.intp).reshape(len(x), 2)
    if sigma <= 0:
        return x[np.arange(len(x)), points[:, 0], points[:, 1]]
    radius = _kernel_radius(sigma)
    kernel = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_64F)[:, 0]
    offsets = np.arange(-radius, radius + 1)

    def reflect(i: np.ndarray, n: int) -> np.ndarray:  # OpenCV's BORDER_REFLECT, any distance
        i = np.mod(i, 2 * n)
        return np.where(i < n, i, 2 * n - 1 - i)

    rows = reflect(points[:, :1] + offsets, x.shape[1])  # (N, k)
    cols = reflect(points[:, 1:] + offsets, x.shape[2])
    window = x[np.arange(len(x))[:, None, None], rows[:, :, None], cols[:, None, :]]
    return np.einsum("nij,i,j->n", window.astype(np.float64), kernel, kernel).astype(np.float32)


def decode_at(
    cos: np.ndarray,
    sin: np.ndarray,
    width: np.ndarray,
    points: np.ndarray,
    width_scale: float = WIDTH_SCALE,
    sigma: tuple[float, float] = (2.0, 1.0),
    min_opening: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The angle (radians) and opening (pixels) maps of :func:`post_process_output` read at
    one (row, col) pixel per map: ``(N,)`` each, within float32 rounding of those maps, at a
    fraction of the cost when only the grasp's pixel is needed (evaluation). ``sigma`` is
    (angle, opening) in pixels; the maps are (N, H, W), ``points`` (N, 2); openings are at
    least ``min_opening`` pixels."""
    sa, sw = sigma
    c, s = smooth_at(cos, points, sa), smooth_at(sin, points, sa)
    angle = 0.5 * torch.atan2(torch.from_numpy(s), torch.from_numpy(c)).numpy()
    opening = np.maximum(smooth_at(width, points, sw) * np.float32(width_scale), min_opening)
    return angle.astype(np.float32), opening


def post_process_output(
    q: ArrayLike,
    cos: ArrayLike,
    sin: ArrayLike,
    width: ArrayLike,
    width_scale: float = WIDTH_SCALE,
    sigma: tuple[float, float, float] = (2.0, 2.0, 1.0),
    min_opening: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode raw network maps into (quality, angle, opening) numpy maps.

    - angle = atan2(sin 2a, cos 2a) / 2, radians in [-pi/2, pi/2], CCW on screen;
    - opening = width map * ``width_scale`` (pixels), at least 0: pass the scale the targets
      were encoded with (both sides default to :data:`utils.grasp.WIDTH_SCALE`). The width
      head has no activation; a negative opening would draw the same rectangle as its
      absolute value (both half-extents flip), so it is clamped to 0, a grasp of no area;
      ``min_opening`` (pixels, default 0) raises every opening to at least that: the width
      head regresses toward the 0 it learns off the grasps, and on parts a few pixels thin
      its opening at the peak falls below every label's there (README, "Openings that
      collapse on thin parts");
    - Gaussian smoothing with ``sigma`` = (quality, angle, opening) in pixels. The angle is
      smoothed through its cos/sin components before the atan2, so smoothing never averages
      across the +-pi/2 wrap. A sigma of 0 skips that map.

    Inputs are torch tensors or numpy arrays of shape (H, W), (N, H, W) or (N, 1, H, W); the
    outputs are float32 numpy of shape (H, W) for a 2-D input, else (N, H, W).
    """
    (q, batched), (c, _), (s, _), (w, _) = map(_as_numpy_batch, (q, cos, sin, width))
    sq, sa, sw = sigma
    q_out = smooth_maps(q, sq)
    # torch's atan2 is vectorised on every CPU (numpy's is scalar without AVX512: 5x slower
    # on an AVX2-only EPYC); the same angles within float32 rounding.
    ang = torch.atan2(torch.from_numpy(smooth_maps(s, sa)), torch.from_numpy(smooth_maps(c, sa)))
    ang = ang.mul_(0.5).numpy()
    w_out = np.maximum(smooth_maps(w * width_scale, sw), min_opening)
    out = tuple(m.astype(np.float32, copy=False) for m in (q_out, ang, w_out))
    return out if batched else tuple(x[0] for x in out)


def detect_grasps(
    q: np.ndarray,
    angle: np.ndarray,
    width: np.ndarray | None = None,
    n_grasps: int = 1,
    min_distance: int = 20,
    threshold: float = DETECTION_THRESHOLD,
    jaw_ratio: float = 0.5,
) -> list[Grasp]:
    """Grasps at the local maxima of one (H, W) quality map, best first.

    Peaks are at least ``min_distance`` pixels apart and above ``threshold`` (absolute quality),
    the GG-CNN defaults; unlike skimage's default, peaks near the image border count. Each grasp takes its angle (radians) and opening (pixels) from the
    maps at the peak; its jaw size is ``jaw_ratio`` times the opening (the usual convention,
    since the network predicts no jaw size). ``quality`` holds the peak value. Returns at most
    ``n_grasps`` grasps, possibly none.
    """
    if q.ndim != 2:
        raise ValueError(f"detect_grasps takes one (H, W) map, got shape {q.shape}")
    peaks = peak_local_max(
        q,
        min_distance=min_distance,
        threshold_abs=threshold,
        num_peaks=n_grasps,
        exclude_border=False,  # skimage's default drops peaks near the edge: valid grasps
    )
    grasps = []
    for r, c in peaks:
        length = float(width[r, c]) if width is not None else 60.0
        grasps.append(
            Grasp((r, c), float(angle[r, c]), length, length * jaw_ratio, quality=float(q[r, c]))
        )
    return grasps
