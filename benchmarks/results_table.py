"""The README's results table: networks trained on the synthetic set only, over several
seeds, scored on the synthetic benchmark set (2,000 held-out images of 400 object sets), on
the synthetic split's own test part and on the real Jacquard samples (a development set),
beside the mask-centroid baseline.

    python benchmarks/results_table.py --seeds 3                  # train all, print the table
    python benchmarks/results_table.py --seeds 3 --reuse          # re-score finished runs
    python benchmarks/results_table.py --models ggcnn2 --seeds 1 -- --epochs 60

Each (model, seed) is trained with ``train_net.py`` (the model's flags in MODELS, ``--seed``)
into ``<outdir>/<timestamp>_<model>_s<seed>/``; ``--reuse`` takes the newest finished run of a
(model, seed) instead. The split (``--split-seed``) is the same for every seed, so every run
is scored on the same images. Figures: ``best.pt`` (picked on the validation part, never on a
scored part), as mean ± sample standard deviation over seeds, then each seed's figure with
its 95% Wilson interval. The real samples (18 views) steered the generator's design, so they
are a development set: reported, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import records  # noqa: E402  (benchmarks/, this script's folder)

import eval_net  # noqa: E402
import train_net  # noqa: E402
from models import count_parameters, get_network  # noqa: E402
from utils.baselines import mask_centroid_grasp  # noqa: E402
from utils.checkpoint import load_model  # noqa: E402
from utils.data.benchmark import (  # noqa: E402
    BENCHMARK_IMAGES,
    benchmark_name,
    benchmark_root,
    is_benchmark_folder,
)
from utils.data.build import (  # noqa: E402
    benchmark_dataset,  # noqa: E402
    dataset_from_args,
    split_from_args,
)
from utils.entrypoint import EXIT_STOPPED_SAVED, Interrupted  # noqa: E402
from utils.evaluation import EvaluationResults, evaluate_grasps  # noqa: E402
from utils.post_process import DECODING_VERSION  # noqa: E402
from utils.stats import format_rate, mcnemar_test, mean_std, paired_bootstrap  # noqa: E402

#: The table's training budget per model: about 10 minutes a seed on a 2-core CPU, so that 3
#: seeds of 4 models rerun in about 1.5 hours. GG-CNN computes ~3x more per image than GG-CNN2
#: (9 x 9 convolutions at full resolution), hence fewer epochs. README, Results, shows where
#: GG-CNN2's benchmark success saturates (benchmarks/epoch_curve.py).
MODELS: dict[str, list[str]] = {
    "ggcnn": ["--network", "ggcnn", "--epochs", "10"],
    "ggcnn2": ["--network", "ggcnn2", "--epochs", "15"],
    "pspnet-r18-ppm": ["--network", "pspnet", "--backbone", "resnet18", "--pooling", "ppm",
                       "--epochs", "10"],
    "pspnet-r18-lgp": ["--network", "pspnet", "--backbone", "resnet18", "--pooling", "lgp",
                       "--epochs", "10"],
    # ResNet-50 trains ~4x slower than ResNet-18 on a 2-core CPU: not in the default table.
    "pspnet-r50-ppm": ["--network", "pspnet", "--backbone", "resnet50", "--pooling", "ppm",
                       "--epochs", "8"],
}  # fmt: skip
DEFAULT_MODELS = ["ggcnn", "ggcnn2", "pspnet-r18-ppm", "pspnet-r18-lgp"]
JACQUARD_SAMPLES = REPO.parent / "shared" / "data" / "jacquard_samples"
#: The generator v2 training set and benchmark this table's runs used (named folders are used
#: as they are, so later tables can train and score on the same data).
V2_TRAINING_SET = REPO / "data" / "synthetic" / "jacquard_n600_s300_seed0"
V2_BENCHMARK = REPO / "data" / "benchmark" / f"synthetic_v2_n{BENCHMARK_IMAGES}"


@functools.cache
def restored_once(outdir: Path) -> None:
    """The runs recorded for ``outdir`` that it lacks, written back once per process."""
    for run in records.restore(outdir):
        print(f"{run.name}: restored from its record (no checkpoint)")


def newest_run(
    outdir: Path, name: str, finished: bool = True, weights: bool = False
) -> Path | None:
    """The newest finished run ``<yymmdd>_<hhmmss>_<name>`` in ``outdir`` (exact name: no
    other run whose name merely ends the same way); ``finished=False``: the newest one that
    stopped before its end (a ``last.pt``, no ``test_results.json``). ``weights``: only runs
    with their checkpoints (not one restored from its record), for tables that load them (a
    teacher): without one they train it again."""
    restored_once(outdir)
    stamp = re.compile(r"\d{6}_\d{6}_" + re.escape(name))
    runs = sorted(
        p for p in outdir.glob(f"*_{name}")
        if stamp.fullmatch(p.name)
        and ((p / "test_results.json").is_file() if finished else (p / "last.pt").is_file())
        and not (weights and records.is_restored(p))
    )  # fmt: skip
    if not finished and runs and (runs[-1] / "test_results.json").is_file():
        return None
    return runs[-1] if runs else None


def train(
    name: str, seed: int, outdir: Path, extra: list[str], script: Any = train_net,
    desc: str | None = None,
) -> Path:  # fmt: skip
    """Train ``MODELS[name]`` with ``--seed`` and ``extra`` flags through ``script``
    (train_net, distill or mixmatch_train: same parse_args/main) into ``<outdir>/<stamp>_<desc>``
    (default desc ``<name>_s<seed>``); returns the run folder."""
    desc = desc or f"{name}_s{seed}"
    flags = [*MODELS[name], "--seed", str(seed), "--description", desc, "--outdir", str(outdir),
             "--benchmark-images", str(BENCHMARK_IMAGES), *extra]  # fmt: skip
    stopped = newest_run(outdir, desc, finished=False)
    args = None
    if stopped is not None:  # a table stopped mid-run (a session's end): go on exactly
        print(f"{desc}: resuming {stopped}")
        try:  # with the table's flags, which the resume refuses if the run had others
            args = script.parse_args(["--resume", str(stopped / "last.pt"), *flags])
        except SystemExit:
            print(f"{desc}: {stopped.name} was trained with other flags (above): training anew")
    if args is None:
        args = script.parse_args(flags)
    t0 = time.perf_counter()
    try:
        script.main(args)
    except Interrupted as e:  # SIGTERM / SIGINT: last.pt is saved; the table resumes it
        print(f"{desc}: {e.stopped}; the same table command resumes it", file=sys.stderr,
              flush=True)  # fmt: skip
        sys.exit(EXIT_STOPPED_SAVED)
    run = newest_run(outdir, desc, weights=True)  # the run just trained, not a restored one
    if run is None:
        raise RuntimeError(f"training {desc} wrote no test_results.json in {outdir}")
    records.save(run)
    print(f"{desc}: trained in {(time.perf_counter() - t0) / 60:.1f} min -> {run}")
    return run


def score(checkpoints: list[Path], out: Path, flags: list[str]) -> dict:
    """eval_net on ``checkpoints`` (several: as one model, ``--ensemble``) with ``flags``,
    results in ``out``; adds ``failed``: the ids of the images it got wrong."""
    ensemble = ["--ensemble"] if len(checkpoints) > 1 else []
    args = eval_net.parse_args(
        [
            *ensemble, "--network", *map(str, checkpoints), *flags, "--batch-size", "8",
            "--num-workers", "0", "--outdir", str(out), "--results-json", str(out / "results.json"),
        ]
    )  # fmt: skip
    summary = eval_net.main(args)
    per_image = summary["per_image"]
    summary["failed"] = [
        i for i, ok in zip(per_image["ids"], per_image["successes"], strict=True) if not ok
    ]
    return summary


def chosen_checkpoint(run: Path) -> Path:
    """best.pt, else last.pt; for a run restored without checkpoints, the one it scored."""
    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            return run / name
    try:
        summary = json.loads((run / "test_results.json").read_text())["summary"]
        return run / Path(summary["checkpoint"]).name
    except (OSError, json.JSONDecodeError, KeyError):
        return run / "best.pt"


def cached_score(
    runs: Path | list[Path], name: str, flags: list[str], out: Path | None = None
) -> dict:
    """:func:`score` of the run's chosen checkpoint (several runs: theirs, as one model) with
    ``flags`` (their ``--dataset-path``, if any, is the data), reusing ``results.json`` in
    ``out`` (default ``<run>/<name>``) when it scored the same checkpoints on the same folder
    without test-time augmentation, with the same ``--min-opening`` and with today's decoding
    (:data:`utils.post_process.DECODING_VERSION`; a run restored from its record without
    checkpoints keeps the score it has)."""
    runs = [runs] if isinstance(runs, Path) else runs
    ckpts = [chosen_checkpoint(r) for r in runs]
    root = flags[flags.index("--dataset-path") + 1] if "--dataset-path" in flags else None
    min_opening = (
        float(flags[flags.index("--min-opening") + 1]) if "--min-opening" in flags else 0.0
    )
    out = out or runs[0] / name
    try:
        summary = json.loads((out / "results.json").read_text())
        scored = summary.get("ensemble", [summary.get("checkpoint", "")])
        if (
            summary.get("images")
            # folder and parent: the same data wherever the checkout (or ../shared) lies
            and (
                root is None
                or Path(summary.get("dataset_root", "")).parts[-2:]
                == Path(root).expanduser().resolve().parts[-2:]
            )
            # the run folder and file: the same run wherever the checkout lies
            and [Path(c).parts[-2:] for c in scored] == [c.parts[-2:] for c in ckpts]
            and summary.get("tta", "none") == "none"
            and summary.get("min_opening", 0.0) == min_opening
            # scored by today's decoding (results before the version was written: 1), or
            # a record without weights, which keeps what it was scored with
            and (
                summary.get("decoding", 1) == DECODING_VERSION or not all(c.exists() for c in ckpts)
            )
        ):
            per_image = summary["per_image"]
            summary["failed"] = [
                i for i, ok in zip(per_image["ids"], per_image["successes"], strict=True) if not ok
            ]
            return summary
    except (OSError, json.JSONDecodeError, KeyError):
        pass  # none stored, or a broken file: score again
    if not all(c.exists() for c in ckpts):
        missing = [str(r) for r, c in zip(runs, ckpts, strict=True) if not c.exists()]
        raise RuntimeError(
            f"{', '.join(missing)}: no checkpoint to score on {root or flags} (restored from "
            "benchmarks/records); delete the folder and its record to train it again"
        )
    summary = score(ckpts, out, flags)
    if out.parent in runs:
        records.save(out.parent)  # the new score joins the run's record
    return summary


def real_result(run: Path, jacquard: Path) -> dict:
    """The run's chosen checkpoint on the real views (stored result reused)."""
    return cached_score(run, "eval_jacquard_samples", real_flags(jacquard))


