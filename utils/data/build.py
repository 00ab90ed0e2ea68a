"""Datasets and loaders from the command-line flags (``utils.cli`` declares the flags).

:func:`build_run_data` is what a training script gets: the dataset, its train / val / test
split and the three loaders (training shards reshuffled every epoch with augmentation;
evaluation shards in order, without). Rank 0 builds first, so only it ever generates the
synthetic set.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from utils.cli import LEGACY_DEFAULTS, REPO_ROOT
from utils.data.loader import make_loader
from utils.distributed import DistInfo, barrier


def _input_kwargs(args: argparse.Namespace, augment: bool) -> dict[str, Any]:
    """Dataset options from the input flags: size, channels, augmentation, cache."""
    return {
        "output_size": args.input_size,
        "use_depth": args.use_depth,
        "use_rgb": args.use_rgb,
        "random_rotate": augment,
        "random_zoom": augment,
        "cache_dir": args.cache_dir or str(REPO_ROOT / "data" / "cache"),
        # Checkpoints from before these flags: GG-CNN's normalisation, no randomisation.
        "depth_norm": getattr(args, "depth_norm", LEGACY_DEFAULTS["depth_norm"]),
        "depth_aug": augment and getattr(args, "depth_aug", LEGACY_DEFAULTS["depth_aug"]),
    }


def dataset_from_args(args: argparse.Namespace, augment: bool, replace: bool = True) -> Dataset:
    """The whole dataset named by the flags, with or without training augmentation.

    ``replace=False`` (evaluation): a synthetic folder of other parameters is an error, never
    regenerated."""
    from utils.data import get_dataset

    if args.dataset == "benchmark":
        return benchmark_dataset(args)
    kwargs = _input_kwargs(args, augment)
    if args.dataset in ("jacquard", "synthetic"):
        kwargs["depth_type"] = args.depth_type
    if args.dataset == "cornell":
        kwargs["crop"] = args.cornell_crop
        if getattr(args, "cornell_crop_size", None):  # else the loader's default, as before
            kwargs["crop_size"] = args.cornell_crop_size
        if getattr(args, "object_map", None):
            kwargs["object_map"] = args.object_map
    if args.dataset == "synthetic" and args.synthetic_scenes:
        kwargs["synthetic_kwargs"] = {"n_scenes": args.synthetic_scenes}
    if args.dataset == "synthetic" and not replace:
        kwargs.setdefault("synthetic_kwargs", {})["replace"] = False
    return get_dataset(args.dataset, args.dataset_path, **kwargs)


def split_from_args(args: argparse.Namespace, dataset: Any) -> dict[str, list[int]]:
    """Train / val / test indices of ``dataset`` from the split flags."""
    from utils.data import split_indices

    if args.split_by == "object" and getattr(dataset, "has_object_map", True) is False:
        raise ValueError(
            f"--split-by object: {dataset.root} has no object map, so its objects are unknown; "
            "give --object-map FILE (lines 'pcdXXXX objectid'), or ask for --split-by image"
        )
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


def dataset_root(dataset: str | None, path: str | None, scenes: int | None) -> Path | None:
    """The folder a dataset's flags name, resolved (None: not known from the flags)."""
    if path:
        return Path(path).expanduser().resolve()
    if dataset == "synthetic":
        from utils.data.synthetic import DEFAULT_N_SCENES, default_root

        return default_root("jacquard", scenes or DEFAULT_N_SCENES, 300, 0).resolve()
    return None


#: The flags that fix which images fall in which part of a dataset.
SPLIT_FLAGS = ("split", "split_by", "val_split", "ds_rotate", "folds", "fold", "split_seed",
               "synthetic_scenes", "object_map")  # fmt: skip


def unlabelled_loader(images: Dataset, args: argparse.Namespace, dist: DistInfo) -> DataLoader:
    """The training loader of unlabelled images: shuffled and augmented like the labelled one,
    but its own stream of orders and augmentation seeds (stream 1)."""
    return make_loader(
        images, list(range(len(images))), args.batch_size, shuffle=True, seed=args.seed,
        num_workers=args.num_workers, rank=dist.rank, world_size=dist.world_size,
        drop_last=len(images) >= args.batch_size * dist.world_size, pad=True, stream=1,
    )  # fmt: skip


