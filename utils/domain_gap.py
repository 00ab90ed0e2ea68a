"""Statistics that decide sim-to-real transfer, measured on any folder in the Jacquard layout.

One view = ``<view>_<object>_{perfect_depth.tiff, stereo_depth.tiff, mask.png[, grasps.txt]}``
(see :mod:`utils.data.jacquard`); the grasp statistics are skipped for views without a grasp
file (unlabelled folders). ``benchmarks/domain_gap.py`` prints them side by side.

Camera model (shared with :mod:`utils.data.synthetic_render`): pinhole, principal point at the
frame centre, focal length ``f = rows / (2 tan 15 deg)`` pixels (a 30 degree field of view,
which matches real Jacquard: its 1 cm jaw unit is ~12.5 px of the 1024 px frame at 1.5 m).
Pixel sizes in metres use ``z / f`` at the table's distance under the object.

The table is the plane fitted to the perfect depth outside the (dilated) mask: a plane
``n . X = d`` seen by a pinhole camera has ``1 / z`` linear in the normalised image
coordinates, ``1 / z = p0 + p1 x' + p2 y'``, so the fit is linear least squares
(:func:`utils.depth.fit_table`, shared with the ``table`` input normalisation); the distance
along the optical axis is ``1 / p0`` and the tilt the angle between ``(p1, p2, p0)`` and the
optical axis. Heights above the table are ``(z_table - z) / cos(tilt)``, the generator's own
relation.

Objects are the connected components of the mask (components below 2% of the largest are
specks and ignored); each grasp belongs to the object under its centre (or the nearest one).
Per object: its principal axes from the second moments of its pixels; *length* and *width*
are its extents along the major and minor axis. Per grasp (all rows of the file, i.e. one per
jaw size, as the loaders and the metric see them):

- ``opening`` and ``jaw`` in millimetres;
- ``thickness at centre``: twice the mask's distance transform at the grasp centre (the local
  width of the part the grasp holds), mm; 0 off the mask;
- ``opening / chord``: the opening over the chord of the mask through the centre along the
  opening direction (the unbroken run of mask pixels holding the centre; grasps whose centre
  is off the mask are left out): how far beyond the part the labels open;
- ``centre to centroid``: distance to the object's centroid over its half length (0 at the
  centroid, 1 at an end of the long axis);
- ``position along axis``: |projection on the major axis| over the half length (0 middle,
  about 1 at the ends);
- ``angle to long axis``: angle between the opening direction and the major axis, degrees in
  [0, 90]; 90 closes across the object (the mask-centroid rule's grasp).

All statistics are (name, unit, values) so that a distance between two folders is the same
computation for each: the two-sample Kolmogorov-Smirnov statistic (the largest difference of
the empirical distribution functions, 0 = same distribution, 1 = disjoint), which needs no
binning and no scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from utils.data.synthetic_render import focal_length
from utils.depth import fit_table
from utils.grasp import GraspRectangles
from utils.image import load_depth, load_mask

#: Mask components smaller than this share of the largest one are ignored (specks).
MIN_COMPONENT_SHARE = 0.02

#: Parts narrower than this (mm) are "thin" (a rung, a leg, a rail, a handle).
THIN_MM = 20.0

#: Per-view statistics: (key, label, unit).
VIEW_STATS: tuple[tuple[str, str, str], ...] = (
    ("distance", "table distance", "m"),
    ("tilt", "table tilt", "deg"),
    ("n_objects", "objects per view", ""),
    ("mask_area", "mask area / frame", "%"),
    ("length", "object length / frame side", "%"),
    ("width", "object width / frame side", "%"),
    ("length_mm", "object length", "mm"),
    ("height", "object height (95th pct)", "mm"),
    ("fill", "mask area / (length x width)", "%"),
    ("thin_share", "mask in parts thinner than 2 cm", "%"),
    ("holes", "stereo holes / frame", "%"),
    ("holes_mask", "stereo holes / mask", "%"),
    ("noise", "stereo noise on the table (robust std)", "mm"),
    ("grasps", "grasps per object (distinct centre, angle, opening)", ""),
    ("jaws", "jaw sizes per grasp", ""),
)
#: Per-grasp statistics: (key, label, unit).
GRASP_STATS: tuple[tuple[str, str, str], ...] = (
    ("opening", "opening", "mm"),
    ("jaw", "jaw size", "mm"),
    ("thickness", "thickness at centre", "mm"),
    ("opening_chord", "opening / mask chord along the opening", ""),
    ("on_mask", "centre on the mask", "%"),
    ("to_centroid", "centre to centroid / half length", ""),
    ("along_axis", "position along axis / half length", ""),
    ("angle", "angle to long axis", "deg"),
)


@dataclass
class ObjectAxes:
    """One object (mask component): centroid (row, col) px, unit major axis (d_row, d_col),
    extents along the major and minor axis (px, outer pixel edges)."""

    centroid: np.ndarray
    major: np.ndarray
    length: float
    width: float
    area: int


def object_axes(mask: np.ndarray) -> ObjectAxes:
    """Principal axes of a non-empty boolean mask (second central moments)."""
    rows, cols = np.nonzero(mask)
    pts = np.stack([rows, cols], axis=1).astype(np.float64)
    c = pts.mean(axis=0)
    d = pts - c
    cov = d.T @ d / len(d)
    w, v = np.linalg.eigh(cov)
    major = v[:, 1]
    minor = v[:, 0]
    pa, pb = d @ major, d @ minor
    return ObjectAxes(
        centroid=c,
        major=major,
        length=float(pa.max() - pa.min() + 1.0),
        width=float(pb.max() - pb.min() + 1.0),
        area=len(d),
    )


def components(mask: np.ndarray) -> np.ndarray:
    """Labels (int32) of the mask's 8-connected components, specks (< 2% of the largest) set
    to 0, the rest numbered 1..K by decreasing area."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, np.int32)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas, kind="stable")
    keep = areas[order] >= MIN_COMPONENT_SHARE * areas[order[0]]
    remap = np.zeros(n, np.int32)
    for k, i in enumerate(order[keep]):
        remap[i + 1] = k + 1
    return remap[lab]