def real_flags(jacquard: Path) -> list[str]:
    """eval_net flags for every real view (never seen in training)."""
    return ["--dataset", "jacquard", "--dataset-path", str(jacquard), "--part", "all"]


def baseline(dataset, indices: list[int]) -> EvaluationResults:
    """Mask-centroid grasps scored like a network's top grasp."""
    results = EvaluationResults()
    for i in indices:
        mask = dataset.get_mask(i)
        results.add(
            dataset.sample_id(i), evaluate_grasps([mask_centroid_grasp(mask)], dataset.get_gt(i))
        )
    return results


def baseline_rows(input_size: int, jacquard: Path | None, train_args: list[str]) -> dict:
    """The baseline on the benchmark, on the synthetic test part and on the real views."""
    args = train_net.parse_args(["--input-size", str(input_size), *train_args])
    bench = benchmark_dataset(args)
    synthetic = dataset_from_args(args, augment=False)
    out = {
        "benchmark": baseline(bench, list(range(len(bench)))),
        "synthetic_test": baseline(synthetic, split_from_args(args, synthetic)["test"]),
    }
    if jacquard is not None:
        from utils.data import JacquardDataset

        ds = JacquardDataset(jacquard, output_size=input_size)
        out["real"] = baseline(ds, list(range(len(ds))))
    return out


