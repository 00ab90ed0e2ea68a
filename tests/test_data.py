"""Dataset loaders on the real Jacquard/Cornell samples and on tiny generated folders."""

from __future__ import annotations

import math
import os
import shutil
import sys
import types
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from scipy.ndimage import binary_dilation
from torch.utils.data import DataLoader

import utils.data.base as base_module
from utils.data import (
    DATASETS,
    CornellDataset,
    JacquardDataset,
    collate_grasp_batch,
    get_dataset,
)
from utils.data.pcd_to_tiff import main as pcd_to_tiff_main
from utils.data.pcd_to_tiff import read_pcd_depth
from utils.grasp import GraspRectangles, encode_grasp_maps
from utils.image import compose_affine, invert_affine, load_depth, transform_points

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JACQUARD = DATA / "jacquard_samples"
CORNELL = DATA / "cornell_samples"
QUARTERS = [0.0, math.pi / 2, math.pi, 3 * math.pi / 2]


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real sample data not found at {path}")
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decoded-array cache shared by the whole session (each file decodes once)."""
    return tmp_path_factory.mktemp("grasp_cache")


@pytest.fixture(scope="session")
def jacquard_small(cache_dir: Path) -> JacquardDataset:
    return JacquardDataset(_need(JACQUARD), output_size=64, use_rgb=True, cache_dir=cache_dir)


def _cornell(**kw) -> CornellDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped cpos_only files, approximate object ids
        return CornellDataset(_need(CORNELL), **kw)


def _write_jacquard_view(
    folder: Path, sid: str, depth: np.ndarray, rects: GraspRectangles, mask: bool = True
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f"{sid}_perfect_depth.tiff", depth.astype(np.float32))
    stereo = depth.astype(np.float32).copy()
    stereo[: depth.shape[0] // 8, : depth.shape[1] // 8] = -1.0
    tifffile.imwrite(folder / f"{sid}_stereo_depth.tiff", stereo)
    grey = np.clip((1.6 - depth) * 400, 0, 255).astype(np.uint8)
    cv2.imwrite(str(folder / f"{sid}_RGB.png"), np.stack([grey] * 3, axis=-1))
    if mask:
        cv2.imwrite(str(folder / f"{sid}_mask.png"), (depth < 1.45).astype(np.uint8) * 255)
    rects.save_jacquard(folder / f"{sid}_grasps.txt")


def _blob_scene(frame: int, center: tuple[float, float], sigma: float = 6.0) -> np.ndarray:
    rr, cc = np.mgrid[0:frame, 0:frame]
    blob = np.exp(-((rr - center[0]) ** 2 + (cc - center[1]) ** 2) / (2 * sigma**2))
    return (1.5 - 0.2 * blob).astype(np.float32)


def _check_item(item: dict, channels: int, size: int) -> None:
    assert item["x"].shape == (channels, size, size) and item["x"].dtype == torch.float32
    assert item["y"].shape == (4, size, size) and item["y"].dtype == torch.float32
    assert torch.isfinite(item["x"]).all() and torch.isfinite(item["y"]).all()
    assert set(torch.unique(item["y"][0]).tolist()) <= {0.0, 1.0}
    assert item["y"][0].sum() > 0
    assert (
        item["gt"].dtype == np.float32 and item["gt"].ndim == 3 and item["gt"].shape[1:] == (4, 2)
    )


# --- Jacquard, real samples ----------------------------------------------------------------------
def test_jacquard_all_views_load(jacquard_small: JacquardDataset, cache_dir: Path) -> None:
    ds = jacquard_small
    assert len(ds) == 18
    assert ds.sample_id(0) == "0_1d7830c5d0322518d95aa859a460a9ec"
    assert ds.object_id(0) == "1d7830c5d0322518d95aa859a460a9ec"
    assert ds.source_size(0) == (1024, 1024)
    assert len(set(ds.object_ids)) == 4
    for i in range(len(ds)):
        item = ds[i]
        _check_item(item, 4, 64)
        assert item["index"] == i and item["rot"] == 0.0 and item["zoom"] == 1.0
    depth_only = JacquardDataset(JACQUARD, output_size=64, cache_dir=cache_dir)
    rgb_only = JacquardDataset(
        JACQUARD, output_size=64, use_depth=False, use_rgb=True, cache_dir=cache_dir
    )
    for i in (0, 7, 17):
        _check_item(depth_only[i], 1, 64)
        _check_item(rgb_only[i], 3, 64)
    # Depth comes first in the 4-channel input.
    torch.testing.assert_close(ds[5]["x"][:1], depth_only[5]["x"])
    torch.testing.assert_close(ds[5]["x"][1:], rgb_only[5]["x"])


@pytest.mark.parametrize("size", [300, 224])
def test_jacquard_full_sizes_match_plain_label_drawing(size: int, cache_dir: Path) -> None:
    ds = JacquardDataset(_need(JACQUARD), output_size=size, use_rgb=True, cache_dir=cache_dir)
    i = 4 if size == 300 else 11
    item = ds[i]
    _check_item(item, 4, size)
    s = size / 1024
    labels = GraspRectangles.load_from_jacquard_file(ds.samples[i].grasps, scale=s)
    # Pixel-centre convention: a frame resize maps p to (p + 0.5) * s - 0.5, i.e. the plain
    # scale plus a constant (s - 1) / 2 offset (-0.35 px at 300). The loader's target must be
    # exactly that drawing.
    shifted = labels.offset(((s - 1) / 2, (s - 1) / 2))
    expected = encode_grasp_maps(*shifted.draw((size, size)))
    np.testing.assert_allclose(item["y"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(item["gt"], shifted.points, atol=1e-3)
    # The plain scale (corner-origin convention) differs only on rectangle borders.
    plain_q = labels.draw((size, size))[0] > 0
    q = item["y"][0].numpy() > 0
    assert 0.7 < (plain_q & q).sum() / (plain_q | q).sum() < 1.0


def test_jacquard_stereo_depth_is_inpainted(cache_dir: Path) -> None:
    ds = JacquardDataset(_need(JACQUARD), depth_type="stereo", output_size=64, cache_dir=cache_dir)
    assert (load_depth(ds.samples[0].depth) == -1).any()
    d = ds.get_depth(0)
    assert np.isfinite(d).all() and d.min() > 0.5
    _check_item(ds[0], 1, 64)


def test_mask_and_labels_stay_together_under_augmentation(cache_dir: Path) -> None:
    """The share of quality pixels on the (dilated) object mask is the same in every view.

    Views that crop or rotate part of the frame away are compared with the unaugmented share
    over the same source region; the dilation is 3 output pixels (scaled in the reference)."""
    size, dil = 300, 3
    ds = JacquardDataset(_need(JACQUARD), output_size=size, cache_dir=cache_dir, include_mask=True)
    views = [(r, 1.0) for r in QUARTERS[1:]] + [(0.3, 1.0), (-1.0, 1.0), (2.2, 1.0)]
    views += [(0.0, 0.5), (0.0, 0.75), (1.1, 0.6), (math.pi / 2, 0.8)]
    grid = np.stack(np.mgrid[0:size, 0:size], axis=-1).astype(float)
    shares0 = []
    for i in range(len(ds)):
        q0 = ds.get_gt(i).draw((size, size))[0] > 0
        m0 = ds.get_mask(i)
        back = invert_affine(ds.warp_matrix(i))
        shares0.append((q0 & binary_dilation(m0, iterations=dil)).sum() / q0.sum())
        for rot, zoom in views:
            m_view = ds.warp_matrix(i, rot, zoom)
            to_view = transform_points(compose_affine(m_view, back), grid)
            seen = ((to_view > -0.5) & (to_view < size - 0.5)).all(axis=-1)
            ref_mask = binary_dilation(m0, iterations=max(1, round(dil * zoom)))
            ref = (q0 & ref_mask & seen).sum() / (q0 & seen).sum()
            q = ds.get_gt(i, rot, zoom).draw((size, size))[0] > 0
            m = ds.get_mask(i, rot, zoom)
            share = (q & binary_dilation(m, iterations=dil)).sum() / q.sum()
            assert abs(share - ref) < 0.06, (ds.sample_id(i), rot, zoom, share, ref)
            if zoom == 1.0 and rot in QUARTERS:  # exact pixel permutations
                assert share == pytest.approx(shares0[-1], abs=1e-9)
    assert 0.6 < float(np.mean(shares0)) < 0.99  # real Jacquard: most, not all, on the object


def test_random_augmentation_uses_torch_rng(cache_dir: Path) -> None:
    kw = dict(output_size=48, cache_dir=cache_dir, random_rotate=True, random_zoom=True)
    ds = JacquardDataset(_need(JACQUARD), **kw)
    torch.manual_seed(7)
    a = [ds[3] for _ in range(6)]
    torch.manual_seed(7)
    b = [ds[3] for _ in range(6)]
    for p, q in zip(a, b, strict=True):
        assert (p["rot"], p["zoom"]) == (q["rot"], q["zoom"])
        torch.testing.assert_close(p["x"], q["x"])
    assert all(any(math.isclose(p["rot"], r) for r in QUARTERS) for p in a)
    assert all(0.5 <= p["zoom"] <= 1.0 for p in a)
    assert len({p["rot"] for p in a} | {p["zoom"] for p in a}) > 2
    cont = JacquardDataset(JACQUARD, rotation="continuous", **kw)
    rots = [cont[0]["rot"] for _ in range(5)]
    assert all(-math.pi <= r < math.pi for r in rots) and len(set(rots)) == 5


def test_collate_and_dataloader(jacquard_small: JacquardDataset) -> None:
    batch = collate_grasp_batch([jacquard_small[i] for i in (0, 5, 9)])
    assert batch["x"].shape == (3, 4, 64, 64) and batch["y"].shape == (3, 4, 64, 64)
    assert isinstance(batch["gt"], list) and len(batch["gt"]) == 3
    assert [len(g) for g in batch["gt"]] == [len(jacquard_small[i]["gt"]) for i in (0, 5, 9)]
    assert batch["index"].tolist() == [0, 5, 9] and batch["index"].dtype == torch.int64
    assert batch["rot"].dtype == torch.float64 and batch["zoom"].tolist() == [1.0] * 3
    loader = DataLoader(jacquard_small, batch_size=2, num_workers=0, collate_fn=collate_grasp_batch)
    first = next(iter(loader))
    assert first["x"].shape == (2, 4, 64, 64) and len(first["gt"]) == 2
    with pytest.raises(ValueError, match="empty"):
        collate_grasp_batch([])


def test_batched_items_equal_items_one_at_a_time(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loaders' batched fetch (``SeededItems.__getitems__``: a batch's targets drawn
    together) gives exactly the items made one at a time, augmented (rotation, zoom, depth
    noise, RGB, masks) or not; a dataset with its own ``item`` keeps it."""
    from utils.data.loader import SeededItems
    from utils.data.unlabelled import ImageFolder

    aug = dict(random_rotate=True, random_zoom=True, rotation="continuous", depth_aug=True)
    sets = [
        JacquardDataset(
            _need(JACQUARD),
            output_size=48,
            use_rgb=True,
            include_mask=True,
            cache_dir=cache_dir,
            **aug,
        ),  # fmt: skip
        _cornell(output_size=40, cache_dir=cache_dir),
        ImageFolder(JACQUARD, output_size=32, cache_dir=cache_dir, **aug),
    ]
    calls = []
    stacked = base_module.stacked_targets
    monkeypatch.setattr(
        base_module, "stacked_targets", lambda g, *a: calls.append(len(g)) or stacked(g, *a)
    )
    for ds in sets:
        wrapped = SeededItems(ds)
        keys = [(i % len(ds), 1000 + i) for i in (3, 0, 7, 3, 11)]
        calls.clear()
        together = wrapped.__getitems__(keys)
        # The batched path draws the 5 targets in one pass; ImageFolder has no targets.
        assert calls == ([] if isinstance(ds, ImageFolder) else [5])
        alone = [wrapped[k] for k in keys]
        assert len(together) == len(alone) == len(keys)
        for a, b in zip(together, alone, strict=True):
            assert a.keys() == b.keys()
            for k in a:
                if isinstance(a[k], torch.Tensor):
                    assert torch.equal(a[k], b[k]), (type(ds).__name__, k)
                elif isinstance(a[k], np.ndarray):
                    assert np.array_equal(a[k], b[k]), (type(ds).__name__, k)
                else:
                    assert a[k] == b[k], (type(ds).__name__, k)
        assert "y" in together[0] or isinstance(ds, ImageFolder)
    # A plain index (no seed) is the dataset's own item.
    assert torch.equal(SeededItems(sets[1]).__getitems__([0])[0]["y"], sets[1][0]["y"])


