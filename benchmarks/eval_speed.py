"""Rectangle-metric evaluation speed: this project's against the GG-CNN reference method, on
the same network maps and ground-truth rectangles.

    python benchmarks/eval_speed.py                       # shipped GG-CNN2, 300 benchmark images
    python benchmarks/eval_speed.py --network runs/.../best.pt --images 500

The maps are computed once (the network's time is not part of either figure). Timed per
image, from raw maps to a success decision:

- *reference* (the GG-CNN code's method, re-implemented here from its description): the
  angle decoded first, quality/angle/opening smoothed with ``skimage.filters.gaussian``
  (sigma 2, 2, 1, border 'nearest'), ``peak_local_max`` (min distance 20, threshold 0.2, the
  border band excluded), each ground-truth rectangle rasterised with the grasp on a canvas
  and IoU counted in pixels, one rectangle at a time;
- *ours*: :func:`utils.evaluation.evaluate_raw_batch` over the batch, what ``eval_net.py``
  runs: the quality map smoothed, one vectorised peak per image, the angle (smoothed through
  cos/sin) and opening smoothed at that peak alone, exact polygon IoU against all rectangles
  at once;
- *ours, whole maps*: :func:`utils.post_process.post_process_output` (every map smoothed
  whole, as for pictures) then :func:`utils.evaluation.evaluate_batch`: the same decisions.

Agreement: the two pipelines differ by design (border peaks, angle smoothing across the
wrap), so success decisions are also compared with the reference's IoU step alone fed our
grasps: that isolates the raster error of pixel-counted IoU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.checkpoint import load_model  # noqa: E402
from utils.data import JacquardDataset  # noqa: E402
from utils.data.base import collate_grasp_batch  # noqa: E402
from utils.data.benchmark import ensure_benchmark  # noqa: E402
from utils.evaluation import evaluate_batch, evaluate_raw_batch  # noqa: E402
from utils.grasp import WIDTH_SCALE, Grasp  # noqa: E402
from utils.post_process import post_process_output  # noqa: E402


# --- the reference method ----------------------------------------------------------------------
def reference_iou(a: np.ndarray, b: np.ndarray, angle_threshold: float = np.pi / 6) -> float:
    """Pixel-counted IoU of two 4 x 2 (row, col) rectangles on a canvas; 0 past the angle test."""
    from skimage.draw import polygon

    def angle(p: np.ndarray) -> float:
        dx, dy = p[1, 1] - p[0, 1], p[1, 0] - p[0, 0]
        return (np.arctan2(-dy, dx) + np.pi / 2) % np.pi - np.pi / 2

    if abs((angle(a) - angle(b) + np.pi / 2) % np.pi - np.pi / 2) > angle_threshold:
        return 0.0
    rr1, cc1 = polygon(a[:, 0], a[:, 1])
    rr2, cc2 = polygon(b[:, 0], b[:, 1])
    if not (rr1.size and rr2.size):
        return 0.0
    canvas = np.zeros((max(rr1.max(), rr2.max()) + 1, max(cc1.max(), cc2.max()) + 1))
    canvas[rr1, cc1] += 1
    canvas[rr2, cc2] += 1
    union = np.sum(canvas > 0)
    return float(np.sum(canvas == 2) / union) if union else 0.0


def reference_success(maps: np.ndarray, gt: np.ndarray, width_scale: float) -> bool:
    """The GG-CNN evaluation of one image's raw 4 x H x W maps against N x 4 x 2 rectangles."""
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian

    q = gaussian(maps[0], 2.0, preserve_range=True)
    ang = gaussian(np.arctan2(maps[2], maps[1]) / 2.0, 2.0, preserve_range=True)
    width = gaussian(maps[3] * width_scale, 1.0, preserve_range=True)
    for r, c in peak_local_max(q, min_distance=20, threshold_abs=0.2, num_peaks=1):
        length = float(width[r, c])
        g = Grasp((r, c), float(ang[r, c]), length, length / 2).as_gr.points
        if max((reference_iou(g, rect) for rect in gt), default=0.0) > 0.25:
            return True
    return False