def run_row(name: str, seed: int, run: Path, jacquard: Path | None) -> dict:
    report = json.loads((run / "test_results.json").read_text())
    summary = report["summary"]
    bench = benchmark_report(run)["summary"]
    ckpt = chosen_checkpoint(run)
    if ckpt.exists():
        model, stored = load_model(ckpt)
    else:  # restored from its record: the network without its weights
        stored = json.loads((run / "checkpoint.json").read_text())
        stored["args"] = json.loads((run / "args.json").read_text())
        model = get_network(stored["network"]["name"], **stored["network"]["kwargs"])
    real = real_result(run, jacquard) if jacquard else None
    return {
        "model": name,
        "seed": seed,
        "params_m": count_parameters(model) / 1e6,
        "benchmark": [bench["correct"], bench["images"]],
        "synthetic_test": [
            summary["test_images"] and round(summary["test_success"] * summary["test_images"]),
            summary["test_images"],
        ],
        "real": [real["correct"], real["images"]] if real else None,
        "real_failed": real["failed"] if real else None,
        "ms_per_image": real["network_ms_per_image"] if real else None,
        "train_min": summary["train_seconds"] / 60,
        "best_epoch": stored["epoch"],
        "epochs": stored["args"]["epochs"],
        "input_size": stored["args"]["input_size"],
        "run": str(run),
    }


#: Where :func:`benchmark_report` scores every run instead of on its benchmark, inside
#: :func:`scoring_on` (the confirmation set): the tables that read it print unchanged.
SCORING_SET: Path | None = None


