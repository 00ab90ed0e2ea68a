"""Command-line flags shared by the scripts, and what turns them into datasets, models, optimisers.

Flag names follow the GG-CNN code (``--dataset``, ``--dataset-path``, ``--use-depth``,
``--use-rgb``, ``--split``, ``--ds-rotate``, ``--batch-size``, ...). Each script composes the
groups it needs, so a flag means the same thing everywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from models import list_networks

#: Where generated data and runs go by default: inside the repository.
REPO_ROOT = Path(__file__).resolve().parents[1]


def str2bool(v: str | bool) -> bool:
    if isinstance(v, bool):
        return v
    if v.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if v.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (1/0, true/false), got {v!r}")


def positive_int(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return n


def non_negative_int(v: str) -> int:
    n = int(v)
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return n


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default="synthetic",
        choices=("cornell", "jacquard", "synthetic"),
        help="dataset format; 'synthetic' generates the built-in dataset on first use",
    )
    g.add_argument(
        "--dataset-path",
        default=None,
        help="dataset root; for synthetic, where to generate it (default data/synthetic/...)",
    )
    g.add_argument("--use-depth", type=str2bool, default=True, help="use depth input (1/0)")
    g.add_argument("--use-rgb", type=str2bool, default=False, help="use RGB input (1/0)")
    g.add_argument("--input-size", type=positive_int, default=224, help="square input, pixels")
    g.add_argument(
        "--depth-type",
        default="perfect",
        choices=("perfect", "stereo"),
        help="Jacquard/synthetic depth file",
    )
    g.add_argument(
        "--split", type=float, default=0.9, help="fraction of the data for training (rest: test)"
    )
    g.add_argument(
        "--split-by",
        default="object",
        choices=("image", "object"),
        help="image-wise or object-wise split (Jacquard: object = folder)",
    )
    g.add_argument(
        "--val-split",
        type=float,
        default=0.1,
        help="fraction of the training part held out for validation (picks best.pt)",
    )
    g.add_argument(
        "--ds-rotate",
        type=float,
        default=0.0,
        help="shift the split's start point (0-1) for a different train/test split",
    )
    g.add_argument("--folds", type=int, default=None, help="k for k-fold cross-validation")
    g.add_argument("--fold", type=int, default=0, help="which fold is the test part")
    g.add_argument(
        "--split-seed", type=int, default=0, help="shuffle seed of the split (-1: file order)"
    )
    g.add_argument(
        "--cornell-crop",
        default="center",
        choices=("center", "labels"),
        help="Cornell crop: image centre, or the old label-centred crop (peeks at labels)",
    )
    g.add_argument(
        "--cache-dir", default=None, help="cache of decoded images (default: data/cache)"
    )
    g.add_argument(
        "--synthetic-scenes", type=positive_int, default=None, help="synthetic set size (scenes)"
    )
    g.add_argument(
        "--object-map",
        default=None,
        help="Cornell: file of 'pcdXXXX objectid' lines for object-wise splits "
        "(default: <dataset-path>/object_map.txt when present)",
    )
    g.add_argument(
        "--num-workers", type=non_negative_int, default=2, help="data-loading worker processes"
    )


#: The flags that define the data and its split. A resumed run must keep them (or test images
#: could leak into training); eval_net.py takes them from the checkpoint when not given.
DATA_FLAGS = (
    "dataset", "dataset_path", "use_depth", "use_rgb", "input_size", "depth_type", "split",
    "split_by", "val_split", "ds_rotate", "folds", "fold", "split_seed", "cornell_crop",
    "object_map", "synthetic_scenes",
)  # fmt: skip


def data_defaults() -> dict[str, Any]:
    """The data flags' own defaults, as ``add_data_args`` declares them."""
    p = argparse.ArgumentParser(add_help=False)
    add_data_args(p)
    defaults = vars(p.parse_args([]))
    return {k: defaults[k] for k in DATA_FLAGS}


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--network", default="pspnet", choices=list_networks(), help="network")
    g.add_argument(
        "--backbone",
        default="resnet18",
        choices=("resnet18", "resnet34", "resnet50", "resnet101"),
        help="PSPNet backbone",
    )
    g.add_argument("--output-stride", type=int, default=16, choices=(8, 16, 32), help="PSPNet")
    g.add_argument("--pooling", default="ppm", choices=("ppm", "lgp"), help="PSPNet pooling")
    g.add_argument("--aux-weight", type=float, default=0.4, help="PSPNet auxiliary-loss weight")
    g.add_argument(
        "--pretrained-backbone",
        default=None,
        help="local torchvision-format ResNet state_dict (.pth) for the PSPNet backbone",
    )


