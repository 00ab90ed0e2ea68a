"""Time to load one dataset item: first read, cached, and cached as before the vectorised
target drawing and the parsed-grasp cache.

    python benchmarks/loader_speed.py                     # real Jacquard samples + synthetic
    python benchmarks/loader_speed.py --dataset-path DIR --size 224 --no-rgb

Prints a markdown table of median milliseconds per item, per dataset and augmentation:
*first read* (decode, inpaint, fill the cache), *cached* (what every later epoch costs), and
*cached, previous path* (the grasp file parsed on every read, one polygon fill per rectangle
and every line of a grasp with several jaw sizes filled:
``utils.grasp.draw_one_at_a_time``, the angle maps' cos and sin over every pixel), with the
ratios measured in the same run, and how many items' target maps the two paths make
identically (a random rotation and zoom each). One thread, as in a DataLoader worker.

``--stages``: then where a cached training item's time goes, with the training defaults
(depth only, table-relative depth, random rotation and zoom): the view's matrix, the depth
image read from the cache and warped, its normalisation (the table plane's fit), the target
maps; median ms per stage over the items, and of each item timed whole (share of it); then
per item of 8 made together, as the training loader makes a batch (``GraspDataset.views``):
their targets, drawn in one pass, and the whole items.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import utils.data.base as base  # noqa: E402
from utils.cli import DEFAULT_DEPTH_NORM  # noqa: E402
from utils.data import JacquardDataset  # noqa: E402
from utils.data.base import GraspDataset  # noqa: E402
from utils.data.synthetic import DEFAULT_N_SCENES, ensure_synthetic_dataset  # noqa: E402
from utils.depth import normalise_depth  # noqa: E402
from utils.grasp import draw_one_at_a_time, stacked_targets  # noqa: E402


def median_ms(dataset: JacquardDataset, n: int) -> float:
    times = []
    for i in range(min(n, len(dataset))):
        t0 = time.perf_counter()
        dataset[i]
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def encode_whole_maps(quality, angle, opening, width_scale):
    """The previous target encoding: trigonometry over every pixel of the map."""
    on = quality > 0
    return np.stack([quality, np.cos(2 * angle) * on, np.sin(2 * angle) * on,
                     np.clip(opening, 0.0, width_scale) / width_scale * on]).astype(np.float32)  # fmt: skip


@contextlib.contextmanager
def previous_path():
    """Items made as before: grasps re-parsed on every read, one fill per rectangle, the
    angle maps encoded over every pixel (the depth normalisation is today's on both paths)."""
    grasps, targets = GraspDataset.grasps, base.stacked_targets
    GraspDataset.grasps = lambda self, idx: self.load_grasps(idx)  # type: ignore[method-assign]
    base.stacked_targets = lambda gts, shape, width_scale, runs=None: np.stack(
        [encode_whole_maps(*draw_one_at_a_time(g, shape), width_scale) for g in gts]
    )
    try:
        yield
    finally:
        GraspDataset.grasps, base.stacked_targets = grasps, targets  # type: ignore[method-assign]


def same_targets(dataset: JacquardDataset, n: int) -> int:
    """How many of ``n`` items (one random view each, the same on both paths) have target maps
    identical to the previous path's."""
    rng = np.random.default_rng(0)
    same = 0
    for i in range(n):
        rot, zoom = float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(0.5, 1.0))
        now = dataset.view(i, rot, zoom)["y"]
        with previous_path():
            before = dataset.view(i, rot, zoom)["y"]
        same += bool(torch.equal(now, before))
    return same


STAGES = ("matrix", "depth read + warp", "depth normalisation", "targets")
#: Per item, made :data:`BATCH` at a time as the training loader does (``GraspDataset.views``).
BATCHED = ("targets, batch of 8", "whole item, batch of 8")
BATCH = 8


