"""Scoring with the rectangle metric: detected grasps against ground-truth rectangles.

A detection is correct when any of the top ``n_grasps`` grasps has IoU > ``iou_threshold``
(0.25) with some ground-truth rectangle whose angle is within ``angle_threshold`` (30 degrees)
of it, the Cornell/Jacquard convention. IoU is the exact area ratio (``utils.grasp``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from utils.grasp import (
    DEFAULT_ANGLE_THRESHOLD,
    WIDTH_SCALE,
    Grasp,
    GraspRectangles,
    angle_difference,
    max_iou_per_image,
)
from utils.post_process import DETECTION_THRESHOLD, decode_at, detect_grasps, smooth_maps
from utils.stats import format_rate, wilson_interval


def _as_rectangles(gt: GraspRectangles | np.ndarray) -> GraspRectangles:
    return gt if isinstance(gt, GraspRectangles) else GraspRectangles(np.asarray(gt))


#: What :func:`outcome` calls an image's result, in the order a cascade tests them.
OUTCOMES = ("hit", "no grasp", "off the grasps", "angle", "opening short", "opening long", "size")


def outcome(
    grasp: Grasp | None,
    gt: GraspRectangles | np.ndarray,
    iou: float,
    iou_threshold: float = 0.25,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
) -> str:
    """Why a detection missed, tested in order (one of :data:`OUTCOMES`):

    - ``hit``: ``iou`` (its best IoU with ``gt``) is above ``iou_threshold``;
    - ``no grasp``: no quality peak above the detection threshold;
    - ``off the grasps``: its centre (row, col) lies inside no ground-truth rectangle;
    - ``angle``: inside some, but every rectangle it lies in is more than ``angle_threshold``
      (radians, modulo pi) from its angle;
    - ``opening short`` / ``opening long``: inside a rectangle of a fitting angle, and its
      opening (pixels) is below the smallest / above the largest opening of those rectangles;
    - ``size``: within their openings, and still no IoU above the threshold (jaw size, or the
      centre near a rectangle's end).
    """
    if iou > iou_threshold:
        return "hit"
    if grasp is None:
        return "no grasp"
    gt = _as_rectangles(gt)
    if not len(gt):
        return "off the grasps"
    pts = gt.points  # K x 4 x 2, convex, corners in order
    edges = np.roll(pts, -1, axis=1) - pts
    rel = grasp.center[None, None, :] - pts
    cross = edges[..., 0] * rel[..., 1] - edges[..., 1] * rel[..., 0]
    inside = (cross >= 0).all(axis=1) | (cross <= 0).all(axis=1)
    if not inside.any():
        return "off the grasps"
    fits = inside & (angle_difference(gt.angles, grasp.angle) <= angle_threshold + 1e-12)
    if not fits.any():
        return "angle"
    openings = np.linalg.norm(pts[fits, 1] - pts[fits, 0], axis=1)
    if grasp.length < openings.min() - 1e-6:  # a hair of rounding is not a short opening
        return "opening short"
    if grasp.length > openings.max() + 1e-6:
        return "opening long"
    return "size"


@dataclass
class ImageResult:
    """One image's score: success, the best IoU of any top grasp, the grasps themselves, and
    the :func:`outcome` of the top grasp."""

    success: bool
    best_iou: float
    grasps: list[Grasp] = field(default_factory=list)
    outcome: str = ""


def evaluate_grasps(
    grasps: list[Grasp],
    gt: GraspRectangles | np.ndarray,
    iou_threshold: float = 0.25,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
) -> ImageResult:
    """Score already-detected grasps against ground truth (rectangles in the same pixel frame)."""
    gt = _as_rectangles(gt)
    best = max((g.max_iou(gt, angle_threshold) for g in grasps), default=0.0)
    kind = outcome(grasps[0] if grasps else None, gt, best, iou_threshold, angle_threshold)
    return ImageResult(success=best > iou_threshold, best_iou=best, grasps=grasps, outcome=kind)


def evaluate_image(
    q: np.ndarray,
    angle: np.ndarray,
    gt: GraspRectangles | np.ndarray,
    width: np.ndarray | None = None,
    n_grasps: int = 1,
    iou_threshold: float = 0.25,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
    **detect_kwargs,
) -> ImageResult:
    """Detect the top ``n_grasps`` grasps in decoded (H, W) maps and score them."""
    grasps = detect_grasps(q, angle, width, n_grasps=n_grasps, **detect_kwargs)
    return evaluate_grasps(grasps, gt, iou_threshold, angle_threshold)


def top_peaks(
    q: np.ndarray, threshold: float = DETECTION_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Each (H, W) map's single best grasp point in an (N, H, W) stack, vectorised: (N, 2)
    (row, col) of the highest value (the first in raster order among ties) and a mask of the
    maps that have one: the value above ``threshold``, finite, and the map not flat. What
    ``detect_grasps(n_grasps=1)`` (``peak_local_max`` with ``num_peaks=1``) finds, without its
    maximum filter (tests/test_post_process.py compares them)."""
    if len(q) == 0:
        return np.zeros((0, 2), dtype=np.intp), np.zeros(0, dtype=bool)
    flat = q.reshape(len(q), -1)
    if np.isnan(flat).any():  # NaN pixels are never peaks (as for peak_local_max)
        flat = np.where(np.isnan(flat), -np.inf, flat)
    idx = np.argmax(flat, axis=1)
    top = flat[np.arange(len(q)), idx]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(top) & (top > threshold) & (flat.min(axis=1) != top)
    return np.stack(np.unravel_index(idx, q.shape[1:]), axis=1), ok


def evaluate_batch(
    q: np.ndarray,
    angle: np.ndarray,
    width: np.ndarray | None,
    gts: list[GraspRectangles | np.ndarray],
    n_grasps: int = 1,
    iou_threshold: float = 0.25,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
    threshold: float = DETECTION_THRESHOLD,
    jaw_ratio: float = 0.5,
    **detect_kwargs,
) -> list[ImageResult]:
    """:func:`evaluate_image` over a batch of decoded (N, H, W) maps, the same results: with
    one grasp per image (the metric's default) the peaks come from :func:`top_peaks` in one
    pass; more grasps go image by image through :func:`detect_grasps`."""
    if n_grasps != 1 or detect_kwargs:
        return [
            evaluate_image(q[i], angle[i], gts[i], None if width is None else width[i],
                           n_grasps, iou_threshold, angle_threshold, threshold=threshold,
                           jaw_ratio=jaw_ratio, **detect_kwargs)
            for i in range(len(q))
        ]  # fmt: skip
    points, ok = top_peaks(q, threshold)
    rows, cols = points[:, 0], points[:, 1]
    at = np.arange(len(q))
    lengths = width[at, rows, cols] if width is not None else np.full(len(q), 60.0)
    return _score_peaks(
        points, ok, q[at, rows, cols], angle[at, rows, cols], lengths, gts,
        iou_threshold, angle_threshold, jaw_ratio,
    )  # fmt: skip


def evaluate_raw_batch(
    raw: np.ndarray,
    gts: list[GraspRectangles | np.ndarray],
    width_scale: float = WIDTH_SCALE,
    sigma: tuple[float, float, float] = (2.0, 2.0, 1.0),
    iou_threshold: float = 0.25,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
    threshold: float = DETECTION_THRESHOLD,
    jaw_ratio: float = 0.5,
    min_opening: float = 0.0,
) -> list[ImageResult]:
    """Raw network maps (N x 4 x H x W: quality, cos 2a, sin 2a, opening / ``width_scale``)
    straight to one scored grasp per image: the results of
    ``evaluate_batch(*post_process_output(...), gts)``, but only the quality map is smoothed
    whole; angle and opening are smoothed at each image's peak alone
    (:func:`utils.post_process.decode_at`), which is most of the post-processing's cost.
    Values agree within float32 rounding (tests/test_post_process.py)."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 4 or raw.shape[1] != 4:
        raise ValueError(f"expected raw maps of shape (N, 4, H, W), got {raw.shape}")
    q = smooth_maps(np.ascontiguousarray(raw[:, 0]), sigma[0])
    points, ok = top_peaks(q, threshold)
    angles, lengths = decode_at(
        raw[:, 1], raw[:, 2], raw[:, 3], points, width_scale, sigma[1:], min_opening
    )
    quality = q[np.arange(len(q)), points[:, 0], points[:, 1]]
    return _score_peaks(
        points, ok, quality, angles, lengths, gts, iou_threshold, angle_threshold, jaw_ratio
    )


def _score_peaks(
    points: np.ndarray,
    ok: np.ndarray,
    quality: np.ndarray,
    angles: np.ndarray,
    lengths: np.ndarray,
    gts: list[GraspRectangles | np.ndarray],
    iou_threshold: float,
    angle_threshold: float,
    jaw_ratio: float,
) -> list[ImageResult]:
    """One grasp per image from its peak (``ok``: it has one) and the decoded values there,
    scored against every image's rectangles in one pass."""
    found: list[Grasp | None] = []
    for (r, c), has, qv, a, length in zip(points, ok, quality, angles, lengths, strict=True):
        found.append(
            Grasp((r, c), float(a), float(length), float(length) * jaw_ratio, quality=float(qv))
            if has else None
        )  # fmt: skip
    # Every image's IoUs in one pass: the same values as evaluate_grasps, image by image.
    rects = [None if g is None else g.as_gr for g in found]
    gts = [_as_rectangles(g) for g in gts]
    best = max_iou_per_image(rects, gts, angle_threshold)
    return [
        ImageResult(
            success=bool(b > iou_threshold),
            best_iou=float(b),
            grasps=[] if g is None else [g],
            outcome=outcome(g, gt, float(b), iou_threshold, angle_threshold),
        )
        for g, gt, b in zip(found, gts, best, strict=True)
    ]


def calculate_iou_match(
    q: np.ndarray,
    angle: np.ndarray,
    gt: GraspRectangles | np.ndarray,
    n_grasps: int = 1,
    width: np.ndarray | None = None,
    iou_threshold: float = 0.25,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
) -> bool:
    """True if any of the top ``n_grasps`` grasps has IoU > ``iou_threshold`` with any ground truth."""
    return evaluate_image(q, angle, gt, width, n_grasps, iou_threshold, angle_threshold).success


@dataclass
class EvaluationResults:
    """Dataset-level rectangle-metric results, keeping each image's best IoU.

    ``merge`` combines results gathered from several processes (distributed evaluation).
    """

    ids: list[str] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    best_ious: list[float] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def add(self, image_id: str, result: ImageResult) -> None:
        self.ids.append(str(image_id))
        self.successes.append(bool(result.success))
        self.best_ious.append(float(result.best_iou))
        self.outcomes.append(result.outcome)

    def merge(self, other: EvaluationResults) -> EvaluationResults:
        return EvaluationResults(
            self.ids + other.ids,
            self.successes + other.successes,
            self.best_ious + other.best_ious,
            self.outcomes + other.outcomes,
        )

    def outcome_counts(self) -> dict[str, int]:
        """How many images had each :func:`outcome`, in :data:`OUTCOMES` order, zeros left out."""
        return {k: n for k in OUTCOMES if (n := self.outcomes.count(k))}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def success_rate(self) -> float:
        """Fraction of images with a correct grasp, in [0, 1] (0 for no images)."""
        return float(np.mean(self.successes)) if self.successes else 0.0

    @property
    def mean_best_iou(self) -> float:
        return float(np.mean(self.best_ious)) if self.best_ious else 0.0

    @property
    def success_interval(self) -> tuple[float, float]:
        """95% Wilson interval of the success rate."""
        return wilson_interval(int(sum(self.successes)), len(self))

    def describe(self) -> str:
        """``85.0% [83.4, 86.5] of 2000``: rate, 95% interval, image count."""
        return format_rate(int(sum(self.successes)), len(self))

    def no_grasp_hint(self) -> str | None:
        """A line for a user whose network finds no grasp in at least half of the images
        (no quality peak above :data:`~utils.post_process.DETECTION_THRESHOLD`); None
        otherwise."""
        n = self.outcomes.count("no grasp")
        if not self.outcomes or n < len(self.outcomes) / 2:
            return None
        return (
            f"{n} of {len(self.outcomes)} images have no quality peak above the detection "
            f"threshold ({DETECTION_THRESHOLD}): the usual cause is a run too short for the "
            "quality map to learn its peaks (the README's runs train 10 to 30 epochs), else "
            "images unlike the training data"
        )

    def summary(self) -> dict[str, float]:
        return {
            "images": len(self),
            "correct": int(sum(self.successes)),
            "success_rate": self.success_rate,
            "success_ci95": list(self.success_interval),
            "mean_best_iou": self.mean_best_iou,
        }

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "per_image": asdict(self)}
