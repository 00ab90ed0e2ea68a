"""Command-line flags shared by the scripts: argument groups, cross-flag checks, args.json.

Flag names follow the GG-CNN code (``--dataset``, ``--dataset-path``, ``--use-depth``,
``--use-rgb``, ``--split``, ``--ds-rotate``, ``--batch-size``, ...). Each script composes the
groups it needs, so a flag means the same thing everywhere. What the flags build lives
elsewhere: datasets and loaders in :mod:`utils.data.build`, optimisers and the schedule in
:mod:`utils.optim`, the run itself in :mod:`utils.harness`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from models import MAP_LOSSES, list_networks
from utils.atomic import atomic_write_json
from utils.depth import DEPTH_NORMS, LEGACY_DEPTH_NORM

#: Where generated data and runs go by default: inside the repository.
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Training defaults of the depth input (README, Sim-to-real, measures them).
DEFAULT_DEPTH_NORM = "table"
DEFAULT_DEPTH_AUG = False
#: Values of flags added later, for checkpoints written before them (resume, eval, predict).
LEGACY_DEFAULTS: dict[str, Any] = {
    "depth_norm": LEGACY_DEPTH_NORM,
    "depth_aug": False,
    "mixup_width": "linear",  # mixmatch_train.py runs before --mixup-width
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``<script>: error: <message> (-h lists the flags)``,
    exit code 2, instead of the whole usage block before the message."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (-h lists the flags)\n")


def run_name(v: str) -> str:
    """``--description``: part of a folder name under ``--outdir``, so it cannot leave it."""
    if "/" in v or "\\" in v or v in (".", "..") or "\0" in v:
        raise argparse.ArgumentTypeError(
            f"expected a name without path separators (it names a folder in --outdir), got {v!r}"
        )
    return v


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, so containers and taskset count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers_threads(
    num_workers: int | None, threads: int | None, processes: int = 1, cores: int | None = None
) -> tuple[int, int]:
    """``--num-workers`` and ``--threads`` for one of ``processes`` training processes on this
    machine: the values given, or the rule, on C = usable cores / processes (at least 1):

    - workers: 0 on up to 2 cores, else C // 4 between 1 and 4;
    - threads: C - workers.

    On 2 cores a worker process costs the network more than it saves: GG-CNN2 trains at 42
    images/s with 0 workers (18% of the loop loading data in-process) and 37 with 1 (6%
    waiting), measured with ``benchmarks/train_net_speed.py`` (benchmarks/README.md); a
    cached synthetic item costs about 4 ms at 224 px (``benchmarks/loader_speed.py``).
    More workers than C is cut to C, with a warning.
    """
    per = max(1, (cores or usable_cores()) // max(1, processes))
    if num_workers is None:
        num_workers = 0 if per <= 2 else min(4, max(1, per // 4))
    elif num_workers > per:
        import warnings

        warnings.warn(
            f"--num-workers {num_workers} exceeds the {per} core(s) of this process: using {per}",
            stacklevel=2,
        )
        num_workers = per
    if threads is None:
        threads = max(1, per - num_workers)
    return num_workers, threads


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


def positive_float(v: str) -> float:
    x = float(v)
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return x


def non_negative_float(v: str) -> float:
    x = float(v)
    if not 0 <= x < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return x


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
        choices=("cornell", "jacquard", "synthetic", "benchmark"),
        help="dataset format; 'synthetic' generates the built-in dataset on first use; "
        "'benchmark' (evaluation only) is the held-out synthetic benchmark set",
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
        "--depth-norm",
        default=DEFAULT_DEPTH_NORM,
        choices=DEPTH_NORMS,
        help="depth input: 'mean' subtracts the view's mean (GG-CNN), 'table' a plane fitted to "
        "the table (the input is then minus the height above the table; utils/depth.py). "
        f"Default {DEFAULT_DEPTH_NORM}; eval_net and predict take the checkpoint's",
    )
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
        "--cornell-crop-size",
        type=positive_float,
        default=400.0,
        help="Cornell: side of the square cut from the 480 x 640 frame, source pixels, resized "
        "to --input-size (GG-CNN's own: 300 at --input-size 300, no resize)",
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
        "--num-workers",
        type=non_negative_int,
        default=None,
        help="data-loading worker processes (default: the rule of resolve_workers_threads)",
    )
    g.add_argument(
        "--benchmark-images",
        type=non_negative_int,
        default=2000,
        help="images of the synthetic benchmark set to score (training scores best.pt on it "
        "at the end; 0: skip); the README's figures use all 2000",
    )
    g.add_argument(
        "--benchmark-path",
        default=None,
        help="where the benchmark set is generated (default data/benchmark/...)",
    )


#: The flags that define the data and its split. A resumed run must keep them (or test images
#: could leak into training); eval_net.py takes them from the checkpoint when not given.
DATA_FLAGS = (
    "dataset", "dataset_path", "use_depth", "use_rgb", "input_size", "depth_type", "split",
    "split_by", "val_split", "ds_rotate", "folds", "fold", "split_seed", "cornell_crop",
    "cornell_crop_size", "object_map", "synthetic_scenes", "depth_norm",
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
    g.add_argument(
        "--map-loss",
        default="all",
        choices=MAP_LOSSES,
        help="where the label loss learns the angle and opening maps: all pixels (GG-CNN: 0 off "
        "the grasps), only the grasp pixels (quality above 0), or 'width': the opening only "
        "there, the angle everywhere; quality is learnt everywhere",
    )
    g.add_argument("--ds-shuffle", type=str2bool, default=True, help="shuffle training batches")
    g.add_argument(
        "--augment", type=str2bool, default=True, help="random rotation and zoom in training"
    )
    g.add_argument(
        "--depth-aug",
        type=str2bool,
        default=DEFAULT_DEPTH_AUG,
        help="randomise the training depth: height scale, tilt, blur, noise, holes "
        f"(utils/depth.py; with --augment only; default {int(DEFAULT_DEPTH_AUG)})",
    )


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    g.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    g.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads per process (default: the rule of resolve_workers_threads)",
    )


def add_compile_arg(p: argparse.ArgumentParser) -> None:
    """``--compile``, for the training scripts."""
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step's network (the first steps compile: tens of "
        "seconds on a small CPU; benchmarks/train_speed.py --compile times both)",
    )


def add_prefetch_arg(p: argparse.ArgumentParser) -> None:
    """``--prefetch-thread``, for the training scripts."""
    p.add_argument(
        "--prefetch-thread",
        default="auto",
        choices=("auto", "on", "off"),
        help="with 0 data workers, make the next training batch in a background thread while "
        "the step runs (the same batches); auto: where --threads leaves a core free",
    )


def add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument(
        "--description", type=run_name, default="", help="run name suffix (no path separators)"
    )
    g.add_argument("--outdir", default=str(REPO_ROOT / "runs"), help="parent of run folders")
    g.add_argument(
        "--logdir", default=None, help="TensorBoard folder (default: <run folder>/tensorboard)"
    )
    g.add_argument("--vis", action="store_true", help="write example prediction images")


def add_labelled_args(p: argparse.ArgumentParser, fraction_default: float | None) -> None:
    """``--labeled-fraction`` / ``--labeled-count`` / ``--labeled-seed``: train on a fixed
    labelled subset of the training part (utils.data.build.labelled_subset)."""
    g = p.add_argument_group("labelled subset")
    g.add_argument(
        "--labeled-fraction", type=float, default=fraction_default,
        help="labelled share of the training part"
        + (" (default: all)" if fraction_default is None else ""),
    )  # fmt: skip
    g.add_argument(
        "--labeled-count", type=int, default=None, help="labelled images (instead of a fraction)"
    )
    g.add_argument("--labeled-seed", type=int, default=0, help="seed of the labelled subset")


def add_run_args(p: argparse.ArgumentParser) -> None:
    """Checkpointing, resume and the EMA model: the harness's flags, in every training script."""
    g = p.add_argument_group("checkpoints, resume and EMA")
    g.add_argument(
        "--resume",
        default=None,
        help="a run's last.pt to continue exactly where it stopped (see README, Resuming)",
    )
    g.add_argument(
        "--fork",
        action="store_true",
        help="allow --resume from a best.pt or epoch_N.pt: continue from it in a NEW run folder",
    )
    g.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        default=0,
        help="also write last.pt every N optimiser steps inside an epoch (0: epoch ends only)",
    )
    g.add_argument(
        "--save-every-epochs",
        type=non_negative_int,
        default=0,
        help="also keep epoch_<N>.pt every N epochs (for accuracy-against-epochs curves)",
    )
    g.add_argument(
        "--model-ema",
        type=str2bool,
        default=False,
        help="keep an exponential moving average of the weights (validated and saved too)",
    )
    g.add_argument("--model-ema-decay", type=float, default=0.999, help="EMA decay per step")
    g.add_argument(
        "--best-from",
        default=None,
        choices=("model", "ema"),
        help="weights whose validation score picks best.pt (default: ema with --model-ema 1)",
    )