def add_optim_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=positive_int, default=8, help="per-process batch size")
    g.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="training epochs (default: 60 for the GG-CNNs, 30 for PSPNet; see DEFAULT_EPOCHS)",
    )
    g.add_argument(
        "--batches-per-epoch",
        type=positive_int,
        default=None,
        help="optimiser steps per epoch (default: one pass over the training part)",
    )
    g.add_argument(
        "--val-batches", type=positive_int, default=None, help="validation batches (default: all)"
    )
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--optimizer", default="adamw", choices=("adam", "adamw", "sgd"))
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument(
        "--scheduler", default="cosine", choices=("cosine", "none"), help="per-step schedule"
    )
    g.add_argument("--warmup-steps", type=int, default=50)
    g.add_argument("--grad-clip", type=float, default=None, help="max gradient norm")
    g.add_argument("--ds-shuffle", type=str2bool, default=True, help="shuffle training batches")
    g.add_argument(
        "--augment", type=str2bool, default=True, help="random rotation and zoom in training"
    )


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    g.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    g.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--description", default="", help="run name suffix")
    g.add_argument("--outdir", default=str(REPO_ROOT / "runs"), help="parent of run folders")
    g.add_argument(
        "--logdir", default=None, help="TensorBoard folder (default: <run folder>/tensorboard)"
    )
    g.add_argument("--vis", action="store_true", help="write example prediction images")
    g.add_argument("--resume", default=None, help="checkpoint (last.pt) to continue from")