def test_mask_item_and_collate(cache_dir: Path) -> None:
    ds = JacquardDataset(_need(JACQUARD), output_size=32, cache_dir=cache_dir, include_mask=True)
    item = ds.view(2, rot=0.5, zoom=0.7)
    assert item["mask"].shape == (1, 32, 32) and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    batch = collate_grasp_batch([item, ds[3]])
    assert batch["mask"].shape == (2, 1, 32, 32)


def test_output_to_source_matrix(jacquard_small: JacquardDataset) -> None:
    back = jacquard_small.output_to_source_matrix(1)
    np.testing.assert_allclose(transform_points(back, np.array([31.5, 31.5])), [511.5, 511.5])
    source = jacquard_small.load_grasps(1)
    roundtrip = jacquard_small.get_gt(1).affine(back)
    np.testing.assert_allclose(roundtrip.points, source.points, atol=1e-9)
    np.testing.assert_allclose(roundtrip.lengths, source.lengths, atol=1e-9)


def test_cache_hit_skips_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = dict(output_size=40, use_rgb=True, include_mask=True, cache_dir=tmp_path / "cache")
    ds = JacquardDataset(_need(JACQUARD), **kw)
    first = ds.view(6, rot=0.4, zoom=0.6)
    assert list((tmp_path / "cache").rglob("*.npy"))

    def fail(*args, **kwargs):
        raise AssertionError("decoded although cached")

    for name in ("load_depth", "load_rgb", "load_mask", "inpaint_depth"):
        monkeypatch.setattr(base_module, name, fail)
    again = JacquardDataset(JACQUARD, **kw)  # a fresh instance: no in-memory state
    second = again.view(6, rot=0.4, zoom=0.6)
    for key in ("x", "y", "mask"):
        torch.testing.assert_close(first[key], second[key])
    # Another zoom inside zoom_range uses a level written on the first miss.
    again.view(6, rot=0.0, zoom=0.9)
    again.view(6)