def stage_times(dataset: JacquardDataset, n: int, repeats: int = 3) -> dict[str, float]:
    """Median ms per stage of :meth:`GraspDataset.view` (:data:`STAGES`) and of the whole item
    (``"item"``, timed on its own) over ``n`` augmented items, the same view each time, cached;
    and per item of :data:`BATCH` made together (:data:`BATCHED`: the targets, the items)."""
    g = torch.Generator().manual_seed(0)
    views = [(i, *dataset._random_view(g)) for i in range(n)]
    for i, rot, zoom in views:  # fill the cache
        dataset.view(i, rot, zoom)
    times: dict[str, list[float]] = {k: [] for k in (*STAGES, "item", *BATCHED)}
    runs = {i: dataset.grasps(i).jaw_size_runs() for i, _, _ in views}  # once a sample, as view
    size = dataset.output_size
    for _ in range(repeats):
        for i, rot, zoom in views:
            t = [time.perf_counter()]
            grasps = dataset.grasps(i)
            matrix = dataset._matrix(i, rot, zoom, grasps)
            t.append(time.perf_counter())
            depth = dataset._warp(i, "depth", matrix)
            t.append(time.perf_counter())
            normalise_depth(depth, dataset.depth_norm)
            t.append(time.perf_counter())
            grasps.affine(matrix).targets((size, size), dataset.width_scale, runs[i])
            t.append(time.perf_counter())
            dataset.view(i, rot, zoom)
            t.append(time.perf_counter())
            parts = [b - a for a, b in zip(t, t[1:], strict=False)]
            for k, v in zip((*STAGES, "item"), parts, strict=True):
                times[k].append(v)
        for b in range(0, len(views) - BATCH + 1, BATCH):
            chunk = views[b : b + BATCH]
            t = [time.perf_counter()]
            gts = []
            for i, rot, zoom in chunk:
                grasps = dataset.grasps(i)
                gts.append(grasps.affine(dataset._matrix(i, rot, zoom, grasps)))
            t.append(time.perf_counter())
            stacked_targets(gts, (size, size), dataset.width_scale, [runs[i] for i, *_ in chunk])
            t.append(time.perf_counter())
            dataset.views([(i, rot, zoom, None) for i, rot, zoom in chunk])
            t.append(time.perf_counter())
            times[BATCHED[0]].append((t[2] - t[1]) / BATCH)
            times[BATCHED[1]].append((t[3] - t[2]) / BATCH)
    return {k: 1000 * statistics.median(v) for k, v in times.items() if v}  # none: n < BATCH


def print_stages(path: str, size: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as cache:
        ds = JacquardDataset(path, output_size=size, random_rotate=True, random_zoom=True,
                             cache_dir=cache, depth_norm=DEFAULT_DEPTH_NORM)  # fmt: skip
        ms = stage_times(ds, min(n, len(ds)))
    total = ms["item"]
    print(f"| {Path(path).name} | " + " | ".join(
        f"{ms[k]:.2f} ({ms[k] / total:.0%})" for k in STAGES) + f" | {ms['item']:.2f} | "
        + " | ".join(f"{ms[k]:.2f}" if k in ms else "–" for k in BATCHED) + " |",
        flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset-path", nargs="+", default=None,
                   help="Jacquard-layout folders (default: the real samples and the default "
                   "synthetic set)")  # fmt: skip
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--no-rgb", action="store_true", help="depth only")
    p.add_argument("--items", type=int, default=60, help="items timed per dataset")
    p.add_argument("--stages", action="store_true",
                   help="also where a cached training item's time goes (module doc)")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    paths = args.dataset_path or [
        str(REPO.parent / "shared" / "data" / "jacquard_samples"),
        str(ensure_synthetic_dataset(n_scenes=DEFAULT_N_SCENES)),
    ]
    print(f"{args.size} px, depth{'' if args.no_rgb else ' + RGB'}, 1 thread, "
          f"median of {args.items} items")  # fmt: skip
    print()
    print("| dataset | augmentation | rectangles / item | first read (ms) | cached (ms) | "
          "cached, previous path (ms) | previous / now | same targets |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        if not Path(path).is_dir():
            print(f"| {path} | not found, left out |")
            continue
        for augment in (False, True):
            with tempfile.TemporaryDirectory() as cache:
                ds = JacquardDataset(
                    path, output_size=args.size, use_rgb=not args.no_rgb,
                    random_rotate=augment, random_zoom=augment, cache_dir=cache,
                )  # fmt: skip
                n = min(args.items, len(ds))
                cold = median_ms(ds, n)
                now = median_ms(ds, n)
                with previous_path():
                    before = median_ms(ds, n)
                rects = statistics.mean(len(ds.grasps(i)) for i in range(n))
                same = same_targets(ds, n)
            name = "rotation + zoom" if augment else "none"
            print(
                f"| {Path(path).name} | {name} | {rects:.0f} | {cold:.1f} | {now:.1f} | "
                f"{before:.1f} | {before / now:.1f}x | {same}/{n} |",
                flush=True,
            )
    if args.stages:
        print(
            f"\nA cached training item by stage: {args.size} px depth, --depth-norm "
            f"{DEFAULT_DEPTH_NORM}, rotation + zoom, median ms (share of the whole item)\n"
        )
        print("| dataset | " + " | ".join(STAGES) + " | whole item | " + " | ".join(BATCHED)
              + " |")  # fmt: skip
        print("|---|" + "---:|" * (len(STAGES) + 1 + len(BATCHED)))
        for path in paths:
            if Path(path).is_dir():
                print_stages(path, args.size, args.items)


if __name__ == "__main__":
    main()