#: Epochs when --epochs is not given: the small GG-CNNs run ~5x more images/s than PSPNet, so
#: they get more epochs for about the same wall time (see README, Results).
DEFAULT_EPOCHS = {"ggcnn": 60, "ggcnn2": 60, "pspnet": 30}


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Cross-flag checks, reported through argparse (one line, names the flag); fills
    network-dependent defaults so args.json records what ran."""
    if getattr(args, "epochs", "absent") is None:
        args.epochs = DEFAULT_EPOCHS.get(getattr(args, "network", ""), 30)
    if hasattr(args, "use_depth") and not (args.use_depth or args.use_rgb):
        parser.error("--use-depth 0 --use-rgb 0: at least one input is needed")
    if hasattr(args, "split") and not 0.0 < args.split <= 1.0:
        parser.error(f"--split must be in (0, 1], got {args.split}")
    if hasattr(args, "val_split") and not 0.0 <= args.val_split < 1.0:
        parser.error(f"--val-split must be in [0, 1), got {args.val_split}")
    if getattr(args, "folds", None) is not None and not 0 <= args.fold < args.folds:
        parser.error(f"--fold must be in [0, {args.folds}), got {args.fold}")
    if args.dataset in ("cornell", "jacquard") and not args.dataset_path:
        parser.error(f"--dataset {args.dataset} needs --dataset-path")
    # For synthetic data the path is where the set is generated, so it may not exist yet.
    if args.dataset != "synthetic" and args.dataset_path and not Path(args.dataset_path).is_dir():
        parser.error(f"--dataset-path {args.dataset_path}: no such folder")


def input_channels(args: argparse.Namespace) -> int:
    return int(args.use_depth) + 3 * int(args.use_rgb)


# --- datasets ----------------------------------------------------------------------------------
def dataset_from_args(args: argparse.Namespace, augment: bool) -> Dataset:
    """The whole dataset named by the flags, with or without training augmentation."""
    from utils.data import get_dataset

    kwargs: dict[str, Any] = {
        "output_size": args.input_size,
        "use_depth": args.use_depth,
        "use_rgb": args.use_rgb,
        "random_rotate": augment,
        "random_zoom": augment,
        "cache_dir": args.cache_dir or str(REPO_ROOT / "data" / "cache"),
    }
    if args.dataset in ("jacquard", "synthetic"):
        kwargs["depth_type"] = args.depth_type
    if args.dataset == "cornell":
        kwargs["crop"] = args.cornell_crop
        if getattr(args, "object_map", None):
            kwargs["object_map"] = args.object_map
    if args.dataset == "synthetic" and args.synthetic_scenes:
        kwargs["synthetic_kwargs"] = {"n_scenes": args.synthetic_scenes}
    return get_dataset(args.dataset, args.dataset_path, **kwargs)


def split_from_args(args: argparse.Namespace, dataset: Any) -> dict[str, list[int]]:
    """Train / val / test indices of ``dataset`` from the split flags."""
    from utils.data import split_indices

    groups = [dataset.object_id(i) for i in range(len(dataset))]
    return split_indices(
        groups,
        train_fraction=args.split,
        val_fraction=args.val_split,
        split_by=args.split_by,
        ds_rotate=args.ds_rotate,
        n_folds=args.folds,
        fold=args.fold,
        seed=None if args.split_seed < 0 else args.split_seed,
    )


def make_loader(
    dataset: Dataset,
    indices: list[int],
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> DataLoader:
    """A loader over ``indices``; sharded across ranks when distributed.

    Training shards use a DistributedSampler (padded, reshuffled every epoch). Evaluation
    shards (``shuffle=False``) take every world_size-th sample with no padding, so gathered
    results count each image exactly once.
    """
    from utils.data import collate_grasp_batch

    subset = Subset(dataset, indices)
    sampler = None
    if world_size > 1:
        if shuffle:
            sampler = torch.utils.data.DistributedSampler(
                subset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed
            )
        else:
            subset = Subset(dataset, indices[rank::world_size])
    # Per-rank seeds: otherwise every rank's workers draw the same augmentations.
    generator = torch.Generator().manual_seed(seed + 1000 * rank)
    return DataLoader(
        subset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_grasp_batch,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


# --- models and optimisation -------------------------------------------------------------------
def model_kwargs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"input_channels": input_channels(args)}
    if args.network == "pspnet":
        kw.update(
            backbone=args.backbone,
            output_stride=args.output_stride,
            pooling=args.pooling,
            aux_weight=args.aux_weight,
            pretrained_backbone=args.pretrained_backbone,
        )
    return kw


def build_optimizer(args: argparse.Namespace, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(
        params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay, nesterov=True
    )


def build_scheduler(
    args: argparse.Namespace, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Linear warm-up then cosine decay to 1% of ``--lr``, stepped once per optimiser step."""
    if args.scheduler == "none":
        return None
    warmup = max(0, min(args.warmup_steps, total_steps // 10))
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def save_args(args: argparse.Namespace, path: Path) -> None:
    """The resolved arguments as JSON, plus the command line that produced them."""
    data = dict(vars(args))
    data["_command"] = " ".join([Path(sys.executable).name, *sys.argv])
    data["_world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def run_main(main, parse_args) -> None:
    """Run a script's ``main(parse_args())``; bad input ends in one line on stderr, exit 2.

    ValueError (bad files and flags; the message names the file or flag), OSError (paths that
    cannot be read or written) and FloatingPointError (a diverging run) end in one line;
    anything else is a bug and keeps its traceback.
    """
    args = parse_args()
    try:
        main(args)
    except (ValueError, OSError, FloatingPointError) as e:
        text = str(e).strip()
        if "Original Traceback" in text:
            # Raised in a DataLoader worker: torch wraps the worker's whole traceback; the
            # last line is our own message naming the file.
            text = text.splitlines()[-1].split(": ", 1)[-1]
        print(f"error: {text}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the last completed epoch is in last.pt", file=sys.stderr)
        sys.exit(130)
