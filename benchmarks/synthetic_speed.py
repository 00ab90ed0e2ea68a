"""Speed and label statistics of the synthetic dataset generator (one process, one core).

    python benchmarks/synthetic_speed.py [--n 1000] [--size 300] [--formats jacquard cornell]
        [--stats-scenes 100] [--keep DIR]

For each format, times ``generate_dataset`` end to end (rendering, labelling and writing every
file) into a temporary folder and prints a markdown table: images, seconds, ms per image,
images per second and disk size. Then prints label statistics over ``--stats-scenes`` freshly
generated Jacquard-size scenes: grasps per object (before jaw sizes), rectangles per image,
share of objects with at least one grasp, and the share of mask pixels covered by the GG-CNN
quality target (the middle third of every rectangle, drawn with ``GraspRectangles.draw``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.data.synthetic import frame_shape, generate_dataset, generate_scene  # noqa: E402


def _disk_mb(root: Path) -> float:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6


def time_formats(formats: list[str], n: int, size: int | None, keep: Path | None) -> list[str]:
    rows = [
        "| format | frame | images | seconds | ms / image | images / s | disk (MB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fmt in formats:
        px = size if size is not None else (300 if fmt == "jacquard" else 480)
        shape = frame_shape(fmt, px)
        base = Path(tempfile.mkdtemp(prefix="synthetic_speed_", dir=keep))
        out = base / fmt
        t0 = time.perf_counter()
        generate_dataset(out, fmt, n, seed=0, size=px)
        dt = time.perf_counter() - t0
        rows.append(
            f"| {fmt} | {shape[0]}x{shape[1]} | {n} | {dt:.1f} | {1e3 * dt / n:.1f} | "
            f"{n / dt:.0f} | {_disk_mb(out):.0f} |"
        )
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return rows


def label_stats(n_scenes: int, size: int) -> list[str]:
    per_object, rects, covered, grasped = [], [], [], []
    for i in range(n_scenes):
        scene = generate_scene(np.random.default_rng([12345, i]), size)
        labels = scene.grasp_labels
        counts = np.bincount(labels.objects, minlength=len(scene.objects) + 1)[1:]
        per_object.extend(counts.tolist())
        grasped.extend((counts > 0).tolist())
        rects.append(len(scene.grasps))
        q, _, _ = scene.grasps.draw(scene.mask.shape)
        if scene.mask.any():
            covered.append(float((q[scene.mask] > 0).mean()))
    po = np.array(per_object)
    return [
        f"Label statistics over {n_scenes} scenes ({size} px, {len(po)} objects):",
        "",
        "| statistic | value |",
        "| --- | --- |",
        f"| grasps per object (mean / median / 10th-90th pct) | {po.mean():.0f} / "
        f"{np.median(po):.0f} / {np.percentile(po, 10):.0f}-{np.percentile(po, 90):.0f} |",
        f"| objects with at least one grasp | {100 * np.mean(grasped):.0f} % |",
        f"| rectangles per image (all jaw sizes), mean | {np.mean(rects):.0f} |",
        f"| mask pixels inside the quality target, mean | {100 * np.mean(covered):.0f} % |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images per format")
    parser.add_argument("--size", type=int, default=None, help="frame rows (300 / 480 default)")
    parser.add_argument(
        "--formats", nargs="+", default=["jacquard"], choices=("jacquard", "cornell")
    )
    parser.add_argument("--stats-scenes", type=int, default=100)
    parser.add_argument("--keep", type=Path, default=None, help="write datasets here and keep them")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)  # one core: OpenCV would otherwise spread some calls over threads
    print(f"CPU: {os.cpu_count()} logical cores visible, one used (cv2.setNumThreads(1))")
    print()
    print("\n".join(time_formats(args.formats, args.n, args.size, args.keep)))
    if args.stats_scenes > 0:
        print()
        print("\n".join(label_stats(args.stats_scenes, args.size or 300)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
