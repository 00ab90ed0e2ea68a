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

from pathlib import Path
from typing import Any

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


class ImageFolder(GraspDataset):
    """Depth (and RGB) images with no labels under ``root`` (see the module docstring).

    Args:
        root: the folder.
        depth_type: Jacquard layout: ``perfect`` or ``stereo`` depth files.
        **kwargs: :class:`GraspDataset` options (output_size, use_rgb, random_rotate, ...).

    Object ids are the sub-folder (Jacquard layout) or the file stem (flat).
    """

    def __init__(self, root: str | Path, depth_type: str = "perfect", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: folder of unlabelled images not found")
        samples = []
        suffix = f"_{depth_type}_depth.tiff"
        for depth in sorted(self.root.glob(f"*/*{suffix}")):
            sid = depth.name[: -len(suffix)]
            samples.append(
                Sample(None, sid, depth.parent.name, depth, depth.parent / f"{sid}_RGB.png")
            )
        if not samples:
            for depth in sorted(p for p in self.root.glob("*.tif*") if p.is_file()):
                stem = depth.stem
                base = stem[:-1] if stem.endswith("d") else stem  # Cornell: pcd0100d / pcd0100r
                rgb = next(
                    (p for p in (depth.with_name(f"{base}r.png"), depth.with_suffix(".png"))
                     if p.is_file()),
                    None,
                )  # fmt: skip
                samples.append(Sample(None, stem, stem, depth, rgb))
        if not samples:
            raise ValueError(
                f"{self.root}: no depth images found (expected */*{suffix} or *.tiff)"
            )
        self._set_samples(samples, self.root, "")

    def load_grasps(self, idx: int) -> GraspRectangles:
        raise ValueError(f"{self.samples[self._check_index(idx)].depth}: an unlabelled image")

    def item(self, idx: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        return self.unlabelled_view(idx, *self._random_view(generator))

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.item(idx)