def check_unlabelled_images(images: Any, data: RunData, path: str) -> None:
    """Refuse unlabelled images that are a held-out set or show objects of the run's
    validation or test part: training on them, even without labels, would leak them."""
    from utils.data.benchmark import is_benchmark_folder

    if is_benchmark_folder(path):
        raise ValueError(
            f"--unlabeled-path {path} holds a held-out set (the benchmark or the confirmation "
            "set): never trained on"
        )
    held = {data.dataset.object_id(i) for i in data.split["val"] + data.split["test"]}
    clash = [i for i in range(len(images)) if images.object_id(i) in held]
    if clash:
        raise ValueError(
            f"--unlabeled-path {path}: {len(clash)} images show objects of the run's validation "
            f"or test part (e.g. {images.sample_id(clash[0])}): they would leak into training"
        )


def describe_split(args: argparse.Namespace) -> str:
    """The split in words: ``object-wise, 90% train (10% of it val) / 10% test, seed 0``."""
    seed = "file order" if args.split_seed < 0 else f"split seed {args.split_seed}"
    val = f"{args.val_split:.0%} of the training part as val"
    if args.folds:
        return f"{args.split_by}-wise {args.folds}-fold, fold {args.fold} as test, {val}, {seed}"
    rotate = f", ds_rotate {args.ds_rotate}" if args.ds_rotate else ""
    return (
        f"{args.split_by}-wise, {args.split:.0%} train / {1 - args.split:.0%} test, {val}, "
        f"{seed}{rotate}"
    )


def benchmark_dataset(args: argparse.Namespace, n_images: int | None = None) -> Dataset:
    """The synthetic benchmark set (``--benchmark-images``, ``--benchmark-path``; with
    ``--dataset benchmark``, ``--dataset-path`` names its folder too), prepared with the run's
    input flags and no augmentation."""
    from utils.data import JacquardDataset
    from utils.data.benchmark import ensure_benchmark

    n = n_images or args.benchmark_images
    if not n:
        raise ValueError("--dataset benchmark needs --benchmark-images of at least 1")
    root = args.benchmark_path
    if args.dataset == "benchmark" and args.dataset_path:
        given = Path(args.dataset_path).expanduser()
        if root and Path(root).expanduser().resolve() != given.resolve():
            raise ValueError(
                f"--dataset-path {args.dataset_path} and --benchmark-path {root}: two folders "
                "for one benchmark set; give one"
            )
        if not root and not given.is_dir():  # a data flag names data that is there
            raise ValueError(
                f"--dataset-path {args.dataset_path}: no such benchmark folder (--benchmark-path "
                "generates one where it is missing)"
            )
        root = given
    return JacquardDataset(
        ensure_benchmark(n, root), depth_type=args.depth_type,
        **_input_kwargs(args, augment=False),
    )  # fmt: skip


def unlabelled_dataset_from_path(
    path: str | Path, args: argparse.Namespace, augment: bool
) -> Dataset:
    """A folder of unlabelled images (:class:`utils.data.unlabelled.ImageFolder`) prepared with
    the run's input flags."""
    from utils.data.unlabelled import ImageFolder

    return ImageFolder(path, depth_type=args.depth_type, **_input_kwargs(args, augment))


@dataclass
class RunData:
    """What a training run reads: the (unaugmented) dataset, its split and the loaders."""

    dataset: Any
    split: dict[str, list[int]]
    train_loader: DataLoader
    val_loader: DataLoader | None
    test_loader: DataLoader | None
    unlabelled_loader: DataLoader | None = None
    #: Sample ids of a labelled subset of the training part (``--labeled-fraction``,
    #: ``--labeled-count``; ``split["train"]`` then holds it), None: all labelled.
    labelled_ids: list[str] | None = None
    #: The training part's other images, whose labels are not used (MixMatch reads them).
    unlabelled_train: list[int] = field(default_factory=list)

    def describe(self, args: argparse.Namespace) -> str:
        s = self.split
        n_train = len(s["train"]) + len(self.unlabelled_train)
        text = (
            f"{args.dataset}: {len(self.dataset)} images -> train {n_train} / "
            f"val {len(s['val'])} / test {len(s['test'])} ({args.split_by}-wise)"
        )
        if self.labelled_ids is not None:
            text += f", {len(self.labelled_ids)} of the training images labelled"
        if self.unlabelled_loader is not None:
            text += f" + {len(self.unlabelled_loader.dataset)} unlabelled"
        return text


