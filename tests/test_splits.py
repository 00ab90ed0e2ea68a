"""utils.data.splits.split_indices: image-/object-wise, seeded, rotated and k-fold splits."""

from __future__ import annotations

import itertools

import pytest

from utils.data.splits import split_indices

# 40 samples of 13 objects, with uneven group sizes and objects not in contiguous runs.
GROUPS = [f"obj{(i * 7) % 13}" for i in range(40)]


def _check_partition(parts: dict[str, list[int]], n: int) -> None:
    assert set(parts) == {"train", "val", "test"}
    for a, b in itertools.combinations(parts.values(), 2):
        assert not set(a) & set(b)
    assert sorted(i for p in parts.values() for i in p) == list(range(n))
    for p in parts.values():
        assert p == sorted(p)


def _objects(part: list[int]) -> set[str]:
    return {GROUPS[i] for i in part}


@pytest.mark.parametrize("split_by", ["image", "object"])
@pytest.mark.parametrize("seed", [None, 0, 5])
def test_partition_and_object_integrity(split_by: str, seed: int | None) -> None:
    parts = split_indices(GROUPS, 0.75, 0.2, split_by=split_by, seed=seed)
    _check_partition(parts, len(GROUPS))
    assert parts["train"] and parts["val"] and parts["test"]
    if split_by == "object":
        names = [_objects(p) for p in parts.values()]
        for a, b in itertools.combinations(names, 2):
            assert not a & b  # no object in two parts


def test_image_wise_dataset_order_fractions_and_rotation() -> None:
    n = 20
    parts = split_indices(list(range(n)), 0.9, 0.1)
    # GG-CNN order: the first 90 % train (its last 10 % held out for validation), the rest test.
    assert parts["test"] == [18, 19]
    assert parts["val"] == [17] and parts["train"] == list(range(17))
    rotated = split_indices(list(range(n)), 0.9, 0.1, ds_rotate=0.5)
    assert rotated["test"] == [8, 9]  # the start moved to sample 10
    assert rotated["val"] == [7]
    assert split_indices(list(range(n)), 0.5, 0.0)["val"] == []
    assert split_indices(list(range(n)), 1.0, 0.0)["test"] == []


def test_seeded_split_is_deterministic_and_seed_dependent() -> None:
    a = split_indices(GROUPS, 0.8, 0.1, split_by="object", seed=3)
    b = split_indices(GROUPS, 0.8, 0.1, split_by="object", seed=3)
    c = split_indices(GROUPS, 0.8, 0.1, split_by="object", seed=4)
    assert a == b
    assert a != c


def test_validation_comes_from_training_groups() -> None:
    base = split_indices(GROUPS, 0.7, 0.0, split_by="object", seed=1)
    held = split_indices(GROUPS, 0.7, 0.25, split_by="object", seed=1)
    assert held["test"] == base["test"]  # the test part does not depend on val_fraction
    assert sorted(held["train"] + held["val"]) == base["train"]
    assert held["val"]


@pytest.mark.parametrize("split_by", ["image", "object"])
def test_folds_partition_the_data(split_by: str) -> None:
    k = 4
    tests = []
    for fold in range(k):
        parts = split_indices(
            GROUPS, val_fraction=0.1, split_by=split_by, n_folds=k, fold=fold, seed=2
        )
        _check_partition(parts, len(GROUPS))
        tests.append(parts["test"])
        if split_by == "object":
            assert not _objects(parts["test"]) & _objects(parts["train"] + parts["val"])
    assert sorted(i for t in tests for i in t) == list(range(len(GROUPS)))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        split_indices([])
    with pytest.raises(ValueError, match="split_by"):
        split_indices(GROUPS, split_by="scene")
    with pytest.raises(ValueError, match="train_fraction"):
        split_indices(GROUPS, train_fraction=0.0)
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(GROUPS, val_fraction=1.0)
    with pytest.raises(ValueError, match="fold"):
        split_indices(GROUPS, n_folds=3, fold=3)
    with pytest.raises(ValueError, match="n_folds"):
        split_indices(GROUPS, n_folds=1)
    with pytest.raises(ValueError, match="n_folds"):
        split_indices(GROUPS, split_by="object", n_folds=14)
