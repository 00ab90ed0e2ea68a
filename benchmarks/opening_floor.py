"""The smallest opening to decode (``eval_net.py --min-opening``): chosen on a tuning set,
then measured once on held-out sets, paired with the openings as predicted.

    python benchmarks/opening_floor.py RUN [RUN ...] --floors 0 4 6 8 10 12 15

Why: on the parts a few pixels thin the width head's opening at the quality peak falls
below every label's there (it regresses toward the 0 it learns off the grasps), and a grasp
of no opening overlaps nothing: ``eval_net.py`` counts those misses as ``opening short``.

1. **Tuning set**: ``--tune-images`` synthetic images of generator seed ``--tune-seed``
   (neither a training seed nor a held-out set's, the benchmark's or the confirmation set's;
   written once under ``data/benchmark/``). Every run (its ``best.pt``, else ``last.pt``) is
   scored there at each of ``--floors`` (pixels of the network input, so the runs must share
   one input size), and the floor with the best success averaged over the runs is chosen
   (ties: the smallest).
2. **Held out**: the synthetic benchmark and the real development views (``--jacquard``, if
   present), each run at floor 0 and at the chosen floor: the run-averaged difference with a
   95% paired bootstrap interval over the images, and an exact McNemar test per run.

No test-time augmentation. Results are kept in each run folder (``eval_<set>_floor<F>``) and
reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_table import cached_score, chosen_checkpoint  # noqa: E402

from utils.atomic import atomic_write_json  # noqa: E402
from utils.cli import non_negative_float  # noqa: E402
from utils.data.benchmark import HELD_OUT_SEEDS, ensure_benchmark  # noqa: E402
from utils.data.synthetic import (  # noqa: E402
    DEFAULT_VIEWS,
    GENERATOR_VERSION,
    ensure_synthetic_dataset,
)
from utils.entrypoint import run_main  # noqa: E402
from utils.stats import mcnemar_test, paired_bootstrap  # noqa: E402

DEFAULT_JACQUARD = REPO.parent / "shared" / "data" / "jacquard_samples"


def parse_run(text: str) -> Path:
    run = Path(text).expanduser()
    run = run.parent if run.suffix == ".pt" else run
    if not (run / "best.pt").is_file() and not (run / "last.pt").is_file():
        raise argparse.ArgumentTypeError(f"{run}: no best.pt or last.pt (not a run folder)")
    return run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=parse_run, metavar="RUN")
    p.add_argument(
        "--floors", nargs="+", type=non_negative_float, default=[0, 4, 6, 8, 10, 12, 15],
        metavar="PX", help="openings to try, pixels of the network input",
    )  # fmt: skip
    p.add_argument("--tune-seed", type=int, default=1_000_007, help="the tuning set's seed")
    p.add_argument("--tune-images", type=int, default=500, help="images in the tuning set")
    p.add_argument("--jacquard", type=Path, default=DEFAULT_JACQUARD, help="real dev views")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.tune_seed == 0 or args.tune_seed in HELD_OUT_SEEDS:
        p.error(f"--tune-seed {args.tune_seed}: a training seed or a held-out set's")
    sizes = {input_size(r) for r in args.runs}
    if len(sizes) > 1:
        p.error(
            f"the runs take input sizes {sorted(sizes)}: give runs of one size (floors are pixels)"
        )
    return args


def input_size(run: Path) -> int:
    return int(json.loads((run / "args.json").read_text()).get("input_size", 224))


def folder_flags(root: Path, floor: float) -> list[str]:
    flags = ["--dataset", "jacquard", "--dataset-path", str(root), "--part", "all"]
    return flags + ["--min-opening", f"{floor:g}"]


def successes(runs: list[Path], root: Path, name: str, floor: float) -> np.ndarray:
    """runs x images success matrix at ``floor`` (every run scored on the same images)."""
    rows, ids = [], None
    for run in runs:
        r = cached_score(run, f"eval_{name}_floor{floor:g}", folder_flags(root, floor))
        per = r["per_image"]
        if ids is not None and per["ids"] != ids:
            raise RuntimeError(f"{root}: runs scored different images")
        ids = per["ids"]
        rows.append(np.asarray(per["successes"], dtype=bool))
    return np.stack(rows)


def main(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    tune = ensure_synthetic_dataset(
        REPO / "data" / "benchmark"
        / f"tuning_v{GENERATOR_VERSION}_n{args.tune_images}_seed{args.tune_seed}",
        n_scenes=args.tune_images, size=300, seed=args.tune_seed, views=DEFAULT_VIEWS,
        replace=False,
    )  # fmt: skip
    size = input_size(args.runs[0])
    print(f"\nTuning set ({args.tune_images} images, seed {args.tune_seed}), {size} px input:")
    print("| floor (px) | " + " | ".join(r.name for r in args.runs) + " | mean |")
    print("|---:|" + "---:|" * (len(args.runs) + 1))
    tuned = {}
    for floor in args.floors:
        ok = successes(args.runs, tune, tune.name, floor)
        tuned[floor] = float(ok.mean())
        cells = [f"{100 * x:.1f}%" for x in ok.mean(axis=1)]
        print(f"| {floor:g} | " + " | ".join(cells) + f" | {100 * tuned[floor]:.1f}% |")
    best = max(tuned.values())
    chosen = min(f for f, v in tuned.items() if v == best)
    print(f"chosen: {chosen:g} px")
    held = {"synthetic benchmark": ensure_benchmark()}
    if args.jacquard.is_dir():
        held["real dev views"] = args.jacquard
    else:
        print(f"{args.jacquard}: not found, real dev views skipped")
    print(
        f"\n| set | images | floor 0 | floor {chosen:g} | difference [95% CI] | McNemar per run |"
    )
    print("|---|---:|---:|---:|---:|---|")
    out: dict = {"tuning": tuned, "chosen": chosen, "held_out": {}}
    for name, root in held.items():
        base = successes(args.runs, root, root.name, 0.0)
        new = successes(args.runs, root, root.name, chosen)
        d, lo, hi = paired_bootstrap(base.mean(axis=0), new.mean(axis=0))
        tests = [mcnemar_test(n, b) for n, b in zip(new, base, strict=True)]
        mc = ", ".join(f"+{t['a_only']}/-{t['b_only']} p={t['p']:.2g}" for t in tests)
        print(
            f"| {name} | {base.shape[1]} | {100 * base.mean():.1f}% | {100 * new.mean():.1f}% | "
            f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | {mc} |"
        )
        out["held_out"][name] = {
            "floor0": float(base.mean()), "chosen": float(new.mean()), "diff": d,
            "ci95": [lo, hi], "per_run": [[float(b.mean()), float(n.mean())]
                                          for b, n in zip(base, new, strict=True)],
            "mcnemar": tests,
        }  # fmt: skip
    print(
        f"\n{len(args.runs)} runs ({', '.join(chosen_checkpoint(r).name for r in args.runs)}), "
        f"no TTA; {time.perf_counter() - t0:.0f} s"
    )
    if args.json:
        atomic_write_json(args.json, {**out, "runs": [str(r) for r in args.runs]})
    return out


if __name__ == "__main__":
    run_main(main, parse_args)