@contextlib.contextmanager
def scoring_on(root: Path | None) -> Iterator[None]:
    """Inside the block, score every run's chosen checkpoint on the held-out set in ``root``
    (a benchmark or confirmation set folder; None: each run's own benchmark figures)."""
    global SCORING_SET
    if root is not None and not is_benchmark_folder(root):
        raise ValueError(f"{root}: not a held-out synthetic set (benchmark or confirmation)")
    saved, SCORING_SET = SCORING_SET, None if root is None else Path(root)
    try:
        yield
    finally:
        SCORING_SET = saved


def held_out_report(run: Path, root: Path) -> dict:
    """:func:`benchmark_report`'s figures for ``run``'s chosen checkpoint scored by eval_net on
    the synthetic held-out set in ``root`` (all its images), kept in ``<run>/eval_<folder>`` and
    in the run's record (a run restored without checkpoints keeps it; without either,
    :func:`cached_score` says so)."""
    flags = ["--dataset", "jacquard", "--dataset-path", str(root), "--part", "all"]
    r = cached_score(run, f"eval_{root.name}", flags)
    return eval_report(benchmark_name(r["images"], root), r)


def eval_report(scored: str, r: dict) -> dict:
    """An eval_net summary ``r`` in the shape of ``test_results.json``'s benchmark block."""
    keys = ("images", "correct", "success_rate", "success_ci95", "mean_best_iou")
    return {"scored": scored, "decoding": r["decoding"], "summary": {k: r[k] for k in keys},
            "per_image": r["per_image"]}  # fmt: skip


def benchmark_report(run: Path) -> dict:
    """The run's benchmark figures: the ``benchmark`` block of its ``test_results.json``
    (``scored``, ``summary``, ``per_image``), or, when that was decoded otherwise than today
    (:data:`~utils.post_process.DECODING_VERSION`) and the run's checkpoint and benchmark
    folder are here, the same checkpoint scored again by eval_net (kept in
    ``<run>/eval_benchmark``). A record without weights keeps the figures it was scored with.
    With :data:`SCORING_SET` set, the figures on that set instead (:func:`held_out_report`)."""
    if SCORING_SET is not None:
        return held_out_report(run, SCORING_SET)
    report = json.loads((run / "test_results.json").read_text())
    bench = report.get("benchmark")
    if bench is None:
        raise RuntimeError(f"{run}: no benchmark figures (trained with --benchmark-images 0?)")
    if bench.get("decoding", 1) == DECODING_VERSION or not chosen_checkpoint(run).exists():
        return bench
    args = json.loads((run / "args.json").read_text())
    n = bench["summary"]["images"]
    root = Path(args.get("benchmark_path") or benchmark_root(n))
    if not root.is_dir() or benchmark_name(n, root) != bench["scored"]:
        return bench
    flags = ["--dataset", "benchmark", "--dataset-path", str(root),
             "--benchmark-images", str(n)]  # fmt: skip
    return eval_report(bench["scored"], cached_score(run, "eval_benchmark", flags))


def benchmark_successes(run: Path) -> tuple[list[str], list[bool]]:
    per = benchmark_report(run)["per_image"]
    return per["ids"], per["successes"]


def paired(a_runs: list[Path], b_runs: list[Path]) -> dict:
    """``b`` against ``a``, runs paired by seed on the benchmark's per-image successes: exact
    McNemar per seed (``b_only``: images only b gets right), and a paired bootstrap over
    images of the seed-averaged success (95% interval of b - a; it resamples images, not
    seeds: the seed spread is the table's ± column)."""
    for ra, rb in zip(a_runs, b_runs, strict=True):
        seeds = [json.loads((r / "args.json").read_text()).get("seed") for r in (ra, rb)]
        if seeds[0] != seeds[1]:
            raise RuntimeError(f"{ra} and {rb} are not the same seed ({seeds})")
    return paired_successes(
        [benchmark_successes(r) for r in a_runs], [benchmark_successes(r) for r in b_runs]
    )


def paired_successes(
    a: list[tuple[list[str], list[bool]]], b: list[tuple[list[str], list[bool]]]
) -> dict:
    """:func:`paired` on given ``(image ids, successes)`` per seed, ``a[i]`` and ``b[i]`` the
    same seed; every seed scored on the same images."""
    per_seed, a_all, b_all, ids0 = [], [], [], None
    for (ids_a, sa), (ids_b, sb) in zip(a, b, strict=True):
        if ids_a != ids_b or (ids0 is not None and ids_a != ids0):
            raise RuntimeError("paired runs scored different images")
        ids0 = ids_a
        t = mcnemar_test(sb, sa)
        per_seed.append({"b_only": t["a_only"], "a_only": t["b_only"], "p": t["p"]})
        a_all.append(sa)
        b_all.append(sb)
    diff, lo, hi = paired_bootstrap(np.mean(a_all, axis=0), np.mean(b_all, axis=0))
    return {"per_seed": per_seed, "diff": diff, "ci95": [lo, hi]}


