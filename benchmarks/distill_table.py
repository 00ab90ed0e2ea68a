"""RESULTS.md's distillation table: students trained alone and distilled from a teacher
(``distill.py``), over several seeds, scored on the synthetic benchmark set (2,000 held-out
images), with paired tests of each distilled student against the same student alone.

    python benchmarks/distill_table.py --seeds 3              # train what is missing, print
    python benchmarks/distill_table.py --seeds 3 --no-train   # print from finished runs only
    python benchmarks/distill_table.py --ship weights/ggcnn2_distilled.pt

Rows (PAIRS): PSPNet-ResNet50 -> PSPNet-ResNet18 (the original plan) and the best
PSPNet-ResNet18 -> GG-CNN2 (a tiny student, 0.5% of the teacher's weights). Every student
uses the flags and epoch budget of ``results_table.MODELS``; the student-alone runs are the
results table's own (``--alone-dir``), trained there when missing, so both tables show the
same runs. The ResNet18 teacher is the results-table ResNet18 run (PPM or LGP, any seed) with
the best *validation* score, so no scored image chooses it. Distilled runs go to
``<outdir>/<timestamp>_<student>_kd_<teacher>_s<seed>/``.

Paired tests use the benchmark's per-image successes of the same seed (exact McNemar), and a
paired bootstrap over images of the seed-averaged success (95% interval of distilled - alone).
ms/image: the forward pass on this machine's CPU at the run's input size, batch 1, fp32 and
the precision ``--amp auto`` picks here. ``--ship`` writes the tiny student with the best
validation score as an inference-only file with a JSON note (command, figures, a small fixed
check set that ``tests/test_shipped_weights.py`` re-scores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_table import (  # noqa: E402
    JACQUARD_SAMPLES,
    MODELS,
    benchmark_successes,
    mean_rate,
    newest_run,
    paired,
    real_result,
    train,  # noqa: E402
)
from train_speed import time_infer  # noqa: E402

import distill  # noqa: E402
import eval_net  # noqa: E402
from models import count_parameters  # noqa: E402
from utils.checkpoint import (  # noqa: E402
    atomic_torch_save,
    inference_checkpoint,
    load_checkpoint,
    load_model,
)
from utils.data.benchmark import BENCHMARK_IMAGES, benchmark_name  # noqa: E402
from utils.precision import resolve_precision  # noqa: E402
from utils.stats import format_rate  # noqa: E402


@dataclass(frozen=True)
class Pair:
    student: str  # a results_table.MODELS name
    teacher: str  # the teacher's name in run names
    #: The MODELS name the teacher is trained with here (seed 0); None: the results-table
    #: ResNet18 run (PPM or LGP, any seed) with the best validation score.
    teacher_model: str | None


PAIRS = [
    Pair("pspnet-r18-ppm", "pspnet-r50", "pspnet-r50-ppm"),
    Pair("ggcnn2", "pspnet-r18", None),
]
#: The check set of a shipped file: the first images of a fresh benchmark generation of this
#: size (deterministic), scored in fp32 on the CPU.
CHECK_IMAGES = 40


def kd_name(pair: Pair, seed: int) -> str:
    return f"{pair.student}_kd_{pair.teacher}_s{seed}"


def val_key(run: Path) -> tuple[float, float]:
    """(validation success, validation IoU) that chose the run's best.pt."""
    ckpt = load_checkpoint(run / "best.pt")
    return float(ckpt.get("best_success", -1)), float(ckpt.get("best_iou", -1))


def teacher_run(pair: Pair, outdir: Path, alone_dir: Path, train: bool) -> Path | None:
    """The teacher's run folder for new distilled runs: the best-validation results-table
    ResNet18, or ``pair.teacher_model`` trained here (seed 0)."""
    if pair.teacher_model is None:
        runs = [r for m in ("pspnet-r18-ppm", "pspnet-r18-lgp") for s in range(10)
                if (r := newest_run(alone_dir, f"{m}_s{s}", weights=True)) is not None]  # fmt: skip
        if not runs and train:
            runs = [train("pspnet-r18-ppm", 0, alone_dir, [])]
        return max(runs, key=val_key) if runs else None
    run = newest_run(outdir, f"{pair.teacher_model}_s0", weights=True)
    if run is None and train:
        run = train(pair.teacher_model, 0, outdir, [])
    return run


