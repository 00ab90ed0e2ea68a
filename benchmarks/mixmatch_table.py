"""RESULTS.md's MixMatch table: a few labels against many, on the synthetic benchmark set.

    python benchmarks/mixmatch_table.py --seeds 3                        # train what is missing
    python benchmarks/mixmatch_table.py --seeds 3 --no-train             # print finished runs
    python benchmarks/mixmatch_table.py --networks ggcnn2 --fractions 0.1 --seeds 1
    python benchmarks/mixmatch_table.py --real --seeds 3                 # real unlabelled depth
    python benchmarks/mixmatch_table.py --ablation mixup --networks pspnet-r18-ppm --fractions 0.25
    python benchmarks/mixmatch_table.py --data defaults --more-unlabelled --networks ggcnn2

For each network (``results_table.MODELS`` flags and epochs), labelled fraction and seed, on
the same labelled subset (``--labeled-seed`` = the seed, so the seeds differ in their
subsets as well as their initialisation): *labelled only* (``train_net.py --labeled-fraction``)
and *MixMatch* (``mixmatch_train.py``: the rest of the training part unlabelled), both with
the EMA of the weights and the same optimiser steps as the fully supervised run
(``--batches-per-epoch`` = the full training part's batches), which is the results table's
own run (``--alone-dir``). Paired tests: exact McNemar per seed and a paired bootstrap of the
seed-averaged success on the benchmark's images, MixMatch against labelled only. "Gap
closed": (MixMatch - labelled only) / (fully supervised - labelled only), on the means; "–"
where fully supervised is less than a point above labelled only (no gap to close). Then the
benchmark's images by ``eval_net.py`` outcome (hit, or why it missed), summed over the seeds.

``--data defaults``: every run on today's defaults (this checkout's generator, training set and
benchmark, ``--depth-norm table``) instead of the v2 data; the fully supervised runs are then
trained here too, with the EMA and steps of the other two, so that labels are all that
differ. ``--more-unlabelled``: a third column, MixMatch with 1,400 more synthetic scenes as
unlabelled images (``--unlabeled-path``, another seed: other objects; the distillation
recipes' scenes), paired against labelled only: labels are what costs, images are cheap.

``--real``: GG-CNN2 MixMatch at ``--real-fraction`` with the real unlabelled Jacquard depth
images (``--unlabeled-path``, grasp files withheld) against the same runs without them,
scored on the real development views (18 Jacquard samples); with ``--ablation``, both columns
are that variant, and ``--data``/``--epochs`` apply to both (the runs without real depth are
then the ablation table's own, reused).

``--ablation mixup``: MixMatch with MixUp all but off (``--alpha 0.01``) against MixMatch and
labelled only, same subsets, seeds and steps: does mixing depth images help dense maps?
``--ablation mixup-width`` (with ``--data defaults``): MixMatch with the opening map mixed
linearly, as the paper's MixUp and the v2 runs (``--mixup-width linear``), against the
default quality-weighted mix. ``--ablation sharpen``: the guessed quality left as guessed
(``--t 1``) instead of sharpened at 0.5, which pushes every guess under 0.5 toward 0.
``--ablation cutmix``: boxes cut from the other sample (``--mix cutmix``) instead of MixUp's
blend of two depth scenes. ``--ablation sharpen-cutmix`` / ``sharpen-mixup`` /
``sharpen-lambda10``: unsharpened MixMatch (``--t 1``) with CutMix, without MixUp, or with the
unlabelled term weighted 10 instead of 1. ``--without-mixmatch``: an ablation's variant against
labelled only and fully supervised (trained when missing) without the paper's MixMatch
column, which is then neither trained nor tested (saves a MixMatch run a seed).

``--confirm``: every run of the table scored on the confirmation set instead of the benchmark
(``utils/data/benchmark.py``: 2,000 images of another held-out seed, other objects; generated
on first use, 53 s on a 2-core AMD EPYC with AVX512-BF16), and the same tables printed from
those scores. The variants were chosen by their benchmark scores, which flatters them there;
the confirmation set never took part in a choice. Scores are kept in each run folder
(``eval_confirmation_v<version>_n2000``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import results_table  # noqa: E402  (its SCORING_SET: where the runs are scored)
from results_table import (  # noqa: E402
    JACQUARD_SAMPLES,
    MODELS,
    V2_BENCHMARK,
    V2_TRAINING_SET,
    benchmark_report,
    benchmark_successes,
    mean_rate,
    newest_run,
    paired,
    real_result,
    train,  # noqa: E402
)

import mixmatch_train  # noqa: E402
import train_net  # noqa: E402
from utils.data.benchmark import (  # noqa: E402
    BENCHMARK_IMAGES,
    benchmark_name,
    ensure_confirmation_set,
)
from utils.data.build import dataset_from_args, split_from_args  # noqa: E402
from utils.data.synthetic import (  # noqa: E402
    GENERATOR_VERSION,
    default_root,
    ensure_synthetic_dataset,
)
from utils.evaluation import OUTCOMES  # noqa: E402
from utils.stats import (  # noqa: E402
    gap_closed_interval,
    mcnemar_test,
    mean_std,
    seed_image_difference,
)

REAL_UNLABELLED = REPO.parent / "shared" / "data" / "jacquard_unlabelled"
#: Every run of this table trains and is scored as the results table's fully supervised runs
#: it is compared with were: the generator v2 training set and benchmark, mean depth
#: normalisation (the defaults have since moved to v3 and table normalisation). The v2
#: folders are used as they are (``ensure_synthetic_dataset`` never regenerates a named folder
#: for a newer generator).
V2_DATA = ["--dataset-path", str(V2_TRAINING_SET), "--benchmark-path", str(V2_BENCHMARK),
           "--depth-norm", "mean"]  # fmt: skip


#: ``--data``: (every run's data flags, the run-name tag, MixMatch's own flags). The v2 runs
#: mixed the opening linearly (before ``--mixup-width``), and any added are trained so; on the
#: defaults the mix is named too, so that a run stopped before the flag existed is refused as
#: a resume (``results_table.train``) and trained anew.
DATA = {
    "v2": (V2_DATA, "", ["--mixup-width", "linear"]),
    "defaults": ([], f"_v{GENERATOR_VERSION}", ["--mixup-width", "weighted"]),
}


def with_epochs(data: str, epochs: int) -> str:
    """The :data:`DATA` key of ``data`` trained ``epochs`` epochs instead of each network's
    default (``results_table.MODELS``), registered on first use: every column (labelled only,
    MixMatch, its variants, fully supervised) gets the longer budget, and its run names carry
    ``_e<epochs>`` after the data tag, so runs of different budgets never mix."""
    flags, tag, mixmatch_flags = DATA[data]
    key = f"{data}-e{epochs}"
    DATA.setdefault(key, ([*flags, "--epochs", str(epochs)], f"{tag}_e{epochs}", mixmatch_flags))
    return key


#: ``--more-unlabelled``: the unlabelled scenes MixMatch adds (1,400, seed 1: no object of
#: the default training set).
MORE_N, MORE_SEED = 1400, 1
MORE_SCENES = default_root("jacquard", MORE_N, 300, MORE_SEED)


#: The last commit whose generator wrote v2 (the parent of the commit that made v3).
V2_COMMIT = "0ce049b1ed9dee8848e6a988e3c31a967718ab06"


def check_v2_data() -> None:
    """Exit with one line saying how to make the v2 folders when they are missing: this code
    writes generator v3, and would fill the folders named for v2 with v3 scenes."""
    from utils.data.synthetic import read_marker

    for root in (V2_TRAINING_SET, V2_BENCHMARK):
        if (read_marker(root) or {}).get("version") != 2:
            print(
                f"error: {root}: generator v2 data not found; make it with the v2 generator: "
                f"git worktree add /tmp/v2 {V2_COMMIT[:7]} && (cd /tmp/v2 && python -c 'from "
                "utils.data.synthetic import ensure_synthetic_dataset as s; from "
                "utils.data.benchmark import ensure_benchmark as b; s(); b()') && mkdir -p "
                "data/synthetic data/benchmark && mv /tmp/v2/data/synthetic/"
                f"{V2_TRAINING_SET.name} data/synthetic/ && mv /tmp/v2/data/benchmark/"
                f"{V2_BENCHMARK.name} data/benchmark/",
                file=sys.stderr,
            )
            raise SystemExit(2)  # bad input, as the scripts' bad flags


def run_name(method: str, net: str, fraction: float | None, seed: int, tag: str = "") -> str:
    """``<method>_<net>_f<percent><tag>_s<seed>``; no ``f<percent>`` for a fully supervised
    run (``fraction`` None)."""
    labels = "" if fraction is None else f"_f{round(100 * fraction)}"
    return f"{method}_{net}{labels}{tag}_s{seed}"


@functools.cache
def full_batches(net: str, data: str = "v2") -> int:
    """Optimiser steps per epoch of the fully supervised run (the full training part)."""
    data_flags, _, _ = DATA[data]
    args = train_net.parse_args([*MODELS[net], *data_flags])
    ds = dataset_from_args(args, augment=False)
    return len(split_from_args(args, ds)["train"]) // args.batch_size


#: ``--ablation mixup``: MixMatch whose MixUp leaves every sample as it is, or nearly
#: (λ = max(λ, 1 - λ) with λ ~ Beta(0.01, 0.01) is above 0.99 for 96% of the draws, mean 0.993).
NO_MIXUP = ("--alpha", "0.01")
#: ``--ablation NAME``: (the variant's flags, its run-name tag, its column's name).
ABLATIONS = {
    "mixup": (NO_MIXUP, "_nomixup", "MixMatch without MixUp"),
    "mixup-width": (("--mixup-width", "linear"), "_linear", "MixMatch, openings mixed linearly"),
    "sharpen": (("--t", "1"), "_t1", "MixMatch without sharpening"),
    "cutmix": (("--mix", "cutmix"), "_cutmix", "MixMatch with CutMix"),
    # Variants of the unsharpened MixMatch (``sharpen``), each changing one more thing.
    "sharpen-cutmix": (("--t", "1", "--mix", "cutmix"), "_t1_cutmix", "MixMatch, T = 1, CutMix"),
    "sharpen-mixup": (("--t", "1", *NO_MIXUP), "_t1_nomixup", "MixMatch, T = 1, no MixUp"),
    "sharpen-mixup-ema": (
        ("--t", "1", *NO_MIXUP, "--guess-model", "ema"),
        "_t1_nomixup_ema",
        "MixMatch, T = 1, no MixUp, EMA guesses",
    ),  # fmt: skip
    "sharpen-lambda10": (
        ("--t", "1", "--lambda-u", "10"),
        "_t1_lu10",
        "MixMatch, T = 1, lambda_u = 10",
    ),  # fmt: skip
}


@functools.cache
def ensure_more_scenes() -> Path:
    """The ``--more-unlabelled`` scenes, generated the first time a run needs them."""
    return ensure_synthetic_dataset(MORE_SCENES, n_scenes=MORE_N, seed=MORE_SEED)


def find_or_train(
    method, net, fraction, seed, outdir, train_ok, extra=(), tag: str = "", data: str = "v2",
    prepare=None,
) -> Path | None:  # fmt: skip
    """The newest finished (method, net, fraction, seed) run, trained first if missing and
    ``train_ok``: the labelled subset drawn by the seed (all of the training part for method
    ``full``, fraction None), EMA, the full part's steps, on the ``data`` (:data:`DATA`);
    ``extra`` flags make another variant, which ``tag`` names (``_real``, ``_nomixup``);
    ``prepare()`` runs before training it (what only a training needs: its data)."""
    data_flags, data_tag, mixmatch_flags = DATA[data]
    desc = run_name(method, net, fraction, seed, data_tag + tag)
    run = newest_run(outdir, desc)
    if run is None and train_ok:
        labels = [] if fraction is None else ["--labeled-fraction", str(fraction),
                                              "--labeled-seed", str(seed)]  # fmt: skip
        mixmatch = method == "mixmatch"
        # A variant's own flags (``extra``) come last and win over MixMatch's.
        flags = [*(mixmatch_flags if mixmatch else []), *data_flags, *labels, "--model-ema", "1",
                 "--batches-per-epoch", str(full_batches(net, data)), *extra]  # fmt: skip
        script = mixmatch_train if mixmatch else train_net
        if prepare is not None:
            prepare()
        run = train(net, seed, outdir, flags, script=script, desc=desc)
    return run


def rates(runs: list[Path]) -> list[list[int]]:
    return [[sum(ok), len(ok)] for ok in (benchmark_successes(r)[1] for r in runs)]


def outcome_counts(runs: list[Path]) -> dict[str, int] | None:
    """The benchmark's images by ``eval_net.py`` outcome, summed over ``runs``; None when a
    run was scored before outcomes were recorded."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for run in runs:
        kinds = benchmark_report(run)["per_image"].get("outcomes")
        if kinds is None:
            return None
        for kind in kinds:
            counts[kind] += 1
    return counts


