"""Time to load one dataset item: first read (decode, inpaint, fill the cache) against cached.

    python benchmarks/loader_speed.py                     # real Jacquard samples, 300 px
    python benchmarks/loader_speed.py --dataset-path DIR --size 224 --no-rgb

Prints a markdown table of median milliseconds per item, with and without augmentation, and
the ratio of cold to cached in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.data import JacquardDataset  # noqa: E402


def median_ms(dataset: JacquardDataset) -> float:
    times = []
    for i in range(len(dataset)):
        t0 = time.perf_counter()
        dataset[i]
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset-path", default=str(REPO.parent / "shared/data/jacquard_samples"))
    p.add_argument("--size", type=int, default=300)
    p.add_argument("--no-rgb", action="store_true", help="depth only")
    args = p.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    print(f"{args.dataset_path}, {args.size} px, depth{'' if args.no_rgb else ' + RGB'}, 1 thread")
    print()
    print("| augmentation | first read (ms) | cached (ms) | cold / cached |")
    print("|---|---:|---:|---:|")
    for augment in (False, True):
        with tempfile.TemporaryDirectory() as cache:
            ds = JacquardDataset(
                args.dataset_path,
                output_size=args.size,
                use_rgb=not args.no_rgb,
                random_rotate=augment,
                random_zoom=augment,
                cache_dir=cache,
            )
            cold, cached = median_ms(ds), median_ms(ds)
        name = "rotation + zoom" if augment else "none"
        print(f"| {name} | {cold:.1f} | {cached:.1f} | {cold / cached:.1f}x |")


if __name__ == "__main__":
    main()