def data_fingerprint(data: RunData) -> str:
    """A short hash of which images each part holds (by sample id, in order), the labelled
    subset's and the unlabelled images': equal exactly when a run reads the same images in the
    same parts."""
    import hashlib
    import json

    def ids(ds: Any, idx: Any) -> list[str] | int:
        while not hasattr(ds, "sample_id") and hasattr(ds, "dataset"):
            ds = ds.dataset  # the loader's wrappers (SeededItems)
        return [ds.sample_id(i) for i in idx] if hasattr(ds, "sample_id") else len(idx)

    parts: dict[str, Any] = {k: ids(data.dataset, v) for k, v in sorted(data.split.items())}
    parts["unlabelled_train"] = ids(data.dataset, data.unlabelled_train)
    if data.unlabelled_loader is not None:
        u = data.unlabelled_loader.dataset
        parts["unlabelled"] = ids(u, range(len(u)))
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def labelled_subset(train: list[int], args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """(labelled, unlabelled) indices of the training part ``train``: ``--labeled-count``
    images, or ``round(--labeled-fraction x len(train))``, drawn by ``--labeled-seed`` (the same
    seed gives the same subset, whatever the training seed)."""
    n = (
        args.labeled_count
        if args.labeled_count is not None
        else round(args.labeled_fraction * len(train))
    )
    if not 1 <= n <= len(train):
        raise ValueError(
            f"--labeled-count/--labeled-fraction: {n} labelled of {len(train)} training images "
            f"(expected 1 to {len(train)})"
        )
    order = np.random.default_rng(args.labeled_seed).permutation(len(train))
    return sorted(train[i] for i in order[:n]), sorted(train[i] for i in order[n:])


def uses_labelled_subset(args: argparse.Namespace) -> bool:
    return (
        getattr(args, "labeled_count", None) is not None
        or getattr(args, "labeled_fraction", None) is not None
    )


def build_run_data(
    args: argparse.Namespace, dist: DistInfo, train_indices: list[int] | None = None
) -> RunData:
    """Dataset, split and loaders from the flags; ``train_indices`` replaces the training
    part. With ``--labeled-fraction`` / ``--labeled-count`` only a labelled subset of the
    training part is trained on (:func:`labelled_subset`); the rest is ``unlabelled_train``."""
    if not dist.is_main:
        barrier()
    train_ds = dataset_from_args(args, augment=args.augment)
    eval_ds = dataset_from_args(args, augment=False)
    if dist.is_main:
        barrier()
    split = split_from_args(args, eval_ds)
    train = split["train"] if train_indices is None else list(train_indices)
    rest: list[int] = []
    labelled_ids = None
    if train_indices is None and uses_labelled_subset(args):
        train, rest = labelled_subset(train, args)
        labelled_ids = [eval_ds.sample_id(i) for i in train]
    if not train:
        raise ValueError(f"--split {args.split}: the training part is empty")
    split = dict(split, train=train)
    common = dict(num_workers=args.num_workers, rank=dist.rank, world_size=dist.world_size)
    train_loader = make_loader(
        train_ds, train, args.batch_size, shuffle=args.ds_shuffle, seed=args.seed,
        drop_last=len(train) >= args.batch_size * dist.world_size, pad=True, **common,
    )  # fmt: skip

    def eval_loader(part: str) -> DataLoader | None:
        if not split[part]:
            return None
        return make_loader(eval_ds, split[part], args.batch_size, shuffle=False, seed=0, **common)

    return RunData(
        eval_ds, split, train_loader, eval_loader("val"), eval_loader("test"),
        labelled_ids=labelled_ids, unlabelled_train=rest,
    )  # fmt: skip