def gap_closed(labelled: float, method: float | None, full: float | None) -> str:
    """(method - labelled only) / (fully supervised - labelled only), means in points; "–"
    without the method's or fully supervised runs or where their gap is under a point (noise,
    not a gap)."""
    if method is None or full is None or full - labelled < 1.0:
        return "–"
    return f"{(method - labelled) / (full - labelled):.0%}"


def seed_image_tests(labelled: list[Path], method: list[Path], full: list[Path]) -> dict:
    """``method`` against labelled only with intervals over seeds (paired by seed) and images:
    ``diff`` [rate difference, low, high] (:func:`utils.stats.seed_image_difference`) and,
    with fully supervised runs, ``gap`` [closed, low, high] of the gap to them
    (:func:`utils.stats.gap_closed_interval`; nan or infinite where undefined)."""
    ids = None

    def successes(runs: list[Path]) -> np.ndarray:
        nonlocal ids
        per = [benchmark_successes(r) for r in runs]
        for run_ids, _ in per:
            if ids is not None and run_ids != ids:
                raise RuntimeError("the runs scored different images")
            ids = run_ids
        return np.array([ok for _, ok in per], dtype=bool)

    lab, met = successes(labelled), successes(method)
    out = {"diff": list(seed_image_difference(lab, met))}
    if full:
        out["gap"] = list(gap_closed_interval(lab, met, successes(full)))
    return out