def mean_rate(pairs: list[list[int]]) -> tuple[str, float]:
    """(``85.1 ± 0.8%``, the mean in points): mean ± sample std of the seeds' rates."""
    m, sd = mean_std([k / n for k, n in pairs])
    return f"{100 * m:.1f} ± {100 * sd:.1f}%", 100 * m


def print_table(rows: list[dict], base: dict, n_seeds: int) -> None:
    n_bench = rows[0]["benchmark"][1] if rows else BENCHMARK_IMAGES
    n_test = rows[0]["synthetic_test"][1] if rows else "?"
    n_real = (rows[0]["real"] or [0, "?"])[1] if rows else "?"
    print(
        f"\n| model | parameters | {benchmark_name(n_bench)}: mean ± std over {n_seeds} seeds "
        f"| per seed [95% CI] | synthetic test part ({n_test} images) | real Jacquard "
        f"samples, dev set ({n_real} views) | per seed | training | best.pt epoch |"
    )
    print("|---|---:|---:|---|---:|---:|---|---:|---:|")
    b = base
    real_b = b.get("real")
    print(
        f"| mask-centroid baseline | – | {100 * b['benchmark'].success_rate:.1f}% | "
        f"{b['benchmark'].describe()} | {100 * b['synthetic_test'].success_rate:.1f}% | "
        f"{'–' if real_b is None else f'{100 * real_b.success_rate:.1f}%'} | "
        f"{'–' if real_b is None else f'{sum(real_b.successes)}/{len(real_b)}'} | – | – |"
    )
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        per_seed = "; ".join(format_rate(*r["benchmark"]).rsplit(" of ", 1)[0] for r in rs)
        real = [r["real"] for r in rs if r["real"]]
        print(
            f"| {name} | {rs[0]['params_m']:.2f} M | {mean_rate([r['benchmark'] for r in rs])[0]} | "
            f"{per_seed} | {mean_rate([r['synthetic_test'] for r in rs])[0]} | "
            f"{mean_rate(real)[0] if real else '–'} | "
            f"{', '.join(f'{k}/{n}' for k, n in real) if real else '–'} | "
            f"{rs[0]['epochs']} epochs, {sum(r['train_min'] for r in rs) / len(rs):.1f} min | "
            f"{', '.join(str(r['best_epoch']) for r in rs)} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS))
    p.add_argument("--seeds", type=int, default=3, help="training seeds per model (0..N-1)")
    p.add_argument("--outdir", default=str(REPO / "runs" / "results_table"))
    p.add_argument("--reuse", action="store_true", help="reuse each run's newest finished run")
    p.add_argument(
        "--no-train", action="store_true", help="with --reuse: skip (model, seed) pairs not run"
    )
    p.add_argument("--jacquard-path", default=str(JACQUARD_SAMPLES))
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument("train_args", nargs="*", help="extra train_net.py flags after --")
    args = p.parse_args()
    outdir = Path(args.outdir)
    jacquard = Path(args.jacquard_path) if Path(args.jacquard_path).is_dir() else None
    if jacquard is None:
        print(f"{args.jacquard_path} not found: the real-data column is left empty")
    t_start = time.perf_counter()
    rows = []
    for name in args.models:
        for seed in range(args.seeds):
            desc = f"{name}_s{seed}"
            run = newest_run(outdir, desc) if args.reuse else None
            if run is None and args.no_train:
                print(f"{desc}: no finished run in {outdir}, left out")
                continue
            if run is None:
                run = train(name, seed, outdir, args.train_args)
            rows.append(run_row(name, seed, run, jacquard))
            if args.json:  # after every run, so a stopped table keeps what it has
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    input_size = rows[0]["input_size"] if rows else 224
    base = baseline_rows(input_size, jacquard, args.train_args)
    print_table(rows, base, max([r["seed"] + 1 for r in rows], default=args.seeds))
    if jacquard is not None:
        print("\nreal views missed (<view>_<object>) per seed:")
        for r in rows:
            print(f"- {r['model']} seed {r['seed']}: {', '.join(r['real_failed']) or 'none'}")
    print(f"\nwhole table: {(time.perf_counter() - t_start) / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"rows": rows, "baseline": {k: v.summary() for k, v in base.items()}}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
