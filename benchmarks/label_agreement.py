"""The synthetic labeller against real Jacquard labels, on the same real geometry.

    python benchmarks/label_agreement.py ../shared/data/jacquard_samples
    python benchmarks/label_agreement.py DIR --max-views 40 --json agreement.json

For every labelled view of a Jacquard-layout folder, the perfect depth becomes a height field
over the fitted table plane and the mask's components become the objects, exactly as
:mod:`utils.domain_gap` measures them (heights ``(z_table - z) / cos(tilt)``, scale
``f / z_table`` px per metre under each object); :func:`utils.data.synthetic_labels.find_grasps`
then labels that geometry as the generator labels its own scenes (every grasp, one rectangle
per collision-free jaw size, no thinning). Labels and the view's real Jacquard rows are
compared with the rectangle metric (IoU > 0.25, angles within 30 degrees), both ways:

- *recall*: the share of the real rows that some generated rectangle matches (are the real
  grasps places the labeller calls graspable?);
- *precision*: the share of generated rectangles that some real row matches (does it label
  places the real labels do not?).

Per object and pooled over the views, for the labeller with its higher floors (generator v4)
and with the first floor only (v3, ``slice_fractions=()``). Jacquard's labels come from
simulated grasps on the full mesh and ours from a height field, so neither is expected to
reach 100%; what counts is which one agrees with the real rows more, object by object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.data import synthetic_labels  # noqa: E402
from utils.data.synthetic_render import focal_length  # noqa: E402
from utils.depth import fit_table  # noqa: E402
from utils.domain_gap import components, jacquard_views  # noqa: E402
from utils.grasp import (  # noqa: E402
    DEFAULT_ANGLE_THRESHOLD,
    GraspRectangles,
    angle_difference,
    pair_ious,
)
from utils.image import load_depth, load_mask  # noqa: E402

IOU = 0.25
#: Labeller variants: name -> SLICE_FRACTIONS.
VARIANTS = {"v4 (higher floors)": synthetic_labels.SLICE_FRACTIONS, "v3 (first floor)": ()}


def real_geometry(
    perfect: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heights above the table (m), object labels (0 = table) and each label's px per metre
    (index 0 unused) of a real view, as :func:`utils.domain_gap.view_statistics` sees it."""
    f = focal_length(perfect.shape[0])
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    plane = fit_table(perfect, ~grown, f)
    table_z = plane.depth()
    heights = ((table_z - perfect) / math.cos(plane.tilt)).astype(np.float32)
    labels = components(mask)
    scale = np.zeros(int(labels.max()) + 1)
    for k in range(1, len(scale)):
        scale[k] = f / float(np.median(table_z[labels == k]))
    return np.where(labels > 0, heights, 0.0).astype(np.float32), labels, scale


def matched(a: GraspRectangles, b: GraspRectangles) -> np.ndarray:
    """For each rectangle of ``a``: does some rectangle of ``b`` match it (IoU > 0.25 and
    angles within 30 degrees)? Pairs that cannot overlap are skipped before the exact IoU."""
    out = np.zeros(len(a), dtype=bool)
    if len(a) == 0 or len(b) == 0:
        return out
    ca, cb = a.centers, b.centers
    reach = (np.hypot(a.lengths, a.widths)[:, None] + np.hypot(b.lengths, b.widths)[None, :]) / 2
    near = np.linalg.norm(ca[:, None] - cb[None, :], axis=2) < reach
    near &= angle_difference(a.angles[:, None], b.angles[None, :]) <= DEFAULT_ANGLE_THRESHOLD
    i, j = np.nonzero(near)
    if len(i):
        ious = pair_ious(a.points[i], b.points[j])
        hit = ious > IOU
        out[np.unique(i[hit])] = True
    return out


def view_agreement(perfect: np.ndarray, mask: np.ndarray, real: GraspRectangles) -> dict:
    """Recall and precision counts of each labeller variant on one real view."""
    heights, labels, scale = real_geometry(perfect, mask)
    res = {}
    for name, fractions in VARIANTS.items():
        t0 = time.perf_counter()
        found = synthetic_labels.find_grasps(heights, labels, scale, slice_fractions=fractions)
        ours = found.rectangles("all")
        seconds = time.perf_counter() - t0
        rec, prec = matched(real, ours), matched(ours, real)
        res[name] = {
            "real": len(real),
            "real_matched": int(rec.sum()),
            "ours": len(ours),
            "ours_matched": int(prec.sum()),
            "seconds": seconds,
        }
    return res


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "–"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", help="a Jacquard-layout folder with grasp files")
    p.add_argument("--max-views", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    views = [v for v in jacquard_views(args.folder) if v[4] is not None and v[3].is_file()]
    if not views:
        raise SystemExit(f"{args.folder}: no labelled Jacquard views (<object>/<view>_<object>_"
                         "perfect_depth.tiff with _mask.png and _grasps.txt)")  # fmt: skip
    views = views[: args.max_views] if args.max_views else views
    per_view = {}
    for sid, perfect, _stereo, mask, grasps in views:
        real = GraspRectangles.load_from_jacquard_file(grasps)
        per_view[sid] = view_agreement(load_depth(perfect), load_mask(mask), real)
        print(f"{sid}: " + "; ".join(
            f"{n}: recall {pct(r['real_matched'], r['real'])}, precision "
            f"{pct(r['ours_matched'], r['ours'])} ({r['ours']} rectangles, {r['seconds']:.1f} s)"
            for n, r in per_view[sid].items()), flush=True)  # fmt: skip
    objects = sorted({sid.split("_", 1)[1] for sid in per_view})
    print(f"\n{Path(args.folder).name}: {len(per_view)} labelled views, real rows matched by the "
          "labeller (recall) and its rectangles matched by real rows (precision), pooled\n")  # fmt: skip
    names = list(VARIANTS)
    print("| object | views | real rows | " + " | ".join(
        f"{n}: recall | {n}: precision" for n in names) + " |")  # fmt: skip
    print("|---|---:|---:|" + "---:|" * (2 * len(names)))
    for obj in [*objects, None]:
        sids = [s for s in per_view if obj is None or s.endswith(obj)]
        cells = []
        for n in names:
            tot = {k: sum(per_view[s][n][k] for s in sids) for k in per_view[sids[0]][n]}
            cells += [pct(tot["real_matched"], tot["real"]), pct(tot["ours_matched"], tot["ours"])]
        n_real = sum(per_view[s][names[0]]["real"] for s in sids)
        label = obj[:8] if obj else "**all**"
        print(f"| {label} | {len(sids)} | {n_real} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(per_view, indent=1))


if __name__ == "__main__":
    main()