def per_seed_tests(t: dict, n: int) -> str:
    """Per seed of a :func:`paired` test: signed points (images only b gets right minus only a),
    images b wins / loses, exact McNemar p."""
    return ", ".join(
        f"{100 * (x['b_only'] - x['a_only']) / n:+.1f} ({x['b_only']}/{x['a_only']}, p = {x['p']:.2g})"
        for x in t["per_seed"]
    )


def print_outcomes(rows: list[dict], columns: dict[str, str]) -> None:
    """Images by outcome summed over the seeds, for each row and column (key -> name)."""
    if not any(c for r in rows for c in r.get("outcomes", {}).values()):
        return
    where = "benchmark" if results_table.SCORING_SET is None else "confirmation set"
    print(f"\n{where} images by outcome, summed over the seeds:")
    print("| network | labels | runs | " + " | ".join(OUTCOMES) + " |")
    print("|---|---:|---|" + "---:|" * len(OUTCOMES))
    for r in rows:
        for key, name in columns.items():
            c = r.get("outcomes", {}).get(key)
            if c is not None:
                print(f"| {r['network']} | {r['fraction']:.0%} | {name} | "
                      + " | ".join(f"{c[k]:,}" for k in OUTCOMES) + " |")  # fmt: skip


def benchmark_table(args: argparse.Namespace, outdir: Path, alone_dir: Path) -> list[dict]:
    rows, train_ok, data = [], not args.no_train, args.data
    for net in args.networks:
        if data == "v2":  # the results table's own runs (no EMA)
            full = [r for s in range(args.seeds) if (r := newest_run(alone_dir, f"{net}_s{s}"))]
            if len(full) < args.seeds and train_ok:
                full = [newest_run(alone_dir, f"{net}_s{s}") or train(net, s, alone_dir, V2_DATA)
                        for s in range(args.seeds)]  # fmt: skip
        else:  # trained here, as the other two: EMA and the same steps
            full = [r for s in range(args.seeds)
                    if (r := find_or_train("full", net, None, s, outdir, train_ok, data=data))]  # fmt: skip
        full_outcomes = outcome_counts(full) if full else None  # the same runs at every fraction
        more = ("--unlabeled-path", str(MORE_SCENES))
        for f in args.fractions:
            runs: dict[str, list[Path]] = {"labelled": [], "mixmatch": [], "more": []}
            for s in range(args.seeds):
                seed_runs = {
                    "labelled": find_or_train("labelled", net, f, s, outdir, train_ok, data=data),
                    "mixmatch": find_or_train("mixmatch", net, f, s, outdir, train_ok, data=data),
                }
                if args.more_unlabelled:
                    seed_runs["more"] = find_or_train(
                        "mixmatch", net, f, s, outdir, train_ok, extra=more, tag="_more",
                        data=data, prepare=ensure_more_scenes,
                    )  # fmt: skip
                if None not in seed_runs.values():  # only seeds with every column finished
                    for key, run in seed_runs.items():
                        runs[key].append(run)
            lab, mm, more_runs = runs["labelled"], runs["mixmatch"], runs["more"]
            if not mm:
                print(f"{net} at {f:.0%}: no finished pair of runs, left out")
                continue
            row = {"network": net, "fraction": f, "labelled": rates(lab),
                   "mixmatch": rates(mm), "full": rates(full) if full else None,
                   "paired": paired(lab, mm), "runs": [str(r) for r in lab + mm + more_runs],
                   "outcomes": {k: outcome_counts(v) for k, v in runs.items() if v}}  # fmt: skip
            if more_runs:
                row["more"], row["paired_more"] = rates(more_runs), paired(lab, more_runs)
            if full:
                row["outcomes"]["full"] = full_outcomes
            rows.append(row)
    return rows


