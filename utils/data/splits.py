"""Train / validation / test splits, image-wise or object-wise, with optional k-fold.

Semantics of :func:`split_indices` (the ``--split``, ``--val-split``, ``--split-by``,
``--ds-rotate``, ``--folds``/``--fold`` and ``--split-seed`` flags):

1. Groups: ``split_by="image"`` makes every sample its own group; ``"object"`` groups samples
   by their object id, so no object is in two parts.
2. Order: ``seed=None`` keeps groups in dataset order (order of first appearance), as GG-CNN;
   an int seed shuffles them with ``numpy.random.default_rng(seed)``. Then ``ds_rotate`` in
   [0, 1) moves the start point: the first ``int(n_groups * ds_rotate)`` groups move to the
   end (GG-CNN's ``--ds-rotate``), giving a different train/test cut.
3. Test: without folds the first ``floor(train_fraction * n_groups)`` groups form the
   training pool and the rest is the test part. With ``n_folds=k`` the ordered groups are cut
   into k contiguous, near-equal blocks; block ``fold`` is the test part and the others the
   training pool (``train_fraction`` is then ignored); the k test parts partition the data.
4. Validation: the last ``val_fraction`` of the training pool's groups (at least one when
   ``val_fraction > 0`` and the pool has two or more groups) is held out as ``"val"``, so the
   part that picks the best epoch is never the reported test part. ``val_fraction=0``: empty.

Returned index lists are sorted.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

SPLIT_BY = ("image", "object")


def split_indices(
    groups: Sequence[Hashable],
    train_fraction: float = 0.9,
    val_fraction: float = 0.1,
    split_by: str = "image",
    ds_rotate: float = 0.0,
    n_folds: int | None = None,
    fold: int = 0,
    seed: int | None = None,
) -> dict[str, list[int]]:
    """Split sample indices 0..len(groups)-1 into ``{"train", "val", "test"}`` (see module doc).

    ``groups[i]`` is sample i's object id (used when ``split_by="object"``).
    """
    n = len(groups)
    if n == 0:
        raise ValueError("split_indices: groups is empty (no samples to split)")
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 <= ds_rotate < 1.0:
        raise ValueError(f"ds_rotate must be in [0, 1), got {ds_rotate}")

    # Members of each group, groups in order of first appearance.
    members: dict[Hashable, list[int]] = {}
    if split_by == "image":
        members = {i: [i] for i in range(n)}
    else:
        for i, g in enumerate(groups):
            members.setdefault(g, []).append(i)
    keys = list(members)
    n_groups = len(keys)

    order = list(range(n_groups))
    if seed is not None:
        order = [int(i) for i in np.random.default_rng(seed).permutation(n_groups)]
    start = int(n_groups * ds_rotate)
    order = order[start:] + order[:start]

    if n_folds is not None:
        if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 2:
            raise ValueError(f"n_folds must be an integer >= 2, got {n_folds}")
        if n_folds > n_groups:
            raise ValueError(
                f"n_folds={n_folds} exceeds the number of {split_by} groups ({n_groups})"
            )
        if not 0 <= fold < n_folds:
            raise ValueError(f"fold must be in [0, {n_folds}), got {fold}")
        blocks = np.array_split(np.arange(n_groups), int(n_folds))
        test_pos = set(blocks[fold].tolist())
        test = [order[p] for p in sorted(test_pos)]
        # The pool continues after the test block, wrapping round, so "last of the pool" (the
        # validation part) is the block before the test block.
        pool_pos = [p for p in range(n_groups) if p not in test_pos]
        cut = int(blocks[fold][-1]) + 1
        pool_pos = [p for p in pool_pos if p >= cut] + [p for p in pool_pos if p < cut]
        pool = [order[p] for p in pool_pos]
    else:
        n_pool = min(n_groups, math.floor(train_fraction * n_groups + 1e-9))
        n_pool = max(n_pool, 1)
        pool, test = order[:n_pool], order[n_pool:]

    n_val = math.floor(val_fraction * len(pool) + 1e-9)
    if val_fraction > 0 and n_val == 0 and len(pool) >= 2:
        n_val = 1
    train, val = pool[: len(pool) - n_val], pool[len(pool) - n_val :]

    def expand(part: list[int]) -> list[int]:
        return sorted(i for g in part for i in members[keys[g]])

    return {"train": expand(train), "val": expand(val), "test": expand(test)}
