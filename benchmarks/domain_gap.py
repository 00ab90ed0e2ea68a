"""Domain-gap report: the statistics that decide sim-to-real transfer, folder against folder.

    python benchmarks/domain_gap.py ../shared/data/jacquard_samples \\
        ../shared/data/jacquard_unlabelled data/synthetic/jacquard_v3_n600_s300_seed0
    python benchmarks/domain_gap.py REAL SYNTH --max-views 200 --json gap.json

Every folder is in the Jacquard layout (``<object>/<view>_<object>_perfect_depth.tiff``,
``_stereo_depth.tiff``, ``_mask.png``, optional ``_grasps.txt``). The first folder is the
reference: each other folder's column gives the median [10th, 90th percentile] of a statistic
and, in parentheses, its Kolmogorov-Smirnov distance to the reference (0 = same distribution,
1 = disjoint). Grasp statistics need grasp files (unlabelled folders show "–"). Definitions:
:mod:`utils.domain_gap`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.atomic import atomic_write_json  # noqa: E402
from utils.domain_gap import (  # noqa: E402
    GRASP_STATS,
    VIEW_STATS,
    FolderStatistics,
    folder_statistics,
    ks_distance,
)
from utils.entrypoint import run_main  # noqa: E402


def summary(values: np.ndarray, unit: str) -> str:
    if len(values) == 0:
        return "–"
    lo, med, hi = np.quantile(values, [0.1, 0.5, 0.9])
    digits = 2 if max(abs(lo), abs(hi)) < 10 else 1 if max(abs(lo), abs(hi)) < 100 else 0
    return f"{med:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def report(folders: list[FolderStatistics]) -> tuple[str, dict]:
    """A markdown table (one row per statistic) and the same figures as a dict."""
    ref = folders[0]
    head = [f"{f.name} ({f.views} views, {f.labelled} labelled)" for f in folders]
    lines = [
        "| statistic | unit | " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * len(folders),
    ]
    data: dict = {"folders": [f.name for f in folders], "views": [f.views for f in folders]}
    for key, label, unit in VIEW_STATS + GRASP_STATS:
        cells, entry = [], {}
        for i, f in enumerate(folders):
            vals = f.array(key)
            cell = summary(vals, unit)
            d = ks_distance(ref.array(key), vals) if i else float("nan")
            if i and np.isfinite(d):
                cell += f" ({d:.2f})"
            cells.append(cell)
            entry[f.name] = {
                "n": len(vals),
                "quantiles_10_50_90": np.quantile(vals, [0.1, 0.5, 0.9]).tolist()
                if len(vals)
                else None,
                "ks_to_reference": None if not np.isfinite(d) else d,
            }
        data[key] = entry
        lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines), data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "folders", nargs="+", type=Path, help="Jacquard-layout folders; the first is the reference"
    )
    p.add_argument(
        "--max-views", type=int, default=300, help="views per folder, evenly spaced (default 300)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.max_views < 1:
        p.error(f"--max-views must be >= 1, got {args.max_views}")
    return args


def main(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    folders = []
    for root in args.folders:
        if not root.is_dir():
            raise ValueError(f"{root}: folder not found")
        folders.append(folder_statistics(root, args.max_views))
        names = [f.name for f in folders]
        if len(set(names)) < len(names):  # same folder name twice: use the path
            folders[-1].name = str(root)
    table, data = report(folders)
    print(table)
    print(
        f"\nreference: {folders[0].name}; (d) = Kolmogorov-Smirnov distance to it; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    if args.json:
        atomic_write_json(args.json, data)


if __name__ == "__main__":
    run_main(main, parse_args)
