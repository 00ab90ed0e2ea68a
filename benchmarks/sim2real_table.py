"""RESULTS.md's sim-to-real table: networks trained on synthetic data only, scored on real views.

    python benchmarks/sim2real_table.py --seeds 3                    # train what is missing
    python benchmarks/sim2real_table.py --seeds 3 --no-train         # print finished runs
    python benchmarks/sim2real_table.py --networks ggcnn2 --recipes v3 v3-table --seeds 1
    python benchmarks/sim2real_table.py --networks ggcnn2 --recipes v3-table v3-table-kd3 --ensembles
    python benchmarks/sim2real_table.py --networks ggcnn2 --recipes v4-table v4-table-gwidth \
        --min-opening 10          # every score decoded with eval_net.py --min-opening 10

Rows: (network, recipe) over seeds 0..N-1, with the results table's flags and epochs
(``results_table.MODELS``). Recipes (:data:`RECIPES`): ``v2`` is the results table's own runs
(``runs/results_table``, generator v2, never trained here); the others train on the built-in
synthetic set of the current generator with extra flags; ``v3-table-kd3`` runs are students
(``distill.py``) of the ensemble of the network's three ``v3-table`` runs, which it trains
first if missing (``v3-table-kd3-ggcnn2``: of GG-CNN2's). ``--ensembles``: each row's runs
also scored as one model (the mean of their maps). Every run's ``best.pt`` (picked on
its validation part) is scored, without test-time augmentation, on the real Jacquard views
of ``--jacquard-path`` (a development set: the generator's design looked at them), on the
synthetic benchmark set of the current generator, on the v3 one (when its folder exists)
and on the v2 benchmark (when its folder exists; ``--v2-benchmark``: for the current
generator's runs too), beside the mask-centroid rule. A recipe's ``v<N>`` prefix is the
generator it trains on: runs of another generator than this checkout's are only listed. The paired column: the recipe's seed-averaged
success on the real views minus the ``v2`` row's of the same network, with a 95% bootstrap
interval over the views (it resamples views, not seeds). Recipes are also paired with the
network's first recipe listed, by seed, on the real views and on today's benchmark images.
``--min-opening PX`` scores every run (and ensemble) with openings decoded at least PX pixels
(kept in the run folder under ``opening_floor.py``'s names, so each reuses the other's).
Each row's dev-view figure also gets a 95% bootstrap interval over the views, and today's
benchmark images are counted by ``eval_net.py``'s outcome (hit or why it missed) over the runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_table import (  # noqa: E402
    JACQUARD_SAMPLES,
    V2_BENCHMARK,
    baseline,
    benchmark_report,
    cached_score,
    mean_rate,
    newest_run,
    paired_successes,
    real_flags,
    real_result,
    train,
)

import distill  # noqa: E402
from utils.atomic import atomic_write_json  # noqa: E402
from utils.cli import non_negative_float  # noqa: E402
from utils.data.benchmark import BENCHMARK_IMAGES  # noqa: E402
from utils.data.synthetic import (  # noqa: E402
    GENERATOR_VERSION,
    default_root,
    ensure_synthetic_dataset,
)
from utils.evaluation import OUTCOMES  # noqa: E402
from utils.stats import bootstrap_mean, paired_bootstrap  # noqa: E402

#: Unlabelled synthetic scenes for the distilled recipes (seed 1: no object of the training set).
EXTRA_N, EXTRA_SEED = 1400, 1
EXTRA_SCENES = default_root("jacquard", EXTRA_N, 300, EXTRA_SEED)
#: Optimiser steps an epoch of the default set (490 training images, batch 8): recipes with
#: more images keep the runs' step budget.
STEPS = "61"
#: Network -> its name in ``results_table.MODELS``.
NETWORKS = {"ggcnn2": "ggcnn2", "pspnet-r18": "pspnet-r18-ppm"}
#: Recipe -> extra train_net flags (None: the results table's v2 runs, not trained here).
RECIPES: dict[str, list[str] | None] = {
    "v2": None,
    "v3": ["--depth-norm", "mean", "--depth-aug", "0"],
    "v3-table": ["--depth-norm", "table", "--depth-aug", "0"],
    "v3-table-aug": ["--depth-norm", "table", "--depth-aug", "1"],
    # 2,000 scenes instead of 600 (about 1,630 training objects instead of 490) for the same
    # optimiser steps: 61 batches an epoch, the default set's one pass.
    "v3-table-2k": (
        ["--depth-norm", "table", "--depth-aug", "0"]
        + ["--synthetic-scenes", "2000", "--batches-per-epoch", STEPS]
    ),
    # distill.py: the network taught by the ensemble of its v3-table runs (seeds 0-2, the
    # mean of their maps) on the labelled training part and on 1,400 more synthetic scenes
    # without labels (another seed: other objects), for the same optimiser steps.
    "v3-table-kd3": (
        ["--depth-norm", "table", "--depth-aug", "0", "--batches-per-epoch", STEPS]
        + ["--unlabeled-path", str(EXTRA_SCENES)]
    ),
}
# Generator v4 (floating parts labelled), today's defaults.
RECIPES["v4-table"] = RECIPES["v3-table"]
# The same, taught by GG-CNN2's three v3-table runs whatever the student.
RECIPES["v3-table-kd3-ggcnn2"] = RECIPES["v3-table-kd3"]
# The same students for twice the optimiser steps: do they come closer to their teachers?
RECIPES["v3-table-kd3-long"] = RECIPES["v3-table-kd3"] + ["--epochs", "30"]
#: Students of an ensemble: recipe -> (the teachers' network, None: the student's own; their
#: recipe; how many of its seeds teach).
TEACHERS: dict[str, tuple[str | None, str, int]] = {
    "v3-table-kd3": (None, "v3-table", 3),
    "v3-table-kd3-ggcnn2": ("ggcnn2", "v3-table", 3),
}
TEACHERS["v3-table-kd3-long"] = TEACHERS["v3-table-kd3"]
# The same students on generator v4, taught by v4-table runs.
RECIPES["v4-table-kd3"] = RECIPES["v3-table-kd3"]
RECIPES["v4-table-kd3-ggcnn2"] = RECIPES["v3-table-kd3"]
TEACHERS["v4-table-kd3"] = (None, "v4-table", 3)
TEACHERS["v4-table-kd3-ggcnn2"] = ("ggcnn2", "v4-table", 3)
# The same student at output stride 8 (28 x 28 features at 224 px instead of 14 x 14, 3.2x
# the FLOPs): thin rungs and legs a few pixels apart need finer maps than stride 16 gives.
RECIPES["v4-table-kd3-ggcnn2-os8"] = RECIPES["v3-table-kd3"] + ["--output-stride", "8"]
TEACHERS["v4-table-kd3-ggcnn2-os8"] = TEACHERS["v4-table-kd3-ggcnn2"]
# GG-CNN2 taught by those stride-8 PSPNet-ResNet18 students (the recipe that reached 90% of
# the dev views for PSPNet), the same data and steps as v4-table-kd3.
RECIPES["v4-table-kd3-psp-os8"] = RECIPES["v3-table-kd3"]
TEACHERS["v4-table-kd3-psp-os8"] = ("pspnet-r18", "v4-table-kd3-ggcnn2-os8", 3)
# Angle and opening learnt on the grasp pixels only (--map-loss grasp): thin parts' drawn
# grasps are 1-2 px wide, and learning 0 around them pulls their openings towards 0.
RECIPES["v4-table-gmask"] = RECIPES["v3-table"] + ["--map-loss", "grasp"]
RECIPES["v4-table-gwidth"] = RECIPES["v3-table"] + ["--map-loss", "width"]
# Twice the epochs (30, the cosine plan stretched to them): the results table's 15-epoch
# GG-CNN2 is below its plateau (benchmarks/epoch_curve.py: +5 to 8 points by epoch 25-35 on v2).
RECIPES["v4-table-long"] = RECIPES["v3-table"] + ["--epochs", "30"]
# GG-CNN's own input size (the frames' 300 px, not resized to 224): thin rungs and legs 1.34x
# wider in pixels, 1.8x the compute.
RECIPES["v4-table-300"] = RECIPES["v3-table"] + ["--input-size", "300"]
CUR_BENCHMARK = REPO / "data" / "benchmark" / f"synthetic_v{GENERATOR_VERSION}_n{BENCHMARK_IMAGES}"
#: The v3 generator's benchmark, for runs of a later generator: does their figure fall there?
V3_BENCHMARK = REPO / "data" / "benchmark" / f"synthetic_v3_n{BENCHMARK_IMAGES}"


def recipe_generator(recipe: str) -> int:
    """The generator version a recipe's runs train on: its name's ``v<N>`` prefix."""
    return int(recipe.split("-")[0][1:])


def folder_flags(root: Path) -> list[str]:
    return ["--dataset", "jacquard", "--dataset-path", str(root), "--part", "all"]


def find_run(net: str, recipe: str, seed: int, outdir: Path, results_dir: Path, train_ok: bool):
    if RECIPES[recipe] is None:
        # never a teacher; scored from the results table's cached scores
        return newest_run(results_dir, f"{NETWORKS[net]}_s{seed}")
    desc = f"{recipe}_{net}_s{seed}"
    run = newest_run(outdir, desc, weights=True)
    if run is not None or not train_ok:
        return run
    if recipe_generator(recipe) != GENERATOR_VERSION:
        print(f"{desc}: trains on generator v{recipe_generator(recipe)}, this checkout's is "
              f"v{GENERATOR_VERSION}: not trained here (check out a commit of that generator)")  # fmt: skip
        return None
    if recipe not in TEACHERS:
        return train(NETWORKS[net], seed, outdir, RECIPES[recipe], desc=desc)
    teacher_net, taught_by, n = TEACHERS[recipe]
    teachers = [
        find_run(teacher_net or net, taught_by, s, outdir, results_dir, train_ok) for s in range(n)
    ]
    ensure_synthetic_dataset(EXTRA_SCENES, n_scenes=EXTRA_N, seed=EXTRA_SEED)
    flags = [*RECIPES[recipe], "--teacher", *(str(t / "best.pt") for t in teachers)]
    return train(NETWORKS[net], seed, outdir, flags, script=distill, desc=desc)


def floor_flags(min_opening: float) -> list[str]:
    """eval_net flags for openings decoded at least ``min_opening`` px (none for 0)."""
    return ["--min-opening", f"{min_opening:g}"] if min_opening else []


def floor_name(name: str, min_opening: float) -> str:
    """A cached score's folder name; with a floor, ``opening_floor.py``'s, so both reuse it."""
    return f"{name}_floor{min_opening:g}" if min_opening else name


def row(run: Path, jacquard: Path | None, v2_benchmark: bool = False, min_opening: float = 0.0):
    """A run's scores: real views, and the benchmarks of today's generator, v3 and v2 (where
    their folders are), as ``[correct, images]``, with per-image successes on the real views
    and today's benchmark (for pairing). ``min_opening`` > 0: every score decoded with
    ``eval_net.py --min-opening`` (scored here, not the training's own benchmark figure)."""
    out = {"run": str(run)}
    if jacquard is not None:
        if min_opening:
            name = floor_name(f"eval_{jacquard.name}", min_opening)
            r = cached_score(run, name, real_flags(jacquard) + floor_flags(min_opening))
        else:
            r = real_result(run, jacquard)
        out["real"] = [r["correct"], r["images"]]
        out["real_per_image"] = r["per_image"]
        out["real_failed"] = r["failed"]
    try:  # the training's own benchmark figures, scored again if decoded otherwise than today
        trained = {} if min_opening else benchmark_report(run)
    except RuntimeError:  # trained without a benchmark
        trained = {}
    for key, version, root in (
        ("bench_cur", GENERATOR_VERSION, CUR_BENCHMARK),
        ("bench_v3", 3, V3_BENCHMARK),
        ("bench_v2", 2, V2_BENCHMARK),
    ):
        if trained.get("scored") == f"synthetic benchmark v{version} ({BENCHMARK_IMAGES} images)":
            out[key] = [trained["summary"]["correct"], trained["summary"]["images"]]
            per_image = trained["per_image"]
        elif root.is_dir() and (key != "bench_v2" or v2_benchmark):  # another version's
            name = floor_name(f"eval_{root.name}", min_opening)
            r = cached_score(run, name, folder_flags(root) + floor_flags(min_opening))
            out[key] = [r["correct"], r["images"]]
            per_image = r["per_image"]
        else:
            continue
        if key == "bench_cur":
            out["bench_cur_per_image"] = {k: per_image[k] for k in ("ids", "successes")}
            if "outcomes" in per_image:  # eval_net's reason for each image's hit or miss
                out["bench_cur_outcomes"] = dict(Counter(per_image["outcomes"]))
    return out


def print_ensembles(
    table: dict, jacquard: Path | None, outdir: Path, min_opening: float = 0.0
) -> None:
    """Each row's runs as one model (the mean of their maps), on the real views and the
    current benchmark (openings decoded at least ``min_opening`` px)."""
    print(f"\n| network | recipe | ensemble of the seeds' runs: real dev views [95% CI] | "
          f"synthetic benchmark v{GENERATOR_VERSION} [95% CI] | runs |")  # fmt: skip
    print("|---|---|---:|---:|---:|")
    for net, recipes in table.items():
        for recipe, rows in recipes.items():
            if len(rows) < 2:
                continue
            runs = [Path(r["run"]) for r in rows]
            where = outdir / "ensembles" / floor_name(f"{recipe}_{net}_{len(runs)}", min_opening)
            cells = []
            for root in (jacquard, CUR_BENCHMARK):
                if root is None or not root.is_dir():
                    cells.append("–")
                    continue
                flags = folder_flags(root) + floor_flags(min_opening)
                r = cached_score(runs, root.name, flags, out=where / root.name)
                lo, hi = r["success_ci95"]
                cells.append(
                    f"{100 * r['success_rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] "
                    f"({r['correct']}/{r['images']})"
                )
            print(f"| {net} | {recipe} | " + " | ".join(cells) + f" | {len(runs)} |")


def seed_averaged_real(rows: list[dict]) -> tuple[list[str], np.ndarray]:
    """(view ids, each view's success averaged over the rows' runs) on the real views."""
    ids = rows[0]["real_per_image"]["ids"]
    if any(r["real_per_image"]["ids"] != ids for r in rows):
        raise RuntimeError("runs scored different real views")
    return ids, np.mean([r["real_per_image"]["successes"] for r in rows], axis=0)


def interval_cell(successes: list[float] | np.ndarray) -> str:
    """``[low, high]`` in percent: the 95% bootstrap interval of a success rate over its views
    (the views' spread, not the seeds': 18 views of 4 objects, so it is optimistic where views
    of one object fail together)."""
    _, lo, hi = bootstrap_mean(successes)
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def paired_real(a: list[dict], b: list[dict]) -> tuple[float, float, float]:
    """Seed-averaged success on the real views, b minus a, with a bootstrap interval."""
    ids_a, sa = seed_averaged_real(a)
    ids_b, sb = seed_averaged_real(b)
    if ids_a != ids_b:
        raise RuntimeError("runs scored different real views")
    return paired_bootstrap(sa, sb)


def against_first(table: dict[str, dict[str, list[dict]]], usable=bool):
    """``(net, first, name, first_rows, rows)`` for each recipe of a network against the first
    one listed, among the recipes whose rows are ``usable``."""
    for net, recipes in table.items():
        names = [k for k, v in recipes.items() if v and usable(v)]
        for name in names[1:]:
            yield net, names[0], name, recipes[names[0]], recipes[name]


def print_pairs(title: str, lines: list[str]) -> None:
    if lines:
        print(f"\n{title}:")
        print("\n".join(lines))


def print_real_pairs(table: dict[str, dict[str, list[dict]]]) -> None:
    """Each recipe against the first one listed of its network on the real views: the
    seed-averaged success per view, paired (bootstrap over the views)."""
    lines = []
    for net, first_name, name, first, rows in against_first(
        table, lambda v: all("real" in r for r in v)
    ):
        d, lo, hi = paired_real(first, rows)
        lines.append(
            f"- {net} {name} - {first_name}: {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] "
            f"points ({len(first)} and {len(rows)} seeds)"
        )
    print_pairs("real dev views, paired against the first recipe (bootstrap over the views)", lines)


def print_benchmark_pairs(table: dict[str, dict[str, list[dict]]]) -> None:
    """Each recipe against the first one listed of its network, paired by seed on the images
    of today's benchmark (``results_table.paired_successes``)."""
    lines = []
    for net, first_name, name, first, rows in against_first(table):
        a = {r["seed"]: r for r in first if "bench_cur_per_image" in r}
        b = {r["seed"]: r for r in rows if "bench_cur_per_image" in r}
        seeds = sorted(a.keys() & b.keys())
        if not seeds:
            continue

        def successes(r: dict) -> tuple[list[str], list[bool]]:
            return r["bench_cur_per_image"]["ids"], r["bench_cur_per_image"]["successes"]

        t = paired_successes([successes(a[s]) for s in seeds], [successes(b[s]) for s in seeds])
        per_seed = ", ".join(f"+{x['b_only']}/-{x['a_only']} (p = {x['p']:.2g})"
                             for x in t["per_seed"])  # fmt: skip
        lines.append(
            f"- {net} {name} - {first_name}: {100 * t['diff']:+.1f} [{100 * t['ci95'][0]:+.1f}, "
            f"{100 * t['ci95'][1]:+.1f}] points; McNemar per seed {per_seed}"
        )
    print_pairs("benchmark, paired by seed against the first recipe (bootstrap over images)", lines)


def print_benchmark_outcomes(table: dict[str, dict[str, list[dict]]]) -> None:
    """Today's benchmark images by ``eval_net.py``'s outcome, summed over each row's runs."""
    rows = [(net, recipe, rs) for net, recipes in table.items() for recipe, rs in recipes.items()
            if rs and all("bench_cur_outcomes" in r for r in rs)]  # fmt: skip
    if not rows:
        return
    print(f"\nsynthetic benchmark v{GENERATOR_VERSION}, images by outcome summed over the runs:")
    print("| network | recipe | runs | " + " | ".join(OUTCOMES) + " |")
    print("|---|---|---:|" + "---:|" * len(OUTCOMES))
    for net, recipe, rs in rows:
        counts = [sum(r["bench_cur_outcomes"].get(k, 0) for r in rs) for k in OUTCOMES]
        print(f"| {net} | {recipe} | {len(rs)} | " + " | ".join(f"{n:,}" for n in counts) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--outdir", default=str(REPO / "runs" / "sim2real"))
    p.add_argument("--results-dir", default=str(REPO / "runs" / "results_table"),
                   help="where the results table's (v2) runs are")  # fmt: skip
    p.add_argument("--no-train", action="store_true", help="print finished runs only")
    p.add_argument("--jacquard-path", default=str(JACQUARD_SAMPLES))
    p.add_argument("--json", default=None)
    p.add_argument(
        "--ensembles",
        action="store_true",
        help="also score each row's runs as one model, the mean of their maps (eval_net.py "
        "--ensemble), on the real views and the current benchmark",
    )
    p.add_argument(
        "--min-opening",
        type=non_negative_float,
        default=0.0,
        metavar="PX",
        help="score every run with openings decoded at least PX pixels of the network input "
        "(eval_net.py --min-opening; default 0: as predicted)",
    )
    p.add_argument(
        "--v2-benchmark",
        action="store_true",
        help="also score runs of the current generator on the v2 benchmark (2,000 more images)",
    )
    args = p.parse_args()
    t0 = time.perf_counter()
    jacquard = Path(args.jacquard_path) if Path(args.jacquard_path).is_dir() else None
    outdir, results_dir = Path(args.outdir), Path(args.results_dir)
    table: dict[str, dict[str, list[dict]]] = {}
    for net in args.networks:
        for recipe in args.recipes:
            rows = []
            for seed in range(args.seeds):
                run = find_run(net, recipe, seed, outdir, results_dir, not args.no_train)
                if run is None:
                    print(f"{recipe} {net} seed {seed}: no finished run, left out")
                    continue
                try:
                    rows.append(
                        {"seed": seed, **row(run, jacquard, args.v2_benchmark, args.min_opening)}
                    )
                except RuntimeError as e:  # a run restored from its record lacks a score
                    print(f"{recipe} {net} seed {seed}: {e}; left out")
                    continue
                if args.json:
                    atomic_write_json(args.json, table | {net: table.get(net, {}) | {recipe: rows}})
            table.setdefault(net, {})[recipe] = rows

    cur = f"synthetic benchmark v{GENERATOR_VERSION}"
    if args.min_opening:
        print(f"\nopenings decoded at least {args.min_opening:g} px (eval_net.py --min-opening)")
    print(f"\n| network | training data, recipe | real Jacquard dev views, no TTA: mean ± std | "
          f"per seed | real: 95% CI over views | real: minus v2 [95% CI] | {cur} | synthetic benchmark v3 | "
          f"synthetic benchmark v2 | seeds |")  # fmt: skip
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    if jacquard is not None:
        from utils.data import JacquardDataset

        base = baseline(ds := JacquardDataset(jacquard, output_size=224), list(range(len(ds))))
        print(f"| mask-centroid rule | – | {100 * base.success_rate:.1f}% | "
              f"{sum(base.successes)}/{len(base)} | {interval_cell(base.successes)} | – | – | "
              f"– | – | – |")  # fmt: skip
    for net, recipes in table.items():
        for recipe, rows in recipes.items():
            if not rows:
                continue
            real = [r["real"] for r in rows if "real" in r]
            v2 = recipes.get("v2") or []
            diff = "–"
            if recipe != "v2" and real and len(v2) == len(rows):
                d, lo, hi = paired_real(v2, rows)
                diff = f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            cells = [
                mean_rate(real)[0] if real else "–",
                ", ".join(f"{k}/{n}" for k, n in real) or "–",
                interval_cell(seed_averaged_real(rows)[1])
                if all("real_per_image" in r for r in rows) else "–",
                diff,
                *(mean_rate([r[k] for r in rows])[0] if all(k in r for r in rows) else "–"
                  for k in ("bench_cur", "bench_v3", "bench_v2")),
            ]  # fmt: skip
            print(f"| {net} | {recipe} | " + " | ".join(cells) + f" | {len(rows)} |")
    print_real_pairs(table)
    print_benchmark_pairs(table)
    print_benchmark_outcomes(table)
    if args.ensembles:
        print_ensembles(table, jacquard, outdir, args.min_opening)
    if jacquard is not None:
        print("\nreal views missed (<view>_<object>) per run:")
        for net, recipes in table.items():
            for recipe, rows in recipes.items():
                for r in rows:
                    print(
                        f"- {net} {recipe} seed {r['seed']}: {', '.join(r['real_failed']) or 'none'}"
                    )
    print(f"\nwhole table: {(time.perf_counter() - t0) / 60:.1f} min")
    if args.json:
        atomic_write_json(args.json, table)


if __name__ == "__main__":
    main()