def taught_by(run: Path) -> Path:
    """The teacher run folder a distilled run was trained from (its stored ``--teacher``: one
    path, a list of one since several teachers are allowed)."""
    teacher = json.loads((run / "args.json").read_text())["teacher"]
    return Path(teacher if isinstance(teacher, str) else teacher[0]).parent


def train_distilled(pair: Pair, teacher: Path, seed: int, outdir: Path, extra: list[str]) -> Path:
    flags = ["--teacher", str(teacher / "best.pt"), *extra]
    return train(pair.student, seed, outdir, flags, script=distill, desc=kd_name(pair, seed))


def latency_ms(run: Path) -> tuple[float, float, str]:
    """Forward ms/image at batch 1 on the CPU: fp32, and the precision --amp auto picks."""
    model, ckpt = load_model(run / "best.pt")
    size = int(ckpt["args"]["input_size"])
    cpu = torch.device("cpu")
    fp32 = resolve_precision("off", "off", cpu)
    auto = resolve_precision("auto", "auto", cpu)
    ms32 = time_infer(model, fp32, cpu, 1, size, repeats=10)
    if auto.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return ms32, time_infer(model, auto, cpu, 1, size, repeats=10), auto.describe()


def describe(runs: list[Path], jacquard: Path | None) -> dict:
    """Benchmark rates, real-view rates (a development set) and parameters of some runs."""
    rates, real = [], []
    for r in runs:
        _, ok = benchmark_successes(r)
        rates.append([sum(ok), len(ok)])
        if jacquard is not None:
            res = real_result(r, jacquard)
            real.append([res["correct"], res["images"]])
    model, _ = load_model(runs[0] / "best.pt")
    return {"runs": [str(r) for r in runs], "benchmark": rates, "real": real,
            "params": count_parameters(model)}  # fmt: skip


def print_table(rows: list[dict], n_seeds: int) -> None:
    n = rows[0]["benchmark"][0][1] if rows else BENCHMARK_IMAGES
    print(
        f"\n| network | role | parameters | weights / teacher's | {benchmark_name(n)}: mean ± "
        f"std | per seed | to teacher | distilled - alone [95% CI], McNemar p per seed | "
        "real Jacquard samples (dev set) | CPU ms/image fp32 | CPU ms/image auto |"
    )
    print("|---|---|---:|---:|---:|---|---:|---|---|---:|---:|")
    for r in rows:
        text, mean = mean_rate(r["benchmark"])
        if len(r["benchmark"]) == 1:
            text = f"{mean:.1f}% (one run)"
        per_seed = "; ".join(format_rate(k, m).rsplit(" of ", 1)[0] for k, m in r["benchmark"])
        to_t = "–" if r["teacher_mean"] is None else f"{mean - r['teacher_mean']:+.1f}"
        test = "–"
        if r.get("paired"):
            t = r["paired"]
            ps = ", ".join(f"{x['p']:.2g}" for x in t["per_seed"])
            test = (
                f"{100 * t['diff']:+.1f} [{100 * t['ci95'][0]:+.1f}, {100 * t['ci95'][1]:+.1f}]"
                f"; p = {ps}"
            )
        frac = "–" if r["fraction"] is None else f"{100 * r['fraction']:.2f}%"
        real = "–"
        if r["real"]:
            real = ", ".join(f"{k}/{n}" for k, n in r["real"])
            real = f"{mean_rate(r['real'])[0]} ({real})" if len(r["real"]) > 1 else real
        print(
            f"| {r['name']} | {r['role']} | {r['params'] / 1e6:.2f} M | {frac} | {text} | "
            f"{per_seed} | {to_t} | {test} | {real} | {r['ms'][0]:.1f} | {r['ms'][1]:.1f} |"
        )
    print(f"\n({n_seeds} seeds; CPU ms/image auto: {rows[0]['ms'][2] if rows else '?'})")