def scored_name(rows: list[dict], n: int) -> str:
    """The set the runs were scored on (their own record: the generator may be newer; the
    confirmation set with ``--confirm``)."""
    for r in rows:
        for run in r.get("runs", []):
            try:
                return benchmark_report(Path(run))["scored"]
            except (OSError, KeyError, ValueError, RuntimeError):
                continue
    return benchmark_name(n)


def print_benchmark(rows: list[dict], data: str = "v2") -> None:
    n = rows[0]["mixmatch"][0][1] if rows else BENCHMARK_IMAGES
    full = (
        "the results table's runs (no EMA)"
        if data == "v2"
        else "all of the training part labelled, the same EMA and steps"
    )
    print(
        "\nlabelled only and MixMatch: EMA weights, the same labelled subset and optimiser steps; "
        f"fully supervised: {full}. The bootstrap interval resamples images, not seeds."
    )
    columns = [("mixmatch", "paired", "MixMatch")]
    if any("more" in r for r in rows):
        columns.append(("more", "paired_more", f"MixMatch + {MORE_N:,} unlabelled scenes"))
    for key, test_key, name in columns:
        print(
            f"\n| network | labels | {scored_name(rows, n)}: labelled only | {name} | fully "
            f"supervised | {name} - labelled only [95% CI]; per seed: points, McNemar p "
            "| gap closed | seeds |"
        )
        print("|---|---:|---:|---:|---:|---|---:|---:|")
        for r in rows:
            if key not in r:
                continue
            (lt, lm), (mt, mm) = mean_rate(r["labelled"]), mean_rate(r[key])
            ft, fm = mean_rate(r["full"]) if r["full"] else ("–", None)
            gap = gap_closed(lm, mm, fm)
            t = r[test_key]
            # Signed per seed: images only MixMatch gets right minus those only labelled-only does.
            ps = ", ".join(
                f"{100 * (x['b_only'] - x['a_only']) / n:+.1f} (p = {x['p']:.2g})"
                for x in t["per_seed"]
            )
            test = f"{100 * t['diff']:+.1f} [{100 * t['ci95'][0]:+.1f}, {100 * t['ci95'][1]:+.1f}]"
            print(
                f"| {r['network']} | {r['fraction']:.0%} | {lt} | {mt} | {ft} | {test}; {ps} "
                f"| {gap} | {len(r[key])} |"
            )
    names = {"labelled": "labelled only", **{k: n for k, _, n in columns}}
    print_outcomes(rows, {**names, "full": "fully supervised"})