def test_image_levels_stay_in_memory_up_to_the_cap(tmp_path: Path) -> None:
    """A sample's resized images are read from the disk cache once per process and then kept
    in memory, read-only (``IMAGE_MEMO_BYTES``); with no room left every view reads the disk
    cache again. The items are the same either way."""
    kw = dict(output_size=40, use_rgb=True, include_mask=True, cache_dir=tmp_path / "cache")
    reads = []

    def counted(cache):
        load = cache.load
        cache.load = lambda source, tag: reads.append(tag) or load(source, tag)

    kept = JacquardDataset(_need(JACQUARD), **kw)
    first = kept.view(6, rot=0.4, zoom=0.6)
    counted(kept.cache)
    again = kept.view(6, rot=0.4, zoom=0.6)
    assert [t for t in reads if t != "grasps"] == []  # every image from memory
    assert kept._image_memo and all(not a.flags.writeable for a in kept._image_memo.values())
    with pytest.raises(ValueError, match="read-only"):
        next(iter(kept._image_memo.values()))[0] = 0

    none = JacquardDataset(JACQUARD, **kw)
    none.IMAGE_MEMO_BYTES = 0
    counted(none.cache)
    plain = none.view(6, rot=0.4, zoom=0.6)
    none.view(6, rot=0.4, zoom=0.6)
    assert not none._image_memo and sum(t.startswith("depth") for t in reads) == 2
    for key in ("x", "y", "mask"):
        assert torch.equal(first[key], again[key]) and torch.equal(first[key], plain[key])


