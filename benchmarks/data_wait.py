"""Where the data wait of a ``train_net.py`` epoch goes: the items, their stages, collation.

    python benchmarks/data_wait.py                          # GG-CNN2, the defaults, 4 epochs
    python benchmarks/data_wait.py --epochs 3 -- --network pspnet --backbone resnet18

``train_net.py``'s epoch line reports ``data_wait``: the share of the step loop spent in
``next(batches)``. This runs ``train_net.py`` in this process (flags after ``--`` are passed
on, after ``--prefetch-thread off``) with timers around the dataset's items
(``SeededItems.__getitems__``: a batch's items, made together), three of their stages (the
warps, depth's first read from the disk cache included; the depth normalisation; the
batch's target maps) and the batch collation, and
prints per epoch what share of the epoch's step loop each took, beside the wait itself (the
wait is a share of the loop proper, the others of the loop plus its end-of-epoch sums: the
same within a fraction of a percent). With ``--num-workers`` above 0, or batches made in a
background thread (``--prefetch-thread on``, the default with 0 workers on Linux), items are
made beside the step and are not part of the wait; only in-line loading splits up as printed,
so this runs with the thread off. Timing adds
a few microseconds per call. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ("warps", "depth normalisation", "targets")


class Timers:
    """Seconds and calls per name, summed until :meth:`reset`."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def timed(
        self, inner: Callable[..., Any], name: str, count: Callable[..., int] | None = None
    ) -> Callable[..., Any]:
        """``inner``, timed under ``name`` and counted (``count(*args)`` per call: what one
        call makes, a batch's items; default 1)."""

        def call(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t
                self.calls[name] += 1 if count is None else count(*args)

        return call


@contextlib.contextmanager
def instrumented(rows: list[dict[str, float]]) -> Iterator[None]:
    """Within it, every epoch trained appends a row to ``rows``: the loop's seconds, its data
    wait and the shares of the loop spent in items, their stages and collation."""
    import utils.data.base as base
    import utils.data.loader as loader
    import utils.training as training

    timers = Timers()
    train_batches = training._train_batches

    def epoch(*args: Any, **kwargs: Any) -> Any:
        timers.reset()
        t = time.perf_counter()
        out = train_batches(*args, **kwargs)
        loop = time.perf_counter() - t
        state = args[2]
        row = {"epoch": state.epoch, "loop": loop, "wait": state.data_wait or 0.0}
        row["item ms"] = 1000 * timers.seconds["items"] / max(timers.calls["items"], 1)
        for name in ("items", "collation", *STAGES):
            row[name] = timers.seconds[name] / loop
        rows.append(row)
        return out

    def batch_size(_items: Any, keys: list) -> int:
        return len(keys)

    timed = {  # (owner, attribute): (timer name, what a call counts as; None: one)
        (loader.SeededItems, "__getitems__"): ("items", batch_size),  # a batch's items
        (base, "collate_grasp_batch"): ("collation", None),  # make_loader looks it up per call
        (base.GraspDataset, "_warp"): ("warps", None),
        (base, "normalise_depth"): ("depth normalisation", None),
        (base, "stacked_targets"): ("targets", None),  # a batch's targets, drawn together
    }
    # The stack undoes every patch on the way out, also when a later one fails to apply.
    with contextlib.ExitStack() as stack:
        for (owner, attr), (name, count) in timed.items():
            new = timers.timed(getattr(owner, attr), name, count)
            stack.enter_context(mock.patch.object(owner, attr, new))
        stack.enter_context(mock.patch.object(training, "_train_batches", epoch))
        yield


def print_table(rows: list[dict[str, float]]) -> None:
    print("| epoch | loop (s) | data wait | items | ms / item | " + " | ".join(STAGES)
          + " | collation | wait not in items or collation |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|---:|")
    for r in rows:
        rest = r["wait"] - r["items"] - r["collation"]
        print(f"| {r['epoch']} | {r['loop']:.2f} | {r['wait']:.1%} | {r['items']:.1%} | "
              f"{r['item ms']:.2f} | " + " | ".join(f"{r[s]:.1%}" for s in STAGES)
              + f" | {r['collation']:.1%} | {rest:.1%} |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("train_flags", nargs="*", help="after --: flags for train_net.py")
    args = p.parse_args()
    import train_net
    from utils.entrypoint import run_main

    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as out, instrumented(rows):
        sys.argv = ["train_net.py", "--network", "ggcnn2", "--epochs", str(args.epochs),
                    "--benchmark-images", "0", "--outdir", out, "--description", "data_wait",
                    "--prefetch-thread", "off", *args.train_flags]  # fmt: skip
        print(" ".join(sys.argv[1:]))
        run_main(train_net.main, train_net.parse_args)  # exits on an error
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