#: The ablation table's columns, besides fully supervised.
COLUMNS = ("labelled", "mixmatch", "variant")


def ablation_table(args: argparse.Namespace, outdir: Path) -> list[dict]:
    """Labelled only, MixMatch and MixMatch's ``--ablation`` variant (:data:`ABLATIONS`), same
    subsets, seeds and steps; ``--without-mixmatch``: no MixMatch column (none trained)."""
    flags, tag, _ = ABLATIONS[args.ablation]
    rows, ok, data = [], not args.no_train, args.data
    for net in args.networks:
        for f in args.fractions:
            keys = ["labelled", "variant"] if args.without_mixmatch else list(COLUMNS)
            runs: dict[str, list[Path]] = {k: [] for k in COLUMNS}
            for s in range(args.seeds):
                found = {
                    "labelled": find_or_train("labelled", net, f, s, outdir, ok, data=data),
                    "mixmatch": None if args.without_mixmatch
                    else find_or_train("mixmatch", net, f, s, outdir, ok, data=data),
                    "variant": find_or_train("mixmatch", net, f, s, outdir, ok, flags, tag, data),
                }  # fmt: skip
                if all(found[k] is not None for k in keys):
                    for k in keys:
                        runs[k].append(found[k])
            # The gap to close: fully supervised runs on the same data (--data defaults), trained
            # here when missing, as the other columns.
            full = [find_or_train("full", net, None, s, outdir, ok, data=data)
                    for s in range(len(runs["variant"]))] if data != "v2" else []  # fmt: skip
            if runs["variant"]:
                mm = runs["mixmatch"]
                full = full if full and None not in full else []
                rows.append({"network": net, "fraction": f,
                             **{k: rates(v) for k, v in runs.items()},
                             "full": rates(full) if full else None,
                             "seed_image": {k: seed_image_tests(runs["labelled"], v, full)
                                            for k, v in runs.items() if v and k != "labelled"},
                             "vs_mixmatch": paired(mm, runs["variant"]) if mm else None,
                             "vs_labelled": paired(runs["labelled"], runs["variant"]),
                             "outcomes": {k: outcome_counts(v) for k, v in runs.items() if v}})  # fmt: skip
    return rows


