"""Distil a trained teacher's grasp maps into a student network (knowledge distillation).

    python distill.py --teacher runs/<pspnet-r50 run>/best.pt --network pspnet --backbone resnet18
    python distill.py --teacher runs/<run>/best.pt --network ggcnn2 --kd-weight 2
    python distill.py --teacher T.pt --network ggcnn2 --unlabeled-path ../shared/data/jacquard_unlabelled
    python distill.py --teacher A.pt B.pt C.pt --network ggcnn2    # an ensemble as the teacher

The teacher is rebuilt from its checkpoint, frozen and run without gradients (several
checkpoints: their mean maps, :class:`models.MapEnsemble`); the student is
any registered network, trained with every data, output, checkpoint, resume, EMA and torchrun
option of ``train_net.py`` through the shared harness (:mod:`utils.harness`). The loss is
``--task-weight`` x (student against the labels) + ``--kd-weight`` x (student against the
teacher's maps) [+ ``--feature-weight`` x a hint loss between PSPNet features]; see
:mod:`utils.distillation`. Unlabelled images (``--unlabeled-path``) are matched to the teacher
only. The result is an ordinary checkpoint: ``eval_net.py`` evaluates it, ``--resume``
continues it.
"""

from __future__ import annotations

import argparse

import torch

from models import MapEnsemble
from utils import cli, harness
from utils.checkpoint import WEIGHTS
from utils.data.build import (
    SPLIT_FLAGS,
    build_run_data,
    check_unlabelled_images,
    dataset_root,
    unlabelled_dataset_from_path,
    unlabelled_loader,
)
from utils.depth import trained_depth_norm
from utils.distillation import DistillStep, load_teacher
from utils.entrypoint import run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.training_parser(__doc__.split("\n")[0])
    g = parser.add_argument_group("distillation")
    # Not argparse-required: on --resume it comes from the run's stored arguments.
    g.add_argument(
        "--teacher",
        nargs="+",
        default=None,
        help="teacher checkpoint written by train_net.py; several: the mean of their maps",
    )
    g.add_argument(
        "--teacher-weights", default="auto", choices=WEIGHTS, help="teacher's model or EMA weights"
    )
    g.add_argument("--task-weight", type=float, default=1.0, help="weight of the label loss")
    g.add_argument("--kd-weight", type=float, default=1.0, help="weight of the teacher loss")
    g.add_argument(
        "--feature-weight",
        type=float,
        default=0.0,
        help="weight of the feature hint loss (PSPNet teacher and student)",
    )
    g.add_argument(
        "--unlabeled-path",
        default=None,
        help="a folder of images without grasp files, distilled from the teacher only",
    )
    # The student sees the teacher's depth normalisation unless told otherwise.
    parser.set_defaults(depth_norm=None)
    args = harness.parse_training_args(parser, argv, script="distill.py")
    if not args.teacher:
        parser.error("--teacher is required: a checkpoint written by train_net.py")
    if isinstance(args.teacher, str):  # resuming a run from before several teachers
        args.teacher = [args.teacher]
    if args.depth_norm is None:
        args.depth_norm = teacher_depth_norm(args.teacher[0])
    if args.feature_weight > 0 and len(args.teacher) > 1:
        parser.error("--feature-weight needs a single --teacher (one network's features)")
    for flag in ("task_weight", "kd_weight", "feature_weight"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if args.task_weight == args.kd_weight == 0:
        parser.error("--task-weight 0 --kd-weight 0: nothing to learn from")
    return args


def teacher_depth_norm(path: str) -> str:
    """The ``--depth-norm`` the teacher at ``path`` was trained with ("mean" before the flag)."""
    from utils.checkpoint import load_checkpoint

    return trained_depth_norm(load_checkpoint(path).get("args", {}))


def make_data(args: argparse.Namespace, dist) -> harness.RunData:
    data = build_run_data(args, dist)
    if args.unlabeled_path:
        images = unlabelled_dataset_from_path(args.unlabeled_path, args, augment=args.augment)
        check_unlabelled_images(images, data, args.unlabeled_path)
        data.unlabelled_loader = unlabelled_loader(images, args, dist)
    return data


def check_teacher_split(args: argparse.Namespace, path: str, taught: dict) -> None:
    """The teacher at ``path``, if trained on the student's dataset, must have used the same
    split: trained on another, it has seen labels of the student's test part."""
    root = dataset_root(args.dataset, args.dataset_path, args.synthetic_scenes)
    theirs = dataset_root(taught.get("dataset"), taught.get("dataset_path"),
                          taught.get("synthetic_scenes"))  # fmt: skip
    if root is None or root != theirs:
        return
    defaults = cli.data_defaults()
    for k in SPLIT_FLAGS:
        if taught.get(k, defaults[k]) != getattr(args, k):
            raise ValueError(
                f"--teacher {path}: trained on this dataset with --{k.replace('_', '-')} "
                f"{taught.get(k, defaults[k])}, the student uses {getattr(args, k)}: the teacher "
                "may have seen the student's test images"
            )


def make_step(run: harness.RunContext, model: torch.nn.Module) -> DistillStep:
    args = run.args
    teachers = []
    for path in args.teacher:
        teacher, ckpt = load_teacher(
            path, args.teacher_weights, cli.input_channels(args), args.input_size,
            run.dist.device,
        )  # fmt: skip
        check_teacher_split(args, path, ckpt.get("args", {}))
        taught_norm = trained_depth_norm(ckpt.get("args", {}))
        if taught_norm != args.depth_norm:
            raise ValueError(
                f"--teacher {path}: trained with --depth-norm {taught_norm}, the student "
                f"uses {args.depth_norm}: the teacher would see inputs it was not trained on"
            )
        teachers.append(teacher)
    teacher = teachers[0] if len(teachers) == 1 else MapEnsemble(teachers)
    if run.precision.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    if args.feature_weight > 0 and run.dist.distributed:
        raise ValueError("--feature-weight runs in one process only (its adapter is not DDP)")
    return DistillStep(
        teacher, model, args.task_weight, args.kd_weight, args.feature_weight, args.map_loss
    )


def main(args: argparse.Namespace) -> dict:
    return harness.run_training(args, make_step, make_data)


if __name__ == "__main__":
    run_main(main, parse_args)
