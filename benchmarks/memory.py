"""Resident memory of a long training run: does it stay flat?

    python benchmarks/memory.py                       # GG-CNN2, 1,000 steps, 128 px
    python benchmarks/memory.py --network pspnet --steps 400 --input-size 224

Runs ``train_net.py`` for ``--steps`` optimiser steps (``--epochs`` epochs of equal length,
each validated and checkpointed, as a real run is) and reads the process's resident set size
(``VmRSS``, its DataLoader workers included) at every epoch line. Prints one row per epoch
and the growth from the end of the second epoch (after warm-up: allocator pools, caches,
first validation) to the end. Linux only (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children, MiB."""
    total = 0.0
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in [str(pid), *kids]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--network", default="ggcnn2")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--input-size", type=int, default=128)
    args = p.parse_args()
    per_epoch = args.steps // args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "train_net.py", "--network", args.network, "--epochs",
            str(args.epochs), "--batches-per-epoch", str(per_epoch), "--val-batches", "2",
            "--benchmark-images", "0", "--input-size", str(args.input_size), "--outdir", tmp,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
        rows = []
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("epoch "):
                rows.append((len(rows) + 1, rss_mib(proc.pid)))
        proc.wait()
    if proc.returncode or len(rows) < 3:
        raise SystemExit(f"the run failed (exit {proc.returncode}); rows: {rows}")
    print(f"{args.network}, {args.input_size} px, {args.steps} steps in {args.epochs} epochs\n")
    print("| after epoch | steps | resident memory (MiB) |")
    print("|---:|---:|---:|")
    for epoch, mib in rows:
        print(f"| {epoch} | {epoch * per_epoch} | {mib:.0f} |")
    base, end = rows[1][1], rows[-1][1]
    print(f"\ngrowth from epoch 2 to epoch {rows[-1][0]}: {100 * (end - base) / base:+.1f}%")


if __name__ == "__main__":
    main()