def ship(
    kd_runs: list[Path], out: Path, table_command: str, student: str, extra: list[str]
) -> dict:
    """Write the best-validation distilled run's weights to ``out`` with a JSON note."""
    run = max(kd_runs, key=val_key)
    ckpt = load_checkpoint(run / "best.pt")
    slim = inference_checkpoint(ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(slim, out)
    check = eval_net.main(
        eval_net.parse_args(
            [
                "--network",
                str(out),
                "--dataset",
                "benchmark",
                "--benchmark-images",
                str(CHECK_IMAGES),
                "--amp",
                "off",
                "--channels-last",
                "off",
                "--device",
                "cpu",
                "--batch-size",
                "8",
                "--num-workers",
                "0",
            ]
        )  # fmt: skip
    )
    ids, ok = benchmark_successes(run)
    note = {
        "file": out.name,
        "network": slim["network"],
        "input_size": slim["args"]["input_size"],
        "teacher": str(taught_by(run).relative_to(REPO)),
        "made_by": f"{table_command} (the run with the best validation score: {run.name})",
        "run_command": "python distill.py "
        + " ".join(
            [
                *MODELS[student],
                "--teacher",
                str(taught_by(run).relative_to(REPO) / "best.pt"),
                "--seed",
                str(slim["args"]["seed"]),
                *extra,
            ]
        ),  # fmt: skip
        "benchmark": {"set": benchmark_name(len(ok)), "correct": sum(ok), "images": len(ok)},
        "check": {
            "set": f"--dataset benchmark --benchmark-images {CHECK_IMAGES}, fp32, CPU",
            "correct": check["correct"],
            "images": check["images"],
        },
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(note, indent=1) + "\n")
    tmp.replace(out.with_suffix(".json"))
    print(f"shipped {out} ({out.stat().st_size / 1024:.0f} KiB) from {run}: {note['benchmark']}")
    return note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="training seeds per student (0..N-1)")
    p.add_argument("--outdir", default=str(REPO / "runs" / "distill_table"))
    p.add_argument("--alone-dir", default=str(REPO / "runs" / "results_table"))
    p.add_argument("--no-train", action="store_true", help="leave out runs not finished yet")
    p.add_argument("--jacquard-path", default=str(JACQUARD_SAMPLES))
    p.add_argument("--ship", default=None, help="write the tiny student here (weights/*.pt)")
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument("distill_args", nargs="*", help="extra distill.py flags after --")
    args = p.parse_args()
    outdir, alone_dir = Path(args.outdir), Path(args.alone_dir)
    jacquard = Path(args.jacquard_path) if Path(args.jacquard_path).is_dir() else None
    train = not args.no_train
    t_start = time.perf_counter()
    rows, kd_tiny = [], []
    for pair in PAIRS:
        first = newest_run(outdir, kd_name(pair, 0), weights=True)
        teacher = taught_by(first) if first else teacher_run(pair, outdir, alone_dir, train)
        if teacher is None:
            print(f"{pair.teacher}: no finished teacher run, {pair.student} left out")
            continue
        t = describe([teacher], jacquard)
        t_mean = mean_rate(t["benchmark"])[1]
        rows.append({"name": pair.teacher, "role": f"teacher ({teacher.name})", **t,
                     "fraction": None, "teacher_mean": None, "ms": latency_ms(teacher)})  # fmt: skip
        alone, kd = [], []
        for seed in range(args.seeds):
            ra = newest_run(alone_dir, f"{pair.student}_s{seed}", weights=True)
            if ra is None and train:
                ra = train(pair.student, seed, alone_dir, [])
            rk = newest_run(outdir, kd_name(pair, seed), weights=True)
            if rk is None and train:
                rk = train_distilled(pair, teacher, seed, outdir, args.distill_args)
            if rk is not None and taught_by(rk) != teacher:
                raise RuntimeError(f"{rk} was distilled from {taught_by(rk)}, not {teacher}")
            if ra is not None and rk is not None:  # paired seeds only
                alone.append(ra)
                kd.append(rk)
        if not kd:
            print(f"{pair.student}: no finished pair of runs, left out")
            continue
        ms = latency_ms(kd[0])
        for role, runs in (("alone", alone), (f"distilled from {pair.teacher}", kd)):
            d = describe(runs, jacquard)
            rows.append({"name": pair.student, "role": role, **d, "ms": ms,
                         "fraction": d["params"] / t["params"], "teacher_mean": t_mean})  # fmt: skip
        rows[-1]["paired"] = paired(alone, kd)
        if pair.student == "ggcnn2":
            kd_tiny = kd
    print_table(rows, args.seeds)
    print(f"\nwhole table: {(time.perf_counter() - t_start) / 60:.1f} min")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=1, default=str) + "\n")
    if args.ship:
        if not kd_tiny:
            raise SystemExit("--ship: no distilled GG-CNN2 run to ship")
        ship(kd_tiny, Path(args.ship), "python benchmarks/distill_table.py --ship " + args.ship,
             "ggcnn2", args.distill_args)  # fmt: skip


if __name__ == "__main__":
    main()
