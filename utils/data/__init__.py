"""Grasp datasets (Cornell, Jacquard, the generated synthetic set), batching and splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.data.base import ArrayCache, GraspDataset, Sample, collate_grasp_batch
from utils.data.cornell import CornellDataset
from utils.data.jacquard import JacquardDataset
from utils.data.splits import split_indices

#: Dataset names accepted by :func:`get_dataset` (and ``--dataset``).
DATASETS = ("cornell", "jacquard", "synthetic")

__all__ = [
    "DATASETS",
    "ArrayCache",
    "CornellDataset",
    "GraspDataset",
    "JacquardDataset",
    "Sample",
    "collate_grasp_batch",
    "get_dataset",
    "split_indices",
]


def get_dataset(name: str, path: str | Path | None, **kwargs: Any) -> GraspDataset:
    """Build dataset ``name`` rooted at ``path``; ``kwargs`` go to the dataset class.

    ``"synthetic"`` generates a Jacquard-format folder on first use (at ``path``, or the
    generator's default when None; options in ``synthetic_kwargs=dict(...)``) and loads it
    with :class:`JacquardDataset` (:class:`CornellDataset` if ``synthetic_kwargs`` asks the
    generator for ``fmt="cornell"``). ``"cornell"`` and ``"jacquard"`` need ``path``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    synthetic_kwargs = kwargs.pop("synthetic_kwargs", None) or {}
    if name == "synthetic":
        # Imported here: the generator is optional and heavier than the loaders.
        from utils.data.synthetic import ensure_synthetic_dataset

        root = ensure_synthetic_dataset(path, **synthetic_kwargs)
        if synthetic_kwargs.get("fmt", "jacquard") == "cornell":
            kwargs.pop("depth_type", None)  # a Jacquard-only option
            return CornellDataset(root, **kwargs)
        return JacquardDataset(root, **kwargs)
    if synthetic_kwargs:
        raise ValueError(f"synthetic_kwargs only apply to the synthetic dataset, not {name!r}")
    if path is None:
        raise ValueError(f"dataset {name!r} needs a root folder: --dataset-path is required")
    if name == "cornell":
        return CornellDataset(path, **kwargs)
    return JacquardDataset(path, **kwargs)