#: Flags that may differ on --resume, and what each does then (README, Resuming). Every other
#: flag given with --resume must match the run's own value, or the resume is refused.
RESUME_OVERRIDES = {
    "epochs": "re-plans the rest of the cosine decay from the current rate",
    "lr": "the rate becomes what a run started with this --lr would have now",
    "weight_decay": "applies to every parameter group from the next step",
    "num_workers": "data order does not depend on it",
    "prefetch_thread": "data order does not depend on it",
    "device": "", "amp": "", "channels_last": "", "threads": "", "vis": "", "logdir": "",
    "compile": "",
    "val_batches": "", "checkpoint_every": "", "save_every_epochs": "",
    "benchmark_images": "", "benchmark_path": "", "cache_dir": "", "description": "",
    "resume": "", "fork": "", "outdir": "",
}  # fmt: skip


#: Epochs when --epochs is not given: the small GG-CNNs run ~5x more images/s than PSPNet, so
#: they get more epochs for about the same wall time (see README, Results).
DEFAULT_EPOCHS = {"ggcnn": 60, "ggcnn2": 60, "pspnet": 30}


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Cross-flag checks, reported through argparse (one line, names the flag); fills
    network-dependent defaults so args.json records what ran."""
    if getattr(args, "best_from", "absent") is None:
        args.best_from = "ema" if args.model_ema else "model"
    if getattr(args, "best_from", None) == "ema" and not args.model_ema:
        parser.error("--best-from ema needs --model-ema 1")
    if hasattr(args, "model_ema_decay") and not 0.0 < args.model_ema_decay < 1.0:
        parser.error(f"--model-ema-decay must be in (0, 1), got {args.model_ema_decay}")
    frac = getattr(args, "labeled_fraction", None)
    if frac is not None and not 0.0 < frac <= 1.0:
        parser.error(f"--labeled-fraction must be in (0, 1], got {frac}")
    count = getattr(args, "labeled_count", None)
    if count is not None and count < 1:
        parser.error(f"--labeled-count must be at least 1, got {count}")
    if getattr(args, "epochs", "absent") is None:
        args.epochs = DEFAULT_EPOCHS.get(getattr(args, "network", ""), 30)
    if hasattr(args, "use_depth") and not (args.use_depth or args.use_rgb):
        parser.error("--use-depth 0 --use-rgb 0: at least one input is needed")
    if hasattr(args, "split") and not 0.0 < args.split <= 1.0:
        parser.error(f"--split must be in (0, 1], got {args.split}")
    if hasattr(args, "val_split") and not 0.0 <= args.val_split < 1.0:
        parser.error(f"--val-split must be in [0, 1), got {args.val_split}")
    if getattr(args, "folds", None) is not None and args.folds < 2:
        parser.error(f"--folds must be 2 or more (k-fold cross-validation), got {args.folds}")
    if getattr(args, "folds", None) is not None and not 0 <= args.fold < args.folds:
        parser.error(f"--fold must be in [0, {args.folds}), got {args.fold}")
    if args.dataset in ("cornell", "jacquard") and not args.dataset_path:
        parser.error(f"--dataset {args.dataset} needs --dataset-path")
    # For synthetic data the path is where the set is generated, so it may not exist yet.
    if args.dataset != "synthetic" and args.dataset_path and not Path(args.dataset_path).is_dir():
        parser.error(f"--dataset-path {args.dataset_path}: no such folder")


def input_channels(args: argparse.Namespace) -> int:
    return int(args.use_depth) + 3 * int(args.use_rgb)


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


def use_prefetch_thread(mode: str, num_workers: int, threads: int, processes: int = 1) -> bool:
    """Whether training batches are made in a background thread of the training process
    (``--prefetch-thread``; only with 0 workers, since worker processes already load ahead).
    ``auto``: where the thread can run at the lowest CPU priority (Linux; the step's threads
    go first and the loading takes the time they leave), elsewhere only where the torch
    threads leave a core free (threads < usable cores / processes): there a thread of normal
    priority competes with the step (GG-CNN2 on 2 cores, an earlier machine: 82.8-93.8 img/s
    threaded against 97.6-99.2 in line). Figures: ``benchmarks/train_net_speed.py --tables
    loader``, benchmarks/README.md."""
    from utils.data.loader import PER_THREAD_PRIORITY

    if num_workers or mode == "off":
        return False
    return (
        mode == "on" or PER_THREAD_PRIORITY or threads < max(1, usable_cores() // max(1, processes))
    )


def public_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags' values (attributes starting with ``_`` are the scripts' own, not flags)."""
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}


def save_args(args: argparse.Namespace, path: Path) -> None:
    """The resolved arguments as JSON, plus the command line that produced them."""
    data = public_args(args)
    data["_command"] = " ".join([Path(sys.executable).name, *sys.argv])
    data["_world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    atomic_write_json(path, data, indent=2, sort_keys=True, default=str)