def thin_share(mask: np.ndarray, diameter: float) -> float:
    """Percentage of the mask's pixels in parts narrower than ``diameter`` pixels: those that
    no disc of that diameter inside the mask covers (a morphological opening removes them)."""
    d = max(1, int(round(diameter)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))
    m = mask.astype(np.uint8)
    opened = cv2.morphologyEx(
        cv2.copyMakeBorder(m, d, d, d, d, cv2.BORDER_CONSTANT), cv2.MORPH_OPEN, disc
    )
    kept = opened[d:-d, d:-d] > 0
    return 100.0 * (1.0 - kept[mask].mean()) if mask.any() else 0.0


@dataclass
class ViewStatistics:
    """The statistics of one view: scalars keyed as :data:`VIEW_STATS` (a per-object value
    is listed once per object), per-grasp arrays keyed as :data:`GRASP_STATS`."""

    view: dict[str, list[float]] = field(default_factory=dict)
    grasp: dict[str, np.ndarray] = field(default_factory=dict)


def view_statistics(
    perfect: np.ndarray,
    mask: np.ndarray,
    stereo: np.ndarray | None = None,
    grasps: GraspRectangles | None = None,
) -> ViewStatistics:
    """Statistics of one view: perfect depth (m), object mask (bool), stereo depth (m, <= 0 or
    NaN invalid) and ground-truth rectangles ((row, col) px of this frame), each optional but
    the first two."""
    perfect = np.asarray(perfect, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    shape = perfect.shape
    side = float(min(shape))
    f = focal_length(shape[0])
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    plane = fit_table(perfect, ~grown, f)
    table_z = plane.depth()
    height = (table_z - perfect) / math.cos(plane.tilt)
    labels = components(mask)
    k = int(labels.max())
    out: dict[str, list[float]] = {key: [] for key, _, _ in VIEW_STATS}
    out["distance"].append(plane.distance)
    out["tilt"].append(math.degrees(plane.tilt))
    out["n_objects"].append(float(k))
    out["mask_area"].append(100.0 * mask.mean())
    # Local thickness: twice the distance to the nearest background pixel (outer edges).
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    objects = []
    for i in range(1, k + 1):
        obj = labels == i
        ax = object_axes(obj)
        mm_per_px = 1000.0 * float(np.median(table_z[obj])) / f
        objects.append((ax, mm_per_px))
        out["length"].append(100.0 * ax.length / side)
        out["width"].append(100.0 * ax.width / side)
        out["length_mm"].append(ax.length * mm_per_px)
        out["height"].append(1000.0 * float(np.quantile(height[obj], 0.95)))
        out["fill"].append(100.0 * ax.area / (ax.length * ax.width))
        out["thin_share"].append(thin_share(obj, THIN_MM / mm_per_px))
    if stereo is not None:
        stereo = np.asarray(stereo, dtype=np.float32)
        bad = ~(np.isfinite(stereo) & (stereo > 0))
        out["holes"].append(100.0 * bad.mean())
        if mask.any():
            out["holes_mask"].append(100.0 * bad[mask].mean())
        tab = ~grown & ~bad
        if tab.any():
            diff = (stereo[tab] - perfect[tab]).astype(np.float64)
            out["noise"].append(1000.0 * 1.4826 * float(np.median(np.abs(diff - np.median(diff)))))
    g: dict[str, np.ndarray] = {}
    if grasps is not None and len(grasps) and k:
        centres = grasps.centers
        r = np.clip(np.round(centres[:, 0]).astype(int), 0, shape[0] - 1)
        c = np.clip(np.round(centres[:, 1]).astype(int), 0, shape[1] - 1)
        owner = labels[r, c]
        if (owner == 0).any():  # off the mask: the object of the nearest object pixel
            from scipy.ndimage import distance_transform_edt

            _, (nr, nc) = distance_transform_edt(labels == 0, return_indices=True)
            off = owner == 0
            owner[off] = labels[nr[r[off], c[off]], nc[r[off], c[off]]]
        ang = grasps.angles
        opening_dir = np.stack([-np.sin(ang), np.cos(ang)], axis=1)
        scale = np.array([objects[o - 1][1] for o in owner])
        cen = np.stack([objects[o - 1][0].centroid for o in owner])
        major = np.stack([objects[o - 1][0].major for o in owner])
        half = np.array([objects[o - 1][0].length / 2 for o in owner])
        rel = centres - cen
        g["opening"] = grasps.lengths * scale
        g["jaw"] = grasps.widths * scale
        g["thickness"] = 2.0 * dist[r, c] * scale
        chord = mask_chords(mask, centres, opening_dir)
        g["opening_chord"] = grasps.lengths[chord > 0] / chord[chord > 0]
        g["on_mask"] = 100.0 * mask[r, c].astype(np.float64)
        g["to_centroid"] = np.hypot(rel[:, 0], rel[:, 1]) / half
        g["along_axis"] = np.abs((rel * major).sum(1)) / half
        cosang = np.abs((opening_dir * major).sum(1)).clip(0.0, 1.0)
        g["angle"] = np.degrees(np.arccos(cosang))
        # Jacquard lists a grasp once per collision-free jaw size: same (centre, angle, opening).
        keyed = np.round(np.stack([centres[:, 0], centres[:, 1], ang * 1e3, grasps.lengths], 1), 2)
        _, first, counts = np.unique(keyed, axis=0, return_index=True, return_counts=True)
        for i in range(1, k + 1):
            out["grasps"].append(float((owner[first] == i).sum()))
        out["jaws"].extend(float(x) for x in counts)
    return ViewStatistics(view=out, grasp=g)


@dataclass
class FolderStatistics:
    """Statistics pooled over the views of one folder: values per key."""

    name: str
    views: int = 0
    labelled: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, s: ViewStatistics) -> None:
        self.views += 1
        self.labelled += bool(s.grasp)
        for key, vals in s.view.items():
            self.values.setdefault(key, []).extend(vals)
        for key, arr in s.grasp.items():
            self.values.setdefault(key, []).extend(np.asarray(arr, np.float64).tolist())

    def array(self, key: str) -> np.ndarray:
        return np.asarray(self.values.get(key, []), dtype=np.float64)


