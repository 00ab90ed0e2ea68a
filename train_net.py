"""Train a grasp network (GG-CNN, GG-CNN2, PSPNet) with supervised targets.

    python train_net.py --network pspnet                      # synthetic data, no download
    python train_net.py --network ggcnn --dataset cornell --dataset-path <path>
    python train_net.py --resume runs/<run>/last.pt           # continue exactly where it stopped
    torchrun --nproc_per_node=2 train_net.py --network pspnet # DistributedDataParallel

Each run writes ``<outdir>/<timestamp>_<description>/``: ``args.json``, ``last.pt`` (every
epoch, and every ``--checkpoint-every`` steps), ``best.pt`` (best validation success rate),
``tensorboard/`` and, at the end, ``test_results.json`` (best.pt scored on the held-out test
part). Everything but the step lives in the shared harness (:mod:`utils.harness`).
"""

from __future__ import annotations

import argparse

from utils import cli, harness
from utils.entrypoint import run_main
from utils.steps import SupervisedStep


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.training_parser(__doc__.split("\n")[0])
    # A fixed labelled subset of the training part: the labelled-only baseline of MixMatch.
    cli.add_labelled_args(parser, fraction_default=None)
    return harness.parse_training_args(parser, argv, script="train_net.py")


def main(args: argparse.Namespace) -> dict:
    return harness.run_training(args, lambda run, model: SupervisedStep(args.map_loss))


if __name__ == "__main__":
    run_main(main, parse_args)
