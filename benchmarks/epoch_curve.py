"""Benchmark success against training epochs for one network: where accuracy saturates.

    python benchmarks/epoch_curve.py --network ggcnn2 --epochs 60 --every 5
    python benchmarks/epoch_curve.py --run runs/curve/<run>        # score an existing run

Trains one run with ``--save-every-epochs`` (or takes ``--run``), then scores every kept
``epoch_<N>.pt`` on the synthetic benchmark set and prints one markdown row per snapshot:
benchmark success with its 95% Wilson interval, the validation success of that epoch, and
the learning rate. The README's choice of training budgets rests on this curve.
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
from utils.checkpoint import load_checkpoint  # noqa: E402
from utils.data.benchmark import BENCHMARK_IMAGES, benchmark_name  # noqa: E402
from utils.stats import format_rate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default=None, help="an existing run folder with epoch_<N>.pt files")
    p.add_argument("--network", default="ggcnn2")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--every", type=int, default=5, help="keep a snapshot every N epochs")
    p.add_argument("--outdir", default=str(REPO / "runs" / "curve"))
    p.add_argument("--benchmark-images", type=int, default=BENCHMARK_IMAGES)
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument("train_args", nargs="*", help="extra train_net.py flags after --")
    args = p.parse_args()
    t0 = time.perf_counter()
    if args.run is None:
        desc = f"curve_{args.network}"
        train_net.main(
            train_net.parse_args(
                ["--network", args.network, "--epochs", str(args.epochs),
                 "--save-every-epochs", str(args.every), "--description", desc,
                 "--outdir", args.outdir, "--benchmark-images", "0", *args.train_args]
            )
        )  # fmt: skip
        run = sorted(Path(args.outdir).glob(f"*_{desc}"))[-1]
    else:
        run = Path(args.run)
    snapshots = sorted(run.glob("epoch_*.pt"))
    if not snapshots:
        raise SystemExit(f"{run}: no epoch_<N>.pt snapshots (train with --save-every-epochs)")
    rows = []
    for snap in snapshots:
        ckpt = load_checkpoint(snap)
        summary = eval_net.main(
            eval_net.parse_args(
                ["--network", str(snap), "--dataset", "benchmark", "--benchmark-images",
                 str(args.benchmark_images), "--num-workers", "0",
                 "--outdir", str(run / "curve_eval")]
            )
        )  # fmt: skip
        rows.append(
            {
                "epoch": ckpt["epoch"],
                "correct": summary["correct"],
                "images": summary["images"],
                "val_success": ckpt["metrics"].get("val_success"),
                "lr": ckpt["metrics"].get("lr"),
            }
        )
    name = benchmark_name(rows[0]["images"])
    print(f"\n{run.name}: every kept epoch of one run (one seed), scored on the {name}\n")
    print(f"| epoch | {name} [95% CI] | validation success | learning rate |")
    print("|---:|---|---:|---:|")
    for r in rows:
        val = "–" if r["val_success"] is None else f"{100 * r['val_success']:.1f}%"
        print(
            f"| {r['epoch']} | {format_rate(r['correct'], r['images'])} | {val} | {r['lr']:.2e} |"
        )
    print(f"\n{(time.perf_counter() - t0) / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