def gap_text(row: dict, key: str) -> str:
    """The gap to full supervision that ``key`` closes (:func:`gap_closed` of the seeds'
    means, "–" where there is none to speak of) and its 95% interval over seeds and images
    where the row has one (`` [unbounded]`` where too many resamples have no gap to close)."""
    mean = {k: mean_rate(row[k])[1] if row.get(k) else None for k in ("labelled", key, "full")}
    point = gap_closed(mean["labelled"], mean[key], mean["full"])
    t = row.get("seed_image", {}).get(key, {}).get("gap")
    if point == "–" or t is None:
        return point
    if not (math.isfinite(t[1]) and math.isfinite(t[2])):
        return point + " [unbounded]"
    return point + f" [{t[1]:.0%}, {t[2]:.0%}]"


def seed_image_diff(row: dict, key: str) -> str:
    """``+1.0 [-1.4, +3.1]``: ``key`` minus labelled only, points, 95% over seeds and images."""
    t = row.get("seed_image", {}).get(key, {}).get("diff")
    if t is None:
        return "–"
    return f"{100 * t[0]:+.1f} [{100 * t[1]:+.1f}, {100 * t[2]:+.1f}]"


def print_ablation(rows: list[dict], ablation: str) -> None:
    def diff(t: dict | None) -> str:
        if t is None:
            return "–"
        return f"{100 * t['diff']:+.1f} [{100 * t['ci95'][0]:+.1f}, {100 * t['ci95'][1]:+.1f}]"

    name = ABLATIONS[ablation][2]
    print(f"\n| network | labels | labelled only | MixMatch | {name} "
          f"| {name} - MixMatch [95% CI, images] | {name} - labelled only [95% CI, images] "
          f"| {name} - labelled only [95% CI, seeds and images] | seeds |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---|---|---:|")
    for r in rows:
        lt, mt, nt = (mean_rate(r[k])[0] if r[k] else "–" for k in COLUMNS)
        print(f"| {r['network']} | {r['fraction']:.0%} | {lt} | {mt} | {nt} "
              f"| {diff(r['vs_mixmatch'])} | {diff(r['vs_labelled'])} "
              f"| {seed_image_diff(r, 'variant')} | {len(r['variant'])} |")  # fmt: skip
    for r in rows:
        full = mean_rate(r["full"])[0] if r.get("full") else "–"
        n = r["variant"][0][1]
        print(
            f"\n{r['network']} at {r['fraction']:.0%}, per seed: "
            + "; ".join(
                f"{k} " + ", ".join(f"{100 * a / b:.1f}" for a, b in r[k]) for k in COLUMNS if r[k]
            )
            + f". {name} against labelled only, per seed: points (images won/lost, McNemar p): "
            f"{per_seed_tests(r['vs_labelled'], n)}. Fully supervised {full}; gap closed: "
            f"MixMatch {gap_text(r, 'mixmatch')}, {name} {gap_text(r, 'variant')} (95% "
            "intervals over seeds and images)"
        )
    print_outcomes(rows, {"labelled": "labelled only", "mixmatch": "MixMatch", "variant": name})