def mask_chords(mask: np.ndarray, centres: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Length (px) of the unbroken run of mask pixels through each centre ((row, col) px)
    along its unit direction ((d_row, d_col)), sampled every pixel (nearest pixel) both ways;
    0 where the centre is off the mask."""
    h, w = mask.shape
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if not len(rows):
        return np.zeros(len(centres))
    # No run is longer than the mask's bounding box diagonal: walk that far, not the frame's.
    t = np.arange(int(np.hypot(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)) + 2, dtype=float)
    run = np.zeros(len(centres))
    for sign in (1.0, -1.0):
        rr = np.round(centres[:, :1] + sign * t * directions[:, :1]).astype(np.intp)
        cc = np.round(centres[:, 1:] + sign * t * directions[:, 1:]).astype(np.intp)
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        inside[inside] = mask[rr[inside], cc[inside]]
        # Steps before the first pixel off the mask (all of them if none is).
        run += np.where(inside.all(1), len(t), np.argmin(inside, axis=1))
    return np.maximum(run - 1, 0.0)  # the centre pixel was counted in both directions


def jacquard_views(root: str | Path) -> Iterator[tuple[str, Path, Path, Path, Path | None]]:
    """(sample id, perfect depth, stereo depth, mask, grasp file or None) of every view under
    ``root`` in the Jacquard layout, sorted."""
    root = Path(root)
    for perfect in sorted(root.glob("*/*_perfect_depth.tiff")):
        sid = perfect.name[: -len("_perfect_depth.tiff")]
        folder = perfect.parent
        grasps = folder / f"{sid}_grasps.txt"
        yield (
            sid,
            perfect,
            folder / f"{sid}_stereo_depth.tiff",
            folder / f"{sid}_mask.png",
            grasps if grasps.is_file() else None,
        )


def folder_statistics(root: str | Path, max_views: int | None = None) -> FolderStatistics:
    """Pool :func:`view_statistics` over the views of a Jacquard-layout folder (at most
    ``max_views``, evenly spaced over the sorted views). Raises ValueError when the folder
    has no view with a depth image and a mask."""
    root = Path(root)
    views = [v for v in jacquard_views(root) if v[3].is_file()]
    if not views:
        raise ValueError(
            f"{root}: no Jacquard views found (expected <object>/<view>_<object>_perfect_depth"
            ".tiff with a _mask.png beside it)"
        )
    if max_views is not None and len(views) > max_views:
        pick = np.linspace(0, len(views) - 1, max_views).round().astype(int)
        views = [views[i] for i in np.unique(pick)]
    stats = FolderStatistics(name=root.name)
    for _sid, perfect, stereo, mask, grasp_file in views:
        depth = load_depth(perfect)
        s = load_depth(stereo) if stereo.is_file() else None
        g = GraspRectangles.load_from_jacquard_file(grasp_file) if grasp_file else None
        stats.add(view_statistics(depth, load_mask(mask), s, g))
    return stats


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of two samples (NaN when either is empty)."""
    a = np.sort(np.asarray(a, np.float64))
    b = np.sort(np.asarray(b, np.float64))
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))
