"""The README's results table: every network trained on the synthetic set, scored on its
object-wise test split and on the real Jacquard samples, beside the mask-centroid baseline.

    python benchmarks/results_table.py                      # train all, then print the table
    python benchmarks/results_table.py --models ggcnn pspnet-r18-ppm --reuse

Each model is trained with ``train_net.py``'s defaults (plus the model's flags in MODELS) into
``<outdir>/<timestamp>_<model>/``; ``--reuse`` takes the newest finished run of a model
instead of training again. The synthetic column is ``best.pt`` (picked on the validation part)
on the object-wise test part; the real column runs the same checkpoint on all views of
``../shared/data/jacquard_samples`` (never seen in training). Both are scored again with
``eval_net --tta d8`` (maps averaged over the 8 dihedral views). ms/image is the network's
forward time per image at batch size 8 with eval_net's defaults (--device auto, --amp auto:
bf16 on CPUs with bf16 units), post-processing excluded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import eval_net  # noqa: E402
import train_net  # noqa: E402
from models import count_parameters  # noqa: E402
from utils.baselines import mask_centroid_grasp  # noqa: E402
from utils.checkpoint import load_model  # noqa: E402
from utils.data.build import dataset_from_args, split_from_args  # noqa: E402
from utils.evaluation import EvaluationResults, evaluate_grasps  # noqa: E402

MODELS: dict[str, list[str]] = {
    "ggcnn": ["--network", "ggcnn"],
    "ggcnn2": ["--network", "ggcnn2"],
    "pspnet-r18-ppm": ["--network", "pspnet", "--backbone", "resnet18", "--pooling", "ppm"],
    "pspnet-r18-lgp": ["--network", "pspnet", "--backbone", "resnet18", "--pooling", "lgp"],
    # ResNet-50 trains ~4x slower than ResNet-18 on a 2-core CPU: fewer epochs keep the table
    # to about an hour and a half; the epochs column says so.
    "pspnet-r50-ppm": ["--network", "pspnet", "--backbone", "resnet50", "--pooling", "ppm",
                       "--epochs", "8"],
    "pspnet-r50-lgp": ["--network", "pspnet", "--backbone", "resnet50", "--pooling", "lgp",
                       "--epochs", "8"],
}  # fmt: skip
JACQUARD_SAMPLES = REPO.parent / "shared" / "data" / "jacquard_samples"


def newest_run(outdir: Path, name: str) -> Path | None:
    runs = sorted(p for p in outdir.glob(f"*_{name}") if (p / "test_results.json").is_file())
    return runs[-1] if runs else None


def train(name: str, outdir: Path, extra: list[str]) -> Path:
    args = train_net.parse_args(
        [*MODELS[name], "--description", name, "--outdir", str(outdir), *extra]
    )
    train_net.main(args)
    run = newest_run(outdir, name)
    if run is None:
        raise RuntimeError(f"training {name} wrote no test_results.json in {outdir}")
    return run


def score(checkpoint: Path, name: str, flags: list[str]) -> dict:
    """eval_net on ``checkpoint`` with ``flags``, results under ``<run>/<name>``; adds
    ``failed``: the ids of the images it got wrong."""
    out = checkpoint.parent / name
    args = eval_net.parse_args(
        [
            "--network", str(checkpoint), *flags, "--batch-size", "8", "--num-workers", "0",
            "--outdir", str(out), "--results-json", str(out / "results.json"),
        ]
    )  # fmt: skip
    summary = eval_net.main(args)
    per_image = json.loads((out / "results.json").read_text())["per_image"]
    summary["failed"] = [
        i for i, ok in zip(per_image["ids"], per_image["successes"], strict=True) if not ok
    ]
    return summary


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


def baseline_rows(
    input_size: int, jacquard: Path | None, train_args: list[str]
) -> tuple[float, float | None]:
    """The baseline on the same synthetic test part as the networks, and on the real views."""
    args = train_net.parse_args(["--input-size", str(input_size), *train_args])
    synthetic = dataset_from_args(args, augment=False)
    test = split_from_args(args, synthetic)["test"]
    syn = baseline(synthetic, test).success_rate
    real = None
    if jacquard is not None:
        from utils.data import JacquardDataset

        ds = JacquardDataset(jacquard, output_size=input_size)
        real = baseline(ds, list(range(len(ds)))).success_rate
    return syn, real


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--outdir", default=str(REPO / "runs" / "results_table"))
    p.add_argument("--reuse", action="store_true", help="reuse each model's newest finished run")
    p.add_argument("--jacquard-path", default=str(JACQUARD_SAMPLES))
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument("train_args", nargs="*", help="extra train_net.py flags after --")
    args = p.parse_args()
    outdir = Path(args.outdir)
    jacquard = Path(args.jacquard_path) if Path(args.jacquard_path).is_dir() else None
    if jacquard is None:
        print(f"{args.jacquard_path} not found: the real-data column is left empty")

    rows = []
    for name in args.models:
        run = newest_run(outdir, name) if args.reuse else None
        if run is None:
            t0 = time.perf_counter()
            run = train(name, outdir, args.train_args)
            print(f"{name}: trained in {(time.perf_counter() - t0) / 60:.1f} min -> {run}")
        summary = json.loads((run / "test_results.json").read_text())["summary"]
        ckpt = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
        model, stored = load_model(ckpt)
        real = score(ckpt, "eval_jacquard_samples", real_flags(jacquard)) if jacquard else None
        # The same checkpoint with test-time augmentation over the 8 dihedral views.
        syn_tta = score(ckpt, "eval_tta", ["--tta", "d8"])
        real_tta = (
            score(ckpt, "eval_jacquard_samples_tta", [*real_flags(jacquard), "--tta", "d8"])
            if jacquard
            else None
        )
        rows.append(
            {
                "model": name,
                "params_m": count_parameters(model) / 1e6,
                "synthetic_test": summary["test_success"],
                "synthetic_images": summary["test_images"],
                "real_jacquard": real["success_rate"] if real else None,
                "real_images": real["images"] if real else None,
                "real_failed": real["failed"] if real else None,
                "synthetic_test_tta": syn_tta["success_rate"],
                "real_jacquard_tta": real_tta["success_rate"] if real_tta else None,
                "real_failed_tta": real_tta["failed"] if real_tta else None,
                "ms_per_image": real["network_ms_per_image"] if real else None,
                "train_min": summary["train_seconds"] / 60,
                "best_epoch": stored["epoch"],
                "epochs": stored["args"]["epochs"],
                "input_size": stored["args"]["input_size"],
                "run": str(run),
            }
        )
    input_size = rows[0]["input_size"] if rows else 224
    syn_base, real_base = baseline_rows(input_size, jacquard, args.train_args)

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.1%}"

    n_syn = rows[0]["synthetic_images"] if rows else "?"
    n_real = (rows[0]["real_images"] if rows else None) or "?"
    print()
    print(
        f"| model | parameters | synthetic test ({n_syn} images, object-wise) | with d8 TTA | "
        f"real Jacquard samples ({n_real} views) | with d8 TTA | ms/image | training | "
        "best.pt epoch |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| mask-centroid baseline | – | {pct(syn_base)} | – | {pct(real_base)} | – | – | – | – |"
    )
    for r in rows:
        ms = "–" if r["ms_per_image"] is None else f"{r['ms_per_image']:.1f}"
        print(
            f"| {r['model']} | {r['params_m']:.2f} M | {pct(r['synthetic_test'])} | "
            f"{pct(r['synthetic_test_tta'])} | {pct(r['real_jacquard'])} | "
            f"{pct(r['real_jacquard_tta'])} | {ms} | "
            f"{r['epochs']} epochs, {r['train_min']:.1f} min | {r['best_epoch']} |"
        )
    if jacquard is not None:
        print("\nreal views missed (<view>_<object>), without | with d8 TTA:")
        for r in rows:
            plain, tta = r["real_failed"], r["real_failed_tta"]
            print(f"- {r['model']}: {', '.join(plain) or 'none'} | {', '.join(tta) or 'none'}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"baseline": [syn_base, real_base], "rows": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
