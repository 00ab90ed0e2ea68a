"""Training speed through ``train_net.py`` itself, not only the network: per numeric path, and
how much of a step waits for data with each worker and thread count.

    python benchmarks/train_net_speed.py                         # both tables, this machine
    python benchmarks/train_net_speed.py --tables paths --networks ggcnn2 --compile
    python benchmarks/train_net_speed.py --tables loader --workers 0 1 2 --threads 1 2

Every figure is two runs of the same command, ``--long`` and ``--short`` optimiser steps of one
epoch (default synthetic set, 224 px, batch 8, seed 0): images/s = (long - short) x batch /
(epoch time of long - epoch time of short, from train_net's epoch lines), so start-up,
validation and saving cancel out. "data
wait": the share of the long run's step loop spent waiting for the next batch (train_net's
epoch line). *paths*: plain eager NCHW fp32 (``--amp off --channels-last off``, the baseline),
fp32 + channels_last, the defaults (``--amp auto --channels-last auto``) and, with
``--compile``, the defaults plus ``--compile`` (torch.compile; its compile time is in both runs
and cancels out of the rate, so the table also gives the short run's epoch seconds), per network;
*loader*: per network of ``--loader-networks`` (GG-CNN2), the defaults except
``--num-workers`` / ``--threads`` / ``--prefetch-thread`` (with 0 workers: batches made in the
training process, in line or in a background thread of the lowest priority), against the
default rule (``utils/cli.resolve_workers_threads`` and ``use_prefetch_thread``);
``--repeats N`` runs every row N times, the rows in turn, and gives each row's ratio to the
first row's run of the same repeat. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from utils.cli import resolve_workers_threads, use_prefetch_thread  # noqa: E402
from utils.precision import resolve_precision  # noqa: E402

NETWORKS = {
    "ggcnn": ["--network", "ggcnn"],
    "ggcnn2": ["--network", "ggcnn2"],
    "pspnet-r18": ["--network", "pspnet", "--backbone", "resnet18"],
}
PATHS = {
    "fp32 NCHW (plain)": ["--amp", "off", "--channels-last", "off"],
    "fp32 + channels_last": ["--amp", "off", "--channels-last", "on"],
    "defaults (auto)": [],
}


def timed_run(flags: list[str], batches: int, workdir: Path) -> tuple[float, float | None]:
    """Seconds of the epoch of a ``train_net.py`` run of ``batches`` steps (its epoch line:
    training loop, one validation batch, the checkpoint) and its data-wait share."""
    cmd = [
        sys.executable, "train_net.py", *flags, "--epochs", "1", "--batches-per-epoch",
        str(batches), "--val-batches", "1", "--benchmark-images", "0", "--batch-size", "8",
        "--input-size", "224", "--outdir", str(workdir), "--description", "speed",
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    epoch = re.search(r"^epoch 1/1 .*\| ([\d.]+) s\b", res.stdout, re.M)
    if res.returncode or epoch is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    wait = re.search(r"data_wait (\d+)%", res.stdout)
    return float(epoch.group(1)), (int(wait.group(1)) / 100 if wait else None)


def images_per_second(
    flags: list[str], args: argparse.Namespace
) -> tuple[float, float | None, float]:
    """Training images/s, the long run's data-wait share and the short run's epoch seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        short, _ = timed_run(flags, args.short, Path(tmp))
        long, wait = timed_run(flags, args.long, Path(tmp))
    return (args.long - args.short) * 8 / max(long - short, 1e-9), wait, short


def paths_table(args: argparse.Namespace) -> None:
    auto = resolve_precision("auto", "auto", torch.device("cpu")).describe()
    paths = dict(PATHS)
    if args.compile:
        paths["defaults + --compile"] = ["--compile"]
    print(f"\n(auto = {auto}; short run = {args.short} steps, start-up and compile included)")
    print("\n| network | path | train_net img/s | speed-up | data wait | short run s |")
    print("|---|---|---:|---:|---:|---:|")
    for net in args.networks:
        base = None
        for label, flags in paths.items():
            rate, wait, short = images_per_second([*NETWORKS[net], *flags], args)
            base = base or rate
            shown = "–" if wait is None else f"{wait:.0%}"
            print(
                f"| {net} | {label} | {rate:.1f} | {rate / base:.2f}x | {shown} | {short:.1f} |",
                flush=True,
            )


def loader_table(args: argparse.Namespace) -> None:
    w, t = resolve_workers_threads(None, None)
    rule = (w, t, "on" if use_prefetch_thread("auto", w, t) else "off")
    print(
        f"\nThe defaults, except the flags of each row; the rule here: {rule[0]} worker(s), "
        f"{rule[1]} thread(s), batches made in a background thread: {rule[2]}"
    )
    combos = [
        (w, t, p)
        for w in args.workers
        for t in args.threads
        for p in (args.prefetch if w == 0 else ["off"])
    ]
    if rule not in combos:
        combos.append(rule)
    for net in args.loader_networks:
        # Every repeat runs each row once, in turn, so a drift of the machine hits all rows.
        rates: dict[tuple, list[float]] = {c: [] for c in combos}
        waits: dict[tuple, list[float | None]] = {c: [] for c in combos}
        for _ in range(args.repeats):
            for w, t, p in combos:
                rate, wait, _ = images_per_second(
                    [*NETWORKS[net], "--num-workers", str(w), "--threads", str(t),
                     "--prefetch-thread", p], args,
                )  # fmt: skip
                rates[(w, t, p)].append(rate)
                waits[(w, t, p)].append(wait)
        print(f"\n{net}, {args.repeats} run(s) of each row, in turn; ratios per repeat against "
              "the first row\n")  # fmt: skip
        print("| --num-workers | --threads | --prefetch-thread | train_net img/s (mean) | runs "
              "| vs first row (mean, range) | data wait |")  # fmt: skip
        print("|---:|---:|---|---:|---|---:|---:|")
        first = rates[combos[0]]
        for c in combos:
            r = rates[c]
            ratios = [a / b for a, b in zip(r, first, strict=True)]
            tag = " (rule)" if c == rule else ""
            known = [x for x in waits[c] if x is not None]
            shown = f"{statistics.fmean(known):.0%}" if known else "–"
            print(
                f"| {c[0]}{tag} | {c[1]} | {c[2]} | {statistics.fmean(r):.1f} | "
                + ", ".join(f"{x:.1f}" for x in r)
                + f" | {statistics.fmean(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}] "
                f"| {shown} |",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", nargs="+", default=["paths", "loader"], choices=["paths", "loader"])
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--prefetch", nargs="+", default=["off", "on"], choices=["off", "on"],
                   help="--prefetch-thread values tried with 0 workers")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="also the defaults + --compile")
    p.add_argument("--short", type=int, default=5, help="steps of the shorter run")
    p.add_argument("--long", type=int, default=35, help="steps of the longer run")
    p.add_argument("--loader-networks", nargs="+", default=["ggcnn2"], choices=list(NETWORKS),
                   help="networks of the loader table")  # fmt: skip
    p.add_argument("--repeats", type=int, default=1,
                   help="runs of each loader-table row, in turn")  # fmt: skip
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores, torch {torch.__version__}; {args.long} minus {args.short} steps")
    if "paths" in args.tables:
        paths_table(args)
    if "loader" in args.tables:
        loader_table(args)


if __name__ == "__main__":
    main()