# --- the comparison ----------------------------------------------------------------------------
def network_maps(checkpoint: str, n: int, batch: int = 16) -> tuple[np.ndarray, list[np.ndarray]]:
    """Raw maps (N x 4 x H x W float32) and ground truth of the first ``n`` benchmark images."""
    model, ckpt = load_model(checkpoint)
    model.eval()
    size = int(ckpt.get("args", {}).get("input_size", 224))
    ds = JacquardDataset(ensure_benchmark(), output_size=size, cache_dir=REPO / "data" / "cache")
    maps, gts = [], []
    with torch.no_grad():
        for start in range(0, min(n, len(ds)), batch):
            items = [ds[i] for i in range(start, min(start + batch, n, len(ds)))]
            b = collate_grasp_batch(items)
            maps.append(model(b["x"]).float().numpy())
            gts.extend(np.asarray(g, dtype=np.float64) for g in b["gt"])
    return np.concatenate(maps), gts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--network", default=str(REPO / "weights" / "ggcnn2_distilled.pt"))
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32, help="images per evaluate_batch call")
    args = p.parse_args()
    torch.set_num_threads(1)
    maps, gts = network_maps(args.network, args.images)
    n, ws = len(maps), WIDTH_SCALE

    t0 = time.perf_counter()
    ref = [reference_success(maps[i], gts[i], ws) for i in range(n)]
    t_ref = (time.perf_counter() - t0) / n

    t0 = time.perf_counter()
    whole = []
    for s in range(0, n, args.batch_size):
        m = maps[s : s + args.batch_size]
        q, ang, wid = post_process_output(m[:, 0], m[:, 1], m[:, 2], m[:, 3], width_scale=ws)
        whole.extend(evaluate_batch(q, ang, wid, gts[s : s + args.batch_size]))
    t_whole = (time.perf_counter() - t0) / n

    t0 = time.perf_counter()
    ours = []
    for s in range(0, n, args.batch_size):
        ours.extend(
            evaluate_raw_batch(maps[s : s + args.batch_size], gts[s : s + args.batch_size], ws)
        )
    t_ours = (time.perf_counter() - t0) / n

    # The reference's pixel-counted IoU on our grasps: the raster error alone.
    raster = []
    for r, gt in zip(ours, gts, strict=True):
        g = r.grasps[0].as_gr.points if r.grasps else None
        raster.append(g is not None and max((reference_iou(g, x) for x in gt), default=0) > 0.25)
    same_full = sum(a == b.success for a, b in zip(ref, ours, strict=True))
    same_raster = sum(a == b.success for a, b in zip(raster, ours, strict=True))
    print(f"{args.network}, {n} benchmark images, {maps.shape[-1]} px maps, 1 thread\n")
    print("| pipeline | ms / image | speed-up | success |")
    print("|---|---:|---:|---:|")
    print(f"| reference (GG-CNN method) | {1000 * t_ref:.2f} | 1.0x | {np.mean(ref):.1%} |")
    for name, t, res in (
        ("ours, whole maps decoded", t_whole, whole),
        ("ours (batched, decoded at the peak, exact IoU)", t_ours, ours),
    ):
        print(f"| {name} | {1000 * t:.2f} | {t_ref / t:.1f}x | "
              f"{np.mean([r.success for r in res]):.1%} |")  # fmt: skip
    same_ours = sum(a.success == b.success for a, b in zip(whole, ours, strict=True))
    iou_gap = max(abs(a.best_iou - b.best_iou) for a, b in zip(whole, ours, strict=True))
    print(
        f"\nSame decision on {same_full}/{n} images for the whole pipelines (they differ by "
        "design: the reference drops peaks within 20 px of the border and smooths the angle "
        "across its wrap); the reference's pixel-counted IoU on our grasps agrees with our exact "
        f"IoU on {same_raster}/{n} (the rest would be raster error near the 0.25 threshold). "
        f"Ours decoded at the peak against whole maps: the same decision on {same_ours}/{n}, "
        f"best IoUs within {iou_gap:.1e}."
    )


if __name__ == "__main__":
    main()
