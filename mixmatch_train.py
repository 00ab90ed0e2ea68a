"""MixMatch semi-supervised training of a grasp network: a few labelled images, many unlabelled.

    python mixmatch_train.py --network ggcnn2 --labeled-fraction 0.1
    python mixmatch_train.py --network pspnet --labeled-count 50 --unlabeled-path DIR

A fixed labelled subset of the training part (``--labeled-fraction`` or ``--labeled-count``,
chosen by ``--labeled-seed``) keeps its labels; the rest of the training part is used as
unlabelled images, whose grasp files are never opened, plus any images in ``--unlabeled-path``
(more synthetic scenes, or real depth images without grasp files). The MixMatch step
(:mod:`utils.mixmatch`): label guessing over ``--k`` dihedral views, quality sharpened at
``--t``, MixUp with ``--alpha`` (the opening map mixed as ``--mixup-width`` says; ``--mix
cutmix``: boxes cut from the other sample instead of a blend; ``none``: no mixing), the
unlabelled loss weighted by ``--lambda-u`` ramped up over ``--rampup`` steps. The EMA of the
weights is on by default and is what picks and is saved as the evaluated weights of
``best.pt``. Every other option is ``train_net.py``'s, through the
shared harness; the labelled subset is written to ``labeled_subset.json`` in the run folder.
"""

from __future__ import annotations

import argparse

import torch

from utils import cli, harness
from utils.data.build import (
    build_run_data,
    check_unlabelled_images,
    dataset_from_args,
    unlabelled_dataset_from_path,
    unlabelled_loader,
)
from utils.data.unlabelled import ConcatItems, SubsetItems, UnlabelledItems
from utils.entrypoint import run_main
from utils.mixmatch import GUESS_MODELS, MIX_KINDS, MIXUP_WIDTHS, MixMatchStep


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.training_parser(__doc__.split("\n")[0])
    parser.set_defaults(model_ema=True)
    cli.add_labelled_args(parser, fraction_default=0.25)
    g = parser.add_argument_group("MixMatch")
    g.add_argument(
        "--unlabeled-path", default=None, help="more unlabelled images (a folder, no grasp files)"
    )
    g.add_argument("--k", type=int, default=2, help="dihedral views per unlabelled image")
    g.add_argument("--t", type=float, default=0.5, help="sharpening temperature of the quality")
    g.add_argument(
        "--alpha", type=float, default=0.75, help="the mix's lambda ~ Beta(alpha, alpha)"
    )
    g.add_argument("--lambda-u", type=float, default=1.0, help="weight of the unlabelled loss")
    g.add_argument("--rampup", type=int, default=500, help="optimiser steps to ramp lambda-u up")
    g.add_argument(
        "--mixup-width",
        choices=MIXUP_WIDTHS,
        default="weighted",
        help="how MixUp mixes the opening map: weighted by the quality maps (a grasp keeps its "
        "opening) or linearly, as every other map (the paper's MixUp; shrinks openings); "
        "only for --mix mixup",
    )
    g.add_argument(
        "--mix",
        choices=MIX_KINDS,
        default="mixup",
        help="how samples are mixed: mixup (the paper's: λ a + (1 - λ) b), cutmix (a box of "
        "1 - λ of the frame from the other sample, inputs and maps alike) or none",
    )
    g.add_argument(
        "--guess-model",
        choices=GUESS_MODELS,
        default="online",
        help="the network that guesses the unlabelled maps: the one being trained (the "
        "paper's) or its EMA (needs --model-ema 1, on by default here)",
    )
    args = harness.parse_training_args(parser, argv, script="mixmatch_train.py")
    if args.guess_model == "ema" and not args.model_ema:
        parser.error("--guess-model ema needs --model-ema 1 (the EMA network guesses)")
    if args.labeled_count is None and args.labeled_fraction == 1.0:
        parser.error("--labeled-fraction 1 leaves no unlabelled image: use train_net.py")
    try:
        MixMatchStep(args.k, args.t, args.alpha, args.lambda_u, args.rampup)  # checks the values
    except ValueError as e:
        parser.error(str(e))
    return args


def make_data(args: argparse.Namespace, dist) -> harness.RunData:
    data = build_run_data(args, dist)  # the labelled subset, from --labeled-*
    if not data.unlabelled_train:
        raise ValueError(
            f"--labeled-count/--labeled-fraction: all {len(data.split['train'])} training images "
            "are labelled, none is left unlabelled"
        )
    parts = [
        SubsetItems(
            UnlabelledItems(dataset_from_args(args, augment=args.augment)), data.unlabelled_train
        )
    ]
    if args.unlabeled_path:
        extra = unlabelled_dataset_from_path(args.unlabeled_path, args, augment=args.augment)
        check_unlabelled_images(extra, data, args.unlabeled_path)
        parts.append(extra)
    data.unlabelled_loader = unlabelled_loader(ConcatItems(parts), args, dist)
    return data


def make_step(run: harness.RunContext, model: torch.nn.Module) -> MixMatchStep:
    a = run.args
    return MixMatchStep(
        a.k, a.t, a.alpha, a.lambda_u, a.rampup, a.map_loss, a.mixup_width, a.mix, a.guess_model
    )


def main(args: argparse.Namespace) -> dict:
    return harness.run_training(args, make_step, make_data)


if __name__ == "__main__":
    run_main(main, parse_args)