def real_table(args: argparse.Namespace, outdir: Path) -> dict | None:
    """GG-CNN2 MixMatch with and without the real unlabelled depth images, on the real views."""
    jacquard, unlabelled = Path(args.jacquard_path), Path(args.real_unlabelled)
    if not (jacquard.is_dir() and unlabelled.is_dir()):
        print(f"--real: {jacquard} or {unlabelled} not found, left out")
        return None
    f, out = args.real_fraction, {"without": [], "with": []}
    # Both columns the same MixMatch (an --ablation's variant if given), on the same --data.
    flags, tag, _ = ABLATIONS[args.ablation] if args.ablation else ((), "", "")
    real = (*flags, "--unlabeled-path", str(unlabelled))
    for s in range(args.seeds):
        pair = [
            find_or_train("mixmatch", "ggcnn2", f, s, outdir, not args.no_train, flags, tag,
                          args.data),
            find_or_train("mixmatch", "ggcnn2", f, s, outdir, not args.no_train, real,
                          tag + "_real", args.data),
        ]  # fmt: skip
        if None in pair:
            continue
        for key, run in zip(("without", "with"), pair, strict=True):
            res = real_result(run, jacquard)
            per = res["per_image"]
            out[key].append({"run": str(run), "ids": per["ids"], "successes": per["successes"]})
    if not out["with"]:
        print(f"--real: no finished pair of runs at {f:.0%} labels (with and without real depth)")
        return None
    return out


def print_real(res: dict, fraction: float, ablation: str | None = None) -> None:
    name = ABLATIONS[ablation][2] if ablation else "MixMatch"
    print(f"\nGG-CNN2 {name}, {fraction:.0%} labels, on the real Jacquard samples (dev set):")
    print("| unlabelled images | success: mean ± std | per seed | McNemar (with - without) |")
    print("|---|---:|---|---|")
    for key, label in (("without", "the synthetic training part's"), ("with", "+ real depth")):
        runs = res[key]
        m, sd = mean_std([sum(r["successes"]) / len(r["successes"]) for r in runs])
        per = ", ".join(f"{sum(r['successes'])}/{len(r['successes'])}" for r in runs)
        tests = "–"
        if key == "with":
            pairs = list(zip(res["with"], res["without"], strict=True))
            if any(w["ids"] != wo["ids"] for w, wo in pairs):
                raise RuntimeError("the runs with and without real depth scored different views")
            ts = [mcnemar_test(w["successes"], wo["successes"]) for w, wo in pairs]
            tests = "; ".join(f"+{t['a_only']}/-{t['b_only']}, p = {t['p']:.2g}" for t in ts)
        print(f"| {label} | {100 * m:.1f} ± {100 * sd:.1f}% | {per} | {tests} |")
    n = len(res["with"][0]["successes"])
    print(f"({n} views: one view moves a seed's rate by {100 / n:.1f} points)")