def test_cache_misses_when_the_source_changes(tmp_path: Path) -> None:
    root = tmp_path / "jq"
    rects = GraspRectangles.from_grasps(np.array([[40.0, 50.0]]), [0.2], [30.0], [10.0])
    _write_jacquard_view(root / "objA", "0_objA", _blob_scene(96, (40.0, 50.0)), rects)
    ds = JacquardDataset(root, output_size=32, cache_dir=tmp_path / "cache")
    before = ds.get_depth(0)
    path = ds.samples[0].depth
    tifffile.imwrite(path, _blob_scene(96, (40.0, 50.0)) + 0.25)
    os.utime(path, ns=(1, 1))  # distinct mtime even on coarse clocks
    after = JacquardDataset(root, output_size=32, cache_dir=tmp_path / "cache").get_depth(0)
    np.testing.assert_allclose(after - before, 0.25, atol=1e-5)


def test_damaged_cache_entries_are_rebuilt(tmp_path: Path) -> None:
    """Truncated or garbled .npy entries (also after this process has read them once) are
    rebuilt from the source, never returned."""
    root = tmp_path / "jq"
    rects = GraspRectangles.from_grasps(np.array([[40.0, 50.0]]), [0.2], [30.0], [10.0])
    _write_jacquard_view(root / "objA", "0_objA", _blob_scene(96, (40.0, 50.0)), rects)
    ds = JacquardDataset(root, output_size=32, use_rgb=True, cache_dir=tmp_path / "cache")
    expected = ds.view(0)["x"]
    entries = sorted((tmp_path / "cache").rglob("*.npy"))
    assert entries
    for damage in (lambda b: b[: len(b) // 2], lambda b: b"damaged"):
        for entry in entries:
            entry.write_bytes(damage(entry.read_bytes()))
        torch.testing.assert_close(ds.view(0)["x"], expected, rtol=0, atol=0)
        fresh = JacquardDataset(root, output_size=32, use_rgb=True, cache_dir=tmp_path / "cache")
        torch.testing.assert_close(fresh.view(0)["x"], expected, rtol=0, atol=0)


# --- Jacquard format, generated scenes -----------------------------------------------------------
def test_generated_frame_size_and_subpixel_consistency(tmp_path: Path) -> None:
    """A dark blob and a rectangle on it stay together to a small fraction of a pixel."""
    frame, center = 257, (101.3, 141.7)
    rects = GraspRectangles.from_grasps(np.array([center]), [0.3], [40.0], [10.0])
    _write_jacquard_view(tmp_path / "objA", "0_objA", _blob_scene(frame, center), rects)
    ds = JacquardDataset(tmp_path, output_size=64, use_rgb=True)
    assert ds.source_size(0) == (frame, frame) and ds.sample_id(0) == "0_objA"
    rr, cc = np.mgrid[0:64, 0:64]
    for rot, zoom in [(0.0, 1.0), (math.pi / 2, 1.0), (0.7, 1.0), (0.0, 0.5), (-2.0, 0.6)]:
        w = np.clip(1.5 - ds.get_depth(0, rot, zoom), 0, None)
        w = w * (w > 0.004)
        blob = np.array([(w * rr).sum(), (w * cc).sum()]) / w.sum()
        gt = ds.get_gt(0, rot, zoom)
        np.testing.assert_allclose(blob, gt.centers[0], atol=0.05)
        assert math.isclose(
            math.remainder(gt.angles[0] - 0.3 - rot, math.pi), 0.0, abs_tol=1e-5
        )  # the grasp file stores degrees with 5 decimals
    _check_item(ds[0], 4, 64)


def test_get_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DATASETS == ("cornell", "jacquard", "synthetic")
    with pytest.raises(ValueError, match="cornell.*jacquard.*synthetic"):
        get_dataset("imagenet", tmp_path)
    with pytest.raises(ValueError, match="--dataset-path"):
        get_dataset("jacquard", None)
    calls = {}

    def ensure_synthetic_dataset(root=None, n_scenes=4, size=96, seed=0):
        calls.update(root=root, n_scenes=n_scenes)
        out = tmp_path / "synthetic"
        rects = GraspRectangles.from_grasps(np.array([[30.0, 60.0]]), [0.5], [25.0], [8.0])
        for k in range(n_scenes):
            _write_jacquard_view(
                out / f"scene{k}", f"0_scene{k}", _blob_scene(size, (30, 60)), rects
            )
        return out

    fake = types.ModuleType("utils.data.synthetic")
    fake.ensure_synthetic_dataset = ensure_synthetic_dataset
    monkeypatch.setitem(sys.modules, "utils.data.synthetic", fake)
    ds = get_dataset("synthetic", None, output_size=48, synthetic_kwargs={"n_scenes": 2})
    assert (
        isinstance(ds, JacquardDataset) and len(ds) == 2 and calls == {"root": None, "n_scenes": 2}
    )
    s = 48 / 96
    expected = GraspRectangles.from_grasps(np.array([[30.0, 60.0]]), [0.5], [25.0], [8.0])
    expected = expected.scale(s).offset(((s - 1) / 2, (s - 1) / 2))
    np.testing.assert_allclose(ds[1]["y"].numpy(), encode_grasp_maps(*expected.draw((48, 48))))
    if JACQUARD.is_dir():
        assert len(get_dataset("jacquard", JACQUARD, output_size=32)) == 18


# --- Cornell ------------------------------------------------------------------------------------
@pytest.mark.parametrize("crop", ["center", "labels"])
def test_cornell_crops(crop: str, cache_dir: Path) -> None:
    ds = _cornell(crop=crop, output_size=96, use_rgb=True, cache_dir=cache_dir)
    assert len(ds) == 1 and ds.sample_id(0) == "pcd0100" and ds.source_size(0) == (480, 640)
    assert ds.crop_size(0) == 400
    item = ds[0]
    _check_item(item, 4, 96)
    assert item["gt"].min() >= 0 and item["gt"].max() <= 95  # all rectangles inside the view
    # The 400 px crop stays inside the 480 x 640 image in both modes.
    corners = transform_points(
        invert_affine(ds.warp_matrix(0)), np.array([[-0.5, -0.5], [95.5, 95.5]])
    )
    assert (corners >= -0.5 - 1e-9).all() and (corners <= [479.5 + 1e-9, 639.5 + 1e-9]).all()
    label_centre = ds.load_grasps(0).center
    if crop == "labels":  # GG-CNN: centred on the labels, shifted to stay inside the image
        r = min(max(label_centre[0], 199.5), 279.5)
        expected = [r, label_centre[1]]
        small = _cornell(crop=crop, crop_size=160, output_size=32, cache_dir=cache_dir)
        np.testing.assert_allclose(small.get_gt(0).center, [15.5, 15.5], atol=1e-9)
    else:
        expected = [239.5, 319.5]
    np.testing.assert_allclose(transform_points(ds.warp_matrix(0), expected), [47.5, 47.5])


def test_cornell_crop_size_flag_gives_ggcnn_geometry(cache_dir: Path) -> None:
    """--cornell-crop labels --cornell-crop-size 300 --input-size 300: GG-CNN's own view, a
    300 px square of the frame at its native scale, centred on the labels and kept inside."""
    import argparse

    from utils.cli import add_data_args
    from utils.data.build import dataset_from_args

    p = argparse.ArgumentParser()
    add_data_args(p)
    flags = ["--dataset", "cornell", "--dataset-path", str(_need(CORNELL)), "--input-size", "300"]
    args = p.parse_args(flags + ["--cornell-crop", "labels", "--cornell-crop-size", "300"])
    args.cache_dir = str(cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dataset_from_args(args, augment=False)
        default = dataset_from_args(p.parse_args(flags + ["--cache-dir", str(cache_dir)]), False)
    assert ds.crop_size(0) == 300 and default.crop_size(0) == 400
    m = ds.warp_matrix(0)
    np.testing.assert_allclose(m[:, :2], np.eye(2), atol=1e-9)  # no resize
    c = ds.load_grasps(0).center  # GG-CNN: top-left = clamp(centre - 150, 0, frame - 300)
    top = min(max(round(c[0]) - 150, 0), 480 - 300)
    assert abs(-m[0, 2] - top) <= 1.0
    with pytest.raises(SystemExit):
        p.parse_args(flags + ["--cornell-crop-size", "0"])


def test_cornell_nan_rectangles_dropped(tmp_path: Path) -> None:
    src = _need(CORNELL)
    for name in ("pcd0132cpos.txt", "pcd0165cpos.txt"):
        lines = (src / "cpos_only" / name).read_text().split("\n")
        lines = [ln for ln in lines if ln.strip()]
        blocks = [lines[k : k + 4] for k in range(0, len(lines), 4)]
        n_valid = sum(not any("nan" in ln.lower() for ln in b) for b in blocks)
        assert n_valid < len(blocks)  # these real files do contain NaN rectangles
        folder = tmp_path / name[:7] / "01"
        folder.mkdir(parents=True)
        shutil.copy(src / "01" / "pcd0100d.tiff", folder / "pcd0100d.tiff")
        shutil.copy(src / "cpos_only" / name, folder / "pcd0100cpos.txt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = CornellDataset(folder.parent, output_size=64)
        item = ds[0]
        assert len(item["gt"]) == n_valid and np.isfinite(item["gt"]).all()
        _check_item(item, 1, 64)


def test_cornell_object_ids(tmp_path: Path) -> None:
    src = _need(CORNELL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = CornellDataset(src)
    messages = [str(w.message) for w in caught]
    assert any("skipped 2 grasp file(s)" in m for m in messages)  # the cpos_only folder
    assert ds.object_id(0) == "block0025" and not ds.has_object_map
    # Object-wise splits need real object ids: an error that says how to give them.
    from argparse import Namespace

    from utils.data.build import split_from_args

    split_args = Namespace(split=0.5, val_split=0.0, split_by="object", ds_rotate=0.0,
                           folds=None, fold=0, split_seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="--object-map FILE.*--split-by image"):
        split_from_args(split_args, ds)
    split_args.split_by = "image"
    assert split_from_args(split_args, ds)["train"]
    omap = tmp_path / "objects.txt"
    omap.write_text("# image object\npcd0100 mug\n101 mug\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # only the skip warning is expected
        warnings.filterwarnings("ignore", message=".*no image beside them")
        ds = CornellDataset(src, object_map=omap)
    assert ds.object_id(0) == "mug" and ds.has_object_map
    omap.write_text("pcd0100\n")
    with pytest.raises(ValueError, match="objects.txt:1"):
        CornellDataset(src, object_map=omap)


def test_cornell_missing_depth_tells_how_to_convert(tmp_path: Path) -> None:
    src = _need(CORNELL)
    folder = tmp_path / "01"
    folder.mkdir()
    shutil.copy(src / "01" / "pcd0100r.png", folder / "pcd0100r.png")
    shutil.copy(src / "01" / "pcd0100cpos.txt", folder / "pcd0100cpos.txt")
    with pytest.raises(ValueError, match=r"pcd0100d.tiff.*pcd_to_tiff"):
        CornellDataset(tmp_path)
    ds = CornellDataset(tmp_path, use_depth=False, use_rgb=True, output_size=32)
    _check_item(ds[0], 3, 32)


# --- bad inputs ---------------------------------------------------------------------------------
def test_bad_inputs_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_root"
    for cls in (JacquardDataset, CornellDataset):
        with pytest.raises(ValueError, match="no_such_root"):
            cls(missing)
        with pytest.raises(ValueError, match=rf"{tmp_path.name}.*expected files"):
            cls(tmp_path)
    with pytest.raises(ValueError, match="use_depth and use_rgb"):
        JacquardDataset(tmp_path, use_depth=False, use_rgb=False)
    with pytest.raises(ValueError, match="depth_type"):
        JacquardDataset(tmp_path, depth_type="lidar")
    with pytest.raises(ValueError, match="crop"):
        CornellDataset(tmp_path, crop="random")
    with pytest.raises(ValueError, match="rotation"):
        JacquardDataset(tmp_path, rotation="free")
    with pytest.raises(ValueError, match="output_size"):
        JacquardDataset(tmp_path, output_size=0)
    rects = GraspRectangles.from_grasps(np.array([[20.0, 20.0]]), [0.0], [10.0], [5.0])
    _write_jacquard_view(tmp_path / "objB", "0_objB", _blob_scene(48, (20, 20)), rects)
    corrupt = tmp_path / "objB" / "0_objB_perfect_depth.tiff"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 64)
    ds = JacquardDataset(tmp_path, output_size=16)
    with pytest.raises(ValueError, match="0_objB_perfect_depth.tiff"):
        ds[0]
    (tmp_path / "objB" / "0_objB_RGB.png").unlink()
    with pytest.raises(ValueError, match="0_objB_RGB.png"):
        JacquardDataset(tmp_path, use_rgb=True)
    with pytest.raises(IndexError):
        ds[5]


# --- pcd -> tiff --------------------------------------------------------------------------------
PCD_HEADER = """# .PCD v.7 - Point Cloud Data file format
FIELDS x y z rgb index
SIZE 4 4 4 4 4
TYPE F F F F U
COUNT 1 1 1 1 1
WIDTH 3
HEIGHT 1
POINTS 3
DATA ascii
"""


def test_pcd_to_tiff(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "01"
    folder.mkdir()
    points = "300 400 1200 4.2e+06 0\n0 0 1000 4.2e+06 641\n-30 40 0 4.2e+06 307199\n"
    (folder / "pcd0100.txt").write_text(PCD_HEADER + points)
    (folder / "pcd0100cpos.txt").write_text("1 2\n")  # not a point cloud: ignored
    assert pcd_to_tiff_main([str(tmp_path)]) == 0
    depth = load_depth(folder / "pcd0100d.tiff")
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    # Euclidean distance / 1000 (GG-CNN's conversion), index = row * 640 + col.
    assert depth[0, 0] == pytest.approx(1.3)
    assert depth[1, 1] == pytest.approx(1.0)
    assert depth[479, 639] == pytest.approx(0.05)
    assert np.count_nonzero(depth) == 3
    assert pcd_to_tiff_main([str(folder / "pcd0100.txt")]) == 0
    assert "skipped 1" in capsys.readouterr().out
    bad = tmp_path / "pcd0200.txt"
    bad.write_text(PCD_HEADER + "1 2 3 4 999999999\n")
    with pytest.raises(ValueError, match="pcd0200.txt"):
        read_pcd_depth(bad)
    assert pcd_to_tiff_main([str(bad)]) == 2
    (tmp_path / "pcd0300.txt").write_text("no header here\n")
    with pytest.raises(ValueError, match=r"pcd0300.txt.*DATA ascii"):
        read_pcd_depth(tmp_path / "pcd0300.txt")


# --- parsed grasps are cached -------------------------------------------------------------------
def test_parsed_grasps_cached_in_memory_and_on_disk(tmp_path: Path) -> None:
    rects = GraspRectangles.from_grasps(
        np.array([[20.0, 24.0], [30.0, 30.0]]), np.array([0.3, -1.0]), np.array([20.0, 14.0]),
        np.array([8.0, 6.0]),
    )  # fmt: skip
    _write_jacquard_view(tmp_path / "data" / "obj", "0_obj", _blob_scene(64, (32, 32)), rects)
    grasp_file = tmp_path / "data" / "obj" / "0_obj_grasps.txt"
    cache = tmp_path / "cache"
    first = JacquardDataset(tmp_path / "data", output_size=32, cache_dir=cache)
    assert np.allclose(first.grasps(0).points, rects.points, atol=1e-3)
    first.grasps(0).points[:] = 0  # the caller gets a copy: the cached corners stay intact
    assert np.allclose(first.grasps(0).points, rects.points, atol=1e-3)

    # Same size and mtime, unparseable content: served from the cached .npy, never parsed.
    st = grasp_file.stat()
    grasp_file.write_bytes(b"x" * (st.st_size - 1) + b"\n")
    os.utime(grasp_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = JacquardDataset(tmp_path / "data", output_size=32, cache_dir=cache)
    assert np.allclose(again.grasps(0).points, rects.points, atol=1e-3)
    # A damaged cache entry is not used: the file is parsed again (and here it is broken).
    for entry in cache.rglob("0_obj_grasps.*.npy"):
        entry.write_bytes(b"damaged")
    damaged = JacquardDataset(tmp_path / "data", output_size=32, cache_dir=cache)
    with pytest.raises(ValueError, match="0_obj_grasps.txt"):
        damaged.grasps(0)

    # An edited grasp file (new mtime) is parsed again, not served stale.
    GraspRectangles(rects.points[:1]).save_jacquard(grasp_file)
    edited = JacquardDataset(tmp_path / "data", output_size=32, cache_dir=cache)
    assert len(edited.grasps(0)) == 1
