"""Unlabelled images: depth (and RGB) without grasp files, through the labelled preprocessing.

Two sources, one kind of item (``x``, ``index``, ``rot``, ``zoom``; no ``y`` or ``gt``):

- :class:`UnlabelledItems` over a labelled dataset's indices: the images of a split part used
  as if they had no labels. Grasp files are never opened (MixMatch's "unlabelled" part must
  not see labels, and a test makes the files unreadable to prove it).
- :class:`ImageFolder`: a folder of images with no grasp files at all, in the Jacquard layout
  (``<object>/<view>_<object>_perfect_depth.tiff`` and ``..._RGB.png``) or flat
  (``*.tiff`` depth, Cornell's ``pcdXXXXd.tiff`` with ``pcdXXXXr.png`` beside it).

Both crop, resize, inpaint, normalise and augment exactly as :class:`GraspDataset` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.data.base import GraspDataset, Sample
from utils.grasp import GraspRectangles


class UnlabelledItems(Dataset):
    """``dataset``'s images as unlabelled items, augmented like training items."""

    def __init__(self, dataset: GraspDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, idx: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        return self.dataset.unlabelled_view(idx, *self.dataset._random_view(generator))

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.item(idx)

    def sample_id(self, idx: int) -> str:
        return self.dataset.sample_id(idx)


def _discover(root: Path, depth_type: str) -> list[Sample]:
    """The depth images of a folder: Jacquard layout first, else flat ``*.tif*`` files."""
    suffix = f"_{depth_type}_depth.tiff"
    samples = []
    for depth in sorted(root.glob(f"*/*{suffix}")):
        sid = depth.name[: -len(suffix)]
        samples.append(Sample(None, sid, depth.parent.name, depth, depth.parent / f"{sid}_RGB.png"))
    if not samples:
        samples = [_flat_sample(p) for p in sorted(root.glob("*.tif*")) if p.is_file()]
    return samples


def _flat_sample(depth: Path) -> Sample:
    """One depth file; its RGB is Cornell's ``pcdXXXXr.png`` beside ``pcdXXXXd.tiff``, or a
    ``.png`` of the same stem."""
    stem = depth.stem
    base = stem[:-1] if stem.endswith("d") else stem
    candidates = (depth.with_name(f"{base}r.png"), depth.with_suffix(".png"))
    rgb = next((p for p in candidates if p.is_file()), None)
    return Sample(None, stem, stem, depth, rgb)


class ImageFolder(GraspDataset):
    """Depth (and RGB) images with no labels (see the module docstring).

    Args:
        paths: a folder, a depth file, or a list of them.
        depth_type: Jacquard layout: ``perfect`` or ``stereo`` depth files.
        **kwargs: :class:`GraspDataset` options (output_size, use_rgb, random_rotate, ...).

    Object ids are the sub-folder (Jacquard layout) or the file stem (flat). Each image shows
    its largest centred square, like a Jacquard or synthetic sample.
    """

    def __init__(
        self, paths: str | Path | Sequence[str | Path], depth_type: str = "perfect", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        items = [paths] if isinstance(paths, (str, Path)) else list(paths)
        samples: list[Sample] = []
        for item in items:
            p = Path(item)
            if p.is_dir():
                found = _discover(p, depth_type)
                if not found:
                    raise ValueError(
                        f"{p}: no depth images found (expected */*_{depth_type}_depth.tiff "
                        "or *.tiff)"
                    )
                samples += found
            elif p.is_file():
                samples.append(_flat_sample(p))
            else:
                raise ValueError(f"{p}: no such file or folder of unlabelled images")
        if not samples:
            raise ValueError("no unlabelled images given")
        self.root = Path(items[0])
        self._set_samples(samples, self.root, "")

    def load_grasps(self, idx: int) -> GraspRectangles:
        raise ValueError(f"{self.samples[self._check_index(idx)].depth}: an unlabelled image")

    def warp_matrix(self, idx: int, rot: float = 0.0, zoom: float = 1.0) -> np.ndarray:
        idx = self._check_index(idx)
        return self._matrix(idx, rot, zoom, GraspRectangles())

    def item(self, idx: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        return self.unlabelled_view(idx, *self._random_view(generator))

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.item(idx)


class ConcatItems(Dataset):
    """Datasets one after another, keeping their seeded ``item(index, generator)``."""

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = [d for d in datasets if len(d)]  # type: ignore[arg-type]
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets]).tolist()  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, idx: int) -> tuple[Dataset, int]:
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} items")
        j = int(np.searchsorted(self.offsets, idx, side="right")) - 1
        return self.datasets[j], idx - int(self.offsets[j])

    def item(self, idx: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        ds, i = self._locate(idx)
        return ds.item(i, generator) if hasattr(ds, "item") else ds[i]

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.item(idx)

    def sample_id(self, idx: int) -> str:
        """``<which dataset>:<its sample id>`` (two folders may hold the same names)."""
        ds, i = self._locate(idx)
        return f"{self.datasets.index(ds)}:{ds.sample_id(i)}"


class SubsetItems(Dataset):
    """``indices`` of a dataset, keeping its seeded ``item(index, generator)``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def item(self, idx: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        return self.dataset.item(self.indices[idx], generator)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.item(idx)

    def sample_id(self, idx: int) -> str:
        return self.dataset.sample_id(self.indices[idx])