def tables(args: argparse.Namespace, outdir: Path) -> dict:
    """Build and print the table that ``args`` asks for; its rows under their JSON key."""
    if args.real:
        real = real_table(args, outdir)
        if real:
            print_real(real, args.real_fraction, args.ablation)
        return {"real": real}
    if args.ablation:
        rows = ablation_table(args, outdir)
        print_ablation(rows, args.ablation)
        return {args.ablation: rows}
    rows = benchmark_table(args, outdir, Path(args.alone_dir))
    print_benchmark(rows, args.data)
    return {"rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", nargs="+", default=["ggcnn2", "pspnet-r18-ppm"],
                   choices=list(MODELS))  # fmt: skip
    p.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.25])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--outdir", default=str(REPO / "runs" / "mixmatch_table"))
    p.add_argument("--alone-dir", default=str(REPO / "runs" / "results_table"))
    p.add_argument("--no-train", action="store_true", help="leave out runs not finished yet")
    p.add_argument("--real", action="store_true", help="only the real-unlabelled comparison")
    p.add_argument("--ablation", choices=list(ABLATIONS), default=None,
                   help="mixup: MixMatch without MixUp; mixup-width: openings mixed linearly "
                   "(--data defaults); each against MixMatch and labelled only")  # fmt: skip
    p.add_argument("--without-mixmatch", action="store_true",
                   help="--ablation without the paper's MixMatch column (not trained): the "
                   "variant against labelled only and fully supervised")  # fmt: skip
    p.add_argument("--real-fraction", type=float, default=0.25)
    p.add_argument("--real-unlabelled", default=str(REAL_UNLABELLED))
    p.add_argument("--jacquard-path", default=str(JACQUARD_SAMPLES))
    p.add_argument("--data", choices=list(DATA), default="v2",
                   help="v2: the generator v2 data and mean normalisation (RESULTS.md's first "
                   "tables); defaults: today's defaults, fully supervised runs trained here")  # fmt: skip
    p.add_argument("--more-unlabelled", action="store_true",
                   help=f"also MixMatch with {MORE_N:,} more unlabelled synthetic scenes")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None,
                   help="with --data defaults: every run trains this many epochs (default: each "
                   "network's, results_table.MODELS); a longer budget lets full supervision pull "
                   "away from the labelled part alone")  # fmt: skip
    p.add_argument("--confirm", action="store_true",
                   help="score every run on the confirmation set instead of the benchmark (2,000 "
                   "images of another held-out seed, generated on first use): a check of a "
                   "variant chosen by its benchmark score on images the choice never saw")  # fmt: skip
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    args = p.parse_args()
    if args.epochs is not None:
        if args.data != "defaults":
            p.error("--epochs needs --data defaults")
        if args.epochs < 1:
            p.error(f"--epochs must be a positive integer, got {args.epochs}")
        args.data = with_epochs(args.data, args.epochs)
    if args.without_mixmatch and not args.ablation:
        p.error("--without-mixmatch is for --ablation")
    if args.more_unlabelled and (args.real or args.ablation):
        p.error("--more-unlabelled is for the benchmark table, not --real/--ablation")
    if args.ablation == "mixup-width" and args.data == "v2":
        p.error("--ablation mixup-width needs --data defaults (the v2 runs mix linearly)")
    if args.confirm and args.real:
        p.error("--confirm is for the benchmark and ablation tables (--real scores real views)")
    if args.confirm and args.data == "v2":
        p.error(f"--confirm needs --data defaults: the confirmation set is generator "
                f"v{GENERATOR_VERSION}'s, and the v2 runs trained on v2 data")  # fmt: skip
    if not args.no_train and args.data == "v2":  # the v2 tables train on the v2 data
        check_v2_data()
    outdir, t0 = Path(args.outdir), time.perf_counter()
    result: dict = {}
    root = ensure_confirmation_set() if args.confirm else None
    if root is not None:
        result["scored_on"] = benchmark_name(BENCHMARK_IMAGES, root)
        print(f"every run scored on the {result['scored_on']}: {root}")
    try:
        with results_table.scoring_on(root):
            result.update(tables(args, outdir))
    except RuntimeError as e:  # a run restored from its record, no checkpoint to score
        if root is None:
            raise
        sys.exit(f"--confirm: {e}; give --networks/--fractions/--seeds whose runs are here")
    print(f"\nwhole table: {(time.perf_counter() - t0) / 60:.1f} min")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
