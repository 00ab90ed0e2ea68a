"""Make the README pictures of the synthetic dataset and of a real Jacquard sample.

    python benchmarks/make_readme_images.py [--out readme_image] [--seed 0]

Writes ``synthetic_grid.png`` (8 generated scenes, RGB on top and stereo depth below, with a
subsample of their ground-truth grasps) and ``jacquard_sample.png`` (real Jacquard views from
``../shared/data/jacquard_samples``, read with the project's loader conventions and drawn the
same way; skipped with a message when the folder is absent). Both pictures go through the
same drawing code, so they also check the angle convention on real data: the jaws (red) must
sit on the object's sides and the opening edges (green) must cross the object.
PNGs are colour-quantised to stay small (< 500 KB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.data.synthetic import generate_scene  # noqa: E402
from utils.grasp import GraspRectangles  # noqa: E402
from utils.image import resize_transform  # noqa: E402
from utils.visualisation import (  # noqa: E402
    depth_to_rgb,
    draw_grasp_rectangles,
    image_grid,
)

SHARED = REPO.parent / "shared" / "data" / "jacquard_samples"


def subsample(rects: GraspRectangles, n: int, rng: np.random.Generator) -> GraspRectangles:
    """At most ``n`` rectangles, one per distinct (centre, angle, opening): the row with the
    largest jaw of each (Jacquard repeats a grasp once per jaw size)."""
    if len(rects) == 0:
        return rects
    key = np.round(
        np.concatenate([rects.centers, rects.angles[:, None], rects.lengths[:, None]], 1), 2
    )
    order = np.lexsort((rects.widths, *key.T[::-1]))
    k = key[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = np.any(k[1:] != k[:-1], axis=1)
    unique = order[last]  # largest jaw of each grasp
    if len(unique) > n:
        unique = rng.choice(unique, n, replace=False)
    return rects[np.sort(unique)]


def save_small_png(path: Path, image: np.ndarray, colours: int = 128) -> Path:
    """Save an RGB uint8 image as a palette PNG (median-cut quantised), much smaller than RGB."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).quantize(colours, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def synthetic_grid(seed: int, size: int = 300, per_object: int = 5) -> np.ndarray:
    """8 scenes: 4 RGB on top, 4 stereo depth below; ``per_object`` grasps of each object
    (evenly spread over the found order, which runs through the angles), 2 cm jaws."""
    rgb_tiles, depth_tiles = [], []
    for i in range(8):
        scene = generate_scene(np.random.default_rng([seed, 1000 + i]), size)
        labels = scene.grasp_labels
        keep = []
        for k in np.unique(labels.objects):
            idx = np.flatnonzero(labels.objects == k)
            keep.extend(idx[np.linspace(0, len(idx) - 1, min(per_object, len(idx))).astype(int)])
        rects = labels.subset(np.array(sorted(keep), dtype=np.int64)).rectangles(jaw=1)
        if i < 4:
            rgb_tiles.append(draw_grasp_rectangles(scene.rgb, rects))
        else:
            depth_tiles.append(draw_grasp_rectangles(depth_to_rgb(scene.stereo_depth), rects))
    return image_grid(rgb_tiles + depth_tiles, 4)


def jacquard_picture(root: Path, per_image: int = 14, size: int = 384) -> np.ndarray | None:
    """RGB and perfect depth of three real views with their grasps, shrunk to ``size``."""
    grasp_files = sorted(root.glob("*/*_grasps.txt"))
    if not grasp_files:
        return None
    rng = np.random.default_rng(0)
    # One view of three different objects.
    picked, seen = [], set()
    for f in grasp_files:
        if f.parent.name not in seen:
            seen.add(f.parent.name)
            picked.append(f)
    tiles = []
    for f in picked[:3]:
        stem = str(f)[: -len("_grasps.txt")]
        rgb = cv2.cvtColor(cv2.imread(f"{stem}_RGB.png"), cv2.COLOR_BGR2RGB)
        depth = cv2.imread(f"{stem}_perfect_depth.tiff", cv2.IMREAD_UNCHANGED)
        frame = rgb.shape[0]
        rects = GraspRectangles.load_from_jacquard_file(f)
        rects = subsample(rects, per_image, rng).affine(
            resize_transform((frame, frame), (size, size))
        )
        small_rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        small_depth = cv2.resize(depth, (size, size), interpolation=cv2.INTER_AREA)
        tiles.append(draw_grasp_rectangles(small_rgb, rects))
        tiles.append(draw_grasp_rectangles(depth_to_rgb(small_depth), rects))
    return image_grid(tiles, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "readme_image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = save_small_png(args.out / "synthetic_grid.png", synthetic_grid(args.seed))
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    picture = jacquard_picture(SHARED)
    if picture is None:
        print(f"no Jacquard samples at {SHARED}: jacquard_sample.png not written")
    else:
        path = save_small_png(args.out / "jacquard_sample.png", picture)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
