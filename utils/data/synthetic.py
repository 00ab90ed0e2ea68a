"""Procedural synthetic grasp dataset in the Jacquard or Cornell file layout.

Command line::

    python -m utils.data.synthetic --format jacquard --out data/synthetic/demo --n 600 --seed 0 \\
        --size 300 [--views 5]

Each *object set* (one object in 70% of the sets, else 2 or 3, from fifteen shape families,
see :mod:`utils.data.synthetic_render`) is seen in ``views`` views: the same objects re-posed on
the table, with a new camera distance (1.4 to 1.6 m) and table tilt (8 to 12 degrees) per view
(real Jacquard: one object, 1.5 m, 10 degrees; ``benchmarks/domain_gap.py``), so
object-wise splits are meaningful, like real Jacquard's ~5 views per object. ``n`` counts
images (views), so a dataset has ceil(n / views) object sets. Object set i draws everything
from ``numpy.random.default_rng([seed, i])``: sets are independent of order and of each other,
and the same (seed, size, views) gives byte-identical files.

Per image: a perfect depth map (float32 metres), a stereo-like depth map (float32, -1 where
invalid), a shaded RGB image, the object mask and grasp rectangles found from the geometry
with a parallel-jaw gripper model (:mod:`utils.data.synthetic_labels`).

Layouts (the same names, dtypes and value conventions as the real datasets):

- ``jacquard``: ``<out>/<object>/<view>_<object>_{perfect_depth.tiff, stereo_depth.tiff,
  RGB.png, mask.png, grasps.txt}``; ``<object>`` is a 32-hex-digit id; TIFFs are float32, LZW
  compressed (with the floating-point predictor); the mask is uint8 {0, 255}; grasps.txt has
  CRLF lines ``x;y;theta;w;h`` (theta clockwise degrees), one line per collision-free jaw
  size h of each grasp, like Jacquard. Frames are ``size`` x ``size``.
- ``cornell``: ``<out>/<NN>/pcdXXXX{d.tiff, r.png, cpos.txt}``, 100 images per folder
  (``01/pcd0100`` ... ``01/pcd0199``, ``02/pcd0200`` ...), frames ``size`` x ``4/3 size``
  (480 x 640 at ``--size 480``, like Cornell). The depth TIFF is uncompressed float32 holding
  the Euclidean distance to the camera (as :mod:`utils.data.pcd_to_tiff` makes from Cornell's
  point clouds) of the stereo-like depth, with 0 where invalid (Cornell's "no point").
  ``cpos.txt`` holds one rectangle per grasp (jaw size 2 cm where it fits, else 1 cm).
  ``<out>/object_map.txt`` maps images to object sets (``pcdXXXX objectid`` lines, the format
  of ``CornellDataset(object_map=...)``).

A finished dataset holds ``synthetic_dataset.json`` (parameters, counts, timing). It is written
last inside a temporary folder beside ``out`` that is then renamed to ``out``, so an interrupted
run never leaves a folder that looks complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.atomic import atomic_write_json, fsync_dir
from utils.data.synthetic_labels import (
    DEFAULT_GRIPPER,
    ROBOTIQ_2F85,
    GraspLabels,
    GripperModel,
    find_grasps,
    thin_grasps,
)
from utils.data.synthetic_render import (
    DISTANCE_RANGE,
    FAMILIES,
    FIT_SHARE,
    TILT_RANGE,
    Camera,
    PlacedObject,
    Shape,
    focal_length,
    pick_family,
    place_objects,
    random_table_color,
    render_heights,
    render_rgb,
    sample_shape,
    simulate_stereo,
)
from utils.grasp import GraspRectangles

#: Bump when the generator's output changes; a dataset with another version is regenerated.
#: v3 matches real Jacquard's camera (1.4-1.6 m, 8-12 degrees of tilt), objects per view,
#: share of thin frames, grasps per object and stereo holes (README, Sim-to-real). v4 labels
#: parts that float above or beside lower parts of the same object (a chair's upper legs):
#: the grasp search runs again on the footprint above higher floors
#: (``synthetic_labels.SLICE_FRACTIONS``); scenes and images are v3's.
GENERATOR_VERSION = 4
#: Marker file of a complete dataset (written last).
MARKER = "synthetic_dataset.json"
FORMATS = ("jacquard", "cornell")
#: Default number of images for ``ensure_synthetic_dataset`` / ``--dataset synthetic`` (see
#: there for why).
DEFAULT_N_SCENES = 600
#: Views (images) per object set.
DEFAULT_VIEWS = 5
#: Cap on grasps (before jaw sizes) per object and image, evenly thinned over angles and lines.
#: Real Jacquard views have 32 [10, 45] (median [10th, 90th percentile]) per object; v2's 60
#: was reached by most objects.
MAX_GRASPS_PER_OBJECT = 40
#: Probabilities of 1, 2 and 3 objects in an object set: real Jacquard views show one object;
#: a few sets keep neighbours (clutter to tell apart). v2: 1 to 3 uniformly.
OBJECTS_PER_SET: tuple[float, ...] = (0.7, 0.2, 0.1)
#: A view with no grasp at all is re-drawn (new camera and poses) up to this many times.
_REDRAWS = 4
_REPO = Path(__file__).resolve().parents[2]


@dataclass(eq=False)
class Scene:
    """One rendered image and its labels.

    - ``depth``: float32 (H, W) z-depth, metres (perfect).
    - ``stereo_depth``: float32 (H, W) metres with sensor noise, -1 where invalid.
    - ``rgb``: uint8 (H, W, 3), RGB order.
    - ``mask``: bool (H, W), object pixels.
    - ``labels``: uint8 (H, W), 0 = table, k = object k (1-based, ``objects[k - 1]``).
    - ``heights``: float32 (H, W) height above the table, metres.
    - ``grasps``: :class:`GraspRectangles` in (row, col) pixels, one per grasp and
      collision-free jaw size (consecutive rows share a grasp, like Jacquard's h rows).
    - ``grasp_labels``: the same grasps with contacts, per-jaw sizes and object labels.
    - ``objects``: the placed objects (shape, centre, yaw, px per metre); ``camera``.
    """

    depth: np.ndarray
    stereo_depth: np.ndarray
    rgb: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    heights: np.ndarray
    grasps: GraspRectangles
    grasp_labels: GraspLabels
    objects: list[PlacedObject]
    camera: Camera
    gripper: GripperModel

    @property
    def object_masks(self) -> np.ndarray:
        """bool (K, H, W): one mask per object, in ``objects`` order."""
        return self.labels[None] == np.arange(1, len(self.objects) + 1)[:, None, None]

    @property
    def families(self) -> list[str]:
        return [o.shape.family for o in self.objects]


def frame_shape(fmt: str, size: int) -> tuple[int, int]:
    """(rows, cols) of a frame: ``size`` square for Jacquard, ``size`` x 4/3 size for Cornell."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if isinstance(size, bool) or int(size) != size or size < 32:
        raise ValueError(f"size must be an integer >= 32 pixels, got {size!r}")
    return (int(size), int(size)) if fmt == "jacquard" else (int(size), round(size * 4 / 3))


def sample_objects(
    rng: np.random.Generator, n_objects: int | None = None, families: list[str] | None = None
) -> list[Shape]:
    """1 to 3 random shapes (``n_objects`` if given: see :data:`OBJECTS_PER_SET`), families
    drawn from ``families`` with :data:`FAMILY_WEIGHTS`."""
    fams = list(families) if families is not None else list(FAMILIES)
    if n_objects is None:
        n = 1 + int(rng.choice(len(OBJECTS_PER_SET), p=OBJECTS_PER_SET))
    else:
        n = int(n_objects)
    return [sample_shape(rng, pick_family(rng, fams)) for _ in range(n)]


def sample_camera(
    rng: np.random.Generator, shape: tuple[int, int], fit_radius: float = 0.0
) -> Camera:
    """Random view: tilt uniform in :data:`TILT_RANGE` (real Jacquard: 10 degrees), towards a
    uniform direction; distance uniform in :data:`DISTANCE_RANGE` (real Jacquard: 1.5 m), but
    far enough that an object of ``fit_radius`` metres spans at most :data:`FIT_SHARE` of the
    frame's short side (up to the range's far end)."""
    f = focal_length(shape[0])
    lo, hi = DISTANCE_RANGE
    lo = min(max(lo, 2 * fit_radius * f / (FIT_SHARE * min(shape))), hi)
    return Camera(
        shape=(int(shape[0]), int(shape[1])),
        f=f,
        distance=float(rng.uniform(lo, hi)),
        tilt=float(rng.uniform(*TILT_RANGE)),
        tilt_dir=float(rng.uniform(-np.pi, np.pi)),
    )


def render_scene(
    objects: list[PlacedObject],
    camera: Camera,
    rng: np.random.Generator,
    gripper: GripperModel = DEFAULT_GRIPPER,
    table_color: tuple[float, float, float] | None = None,
    max_grasps_per_object: int = MAX_GRASPS_PER_OBJECT,
) -> Scene:
    """Render placed objects seen by ``camera`` and label their grasps."""
    table = camera.table_depth()
    heights, labels = render_heights(objects, camera.shape)
    depth = (table - heights * math.cos(camera.tilt)).astype(np.float32)
    if table_color is None:
        table_color = random_table_color(rng)
    colors = [o.shape.color for o in objects]
    rgb = render_rgb(heights, labels, depth, camera, colors, table_color, rng)
    stereo = simulate_stereo(depth, labels, camera, rng)
    scale = np.array([0.0] + [o.px_per_m for o in objects])
    found = thin_grasps(find_grasps(heights, labels, scale, gripper), max_grasps_per_object)
    return Scene(
        depth=depth,
        stereo_depth=stereo,
        rgb=rgb,
        mask=labels > 0,
        labels=labels,
        heights=heights,
        grasps=found.rectangles("all"),
        grasp_labels=found,
        objects=objects,
        camera=camera,
        gripper=gripper,
    )


def render_view(
    shapes: list[Shape],
    rng: np.random.Generator,
    shape: tuple[int, int],
    gripper: GripperModel = DEFAULT_GRIPPER,
    table_color: tuple[float, float, float] | None = None,
    max_grasps_per_object: int = MAX_GRASPS_PER_OBJECT,
) -> Scene:
    """One view of ``shapes``: a random camera, a random non-overlapping layout, rendered and
    labelled. A view with no grasp is re-drawn a few times (the last try is kept regardless)."""
    scene = None
    for _ in range(_REDRAWS + 1):
        camera = sample_camera(rng, shape, max(s.radius for s in shapes))
        placed = place_objects(shapes, camera, camera.table_depth(), rng)
        scene = render_scene(placed, camera, rng, gripper, table_color, max_grasps_per_object)
        if len(scene.grasps):
            break
    return scene


def generate_scene(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 300,
    n_objects: int | None = None,
    families: list[str] | None = None,
    gripper: GripperModel = DEFAULT_GRIPPER,
    max_grasps_per_object: int = MAX_GRASPS_PER_OBJECT,
) -> Scene:
    """A new random scene: 1 to 3 objects (``n_objects``), one view of ``size`` pixels
    (an int for a square frame or (rows, cols))."""
    shape = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    shapes = sample_objects(rng, n_objects, families)
    return render_view(shapes, rng, shape, gripper, None, max_grasps_per_object)


# --- writers --------------------------------------------------------------------------------------
def _write_tiff(path: Path, image: np.ndarray, lzw: bool, float_predictor: bool = True) -> None:
    # OpenCV's libtiff writes float32 TIFFs that every reader here decodes (tifffile needs the
    # optional imagecodecs for LZW; OpenCV and Pillow do not). The floating-point predictor
    # makes LZW ~4x more effective on smooth depth; on the quantised, noisy stereo depth
    # (a few hundred distinct values) plain LZW does better.
    params = [cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_NONE]
    if lzw:
        predictor = (
            cv2.IMWRITE_TIFF_PREDICTOR_FLOATINGPOINT
            if float_predictor
            else cv2.IMWRITE_TIFF_PREDICTOR_NONE
        )
        params = [
            cv2.IMWRITE_TIFF_COMPRESSION,
            cv2.IMWRITE_TIFF_COMPRESSION_LZW,
            cv2.IMWRITE_TIFF_PREDICTOR,
            predictor,
        ]
    if not cv2.imwrite(str(path), np.ascontiguousarray(image, dtype=np.float32), params):
        raise OSError(f"{path}: cannot write TIFF")


def _write_png(path: Path, image: np.ndarray) -> None:
    img = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"{path}: cannot write PNG")


def write_jacquard(out: str | Path, scene: Scene, object_id: str, view: int) -> Path:
    """Write ``scene`` as view ``view`` of object folder ``out/object_id`` (Jacquard names).

    Returns the grasp file's path.
    """
    folder = Path(out) / object_id
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{view}_{object_id}"
    _write_tiff(Path(f"{stem}_perfect_depth.tiff"), scene.depth, lzw=True)
    _write_tiff(
        Path(f"{stem}_stereo_depth.tiff"), scene.stereo_depth, lzw=True, float_predictor=False
    )
    _write_png(Path(f"{stem}_RGB.png"), scene.rgb)
    _write_png(Path(f"{stem}_mask.png"), scene.mask.astype(np.uint8) * 255)
    grasp_file = Path(f"{stem}_grasps.txt")
    scene.grasps.save_jacquard(grasp_file)
    return grasp_file


def cornell_name(index: int) -> tuple[str, str]:
    """(folder, image id) of the ``index``-th (0-based) Cornell image: 100 per folder, numbered
    like the real set (``0 -> ("01", "pcd0100")``, ``100 -> ("02", "pcd0200")``)."""
    folder = index // 100 + 1
    return f"{folder:02d}", f"pcd{folder * 100 + index % 100:04d}"


def write_cornell(out: str | Path, scene: Scene, index: int) -> str:
    """Write ``scene`` as the ``index``-th image of a Cornell-layout folder; returns its id."""
    sub, pcd = cornell_name(index)
    folder = Path(out) / sub
    folder.mkdir(parents=True, exist_ok=True)
    yp, xp = scene.camera.rays()
    # Cornell depth images hold the distance to the sensor (not z), 0 where no point.
    dist = scene.stereo_depth * np.sqrt(1.0 + xp * xp + yp * yp).astype(np.float32)
    dist[scene.stereo_depth <= 0] = 0.0
    _write_tiff(folder / f"{pcd}d.tiff", dist, lzw=False)
    _write_png(folder / f"{pcd}r.png", scene.rgb)
    scene.grasp_labels.rectangles(jaw=1).save_cornell(folder / f"{pcd}cpos.txt")
    return pcd


# --- datasets -------------------------------------------------------------------------------------
def object_set_id(seed: int, index: int) -> str:
    """Jacquard-like 32-hex-digit folder name of object set ``index`` (stable per seed)."""
    return hashlib.md5(f"synthetic:{seed}:{index}".encode()).hexdigest()


def _params(fmt: str, n_scenes: int, seed: int, size: int, views: int, gripper: GripperModel):
    return {
        "generator": "utils.data.synthetic",
        "version": GENERATOR_VERSION,
        "format": fmt,
        "n_scenes": int(n_scenes),
        "seed": int(seed),
        "size": int(size),
        "views": int(views),
        "gripper": gripper.as_dict(),
    }


def read_marker(root: str | Path) -> dict | None:
    """The marker of a complete dataset at ``root`` (None if absent or unreadable)."""
    try:
        return json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _marker_matches(marker: dict | None, params: dict) -> bool:
    return marker is not None and all(marker.get(k) == v for k, v in params.items())


def generate_dataset(
    out: str | Path,
    fmt: str = "jacquard",
    n_scenes: int = DEFAULT_N_SCENES,
    seed: int = 0,
    size: int = 300,
    views: int = DEFAULT_VIEWS,
    gripper: GripperModel = DEFAULT_GRIPPER,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Generate ``n_scenes`` images into ``out`` (see the module doc); returns ``out``.

    Args:
        out: dataset folder to create.
        fmt: ``"jacquard"`` or ``"cornell"`` layout.
        n_scenes: number of images (views); object sets hold ``views`` of them each.
        seed: object set i uses ``numpy.random.default_rng([seed, i])``.
        size: frame rows in pixels (Jacquard: size x size; Cornell: size x 4/3 size).
        views: views per object set.
        gripper: the gripper model behind the labels.
        overwrite: replace an existing ``out`` (once the new dataset is complete).
        progress: print a progress line to stderr every ~5 %.

    Writes into a temporary folder beside ``out``, then renames it, so ``out`` only ever
    appears complete. An existing ``out`` raises FileExistsError unless ``overwrite``.
    """
    shape = frame_shape(fmt, size)
    if isinstance(n_scenes, bool) or int(n_scenes) != n_scenes or n_scenes < 1:
        raise ValueError(f"n_scenes must be a positive integer, got {n_scenes!r}")
    if isinstance(views, bool) or int(views) != views or views < 1:
        raise ValueError(f"views must be a positive integer, got {views!r}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass overwrite=True / --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    t0 = time.perf_counter()
    n_sets = math.ceil(n_scenes / views)
    n_grasps = 0
    try:
        object_map = []
        image = 0
        for i in range(n_sets):
            rng = np.random.default_rng([int(seed), i])
            shapes = sample_objects(rng)
            table_color = random_table_color(rng)
            oid = object_set_id(seed, i)
            for v in range(min(views, n_scenes - i * views)):
                scene = render_view(shapes, rng, shape, gripper, table_color)
                n_grasps += len(scene.grasp_labels)
                if fmt == "jacquard":
                    write_jacquard(tmp, scene, oid, v)
                else:
                    object_map.append(f"{write_cornell(tmp, scene, image)} {oid}")
                image += 1
            if progress and (i + 1) % max(1, n_sets // 20) == 0:
                print(f"  {image}/{n_scenes} images", file=sys.stderr, flush=True)
        if fmt == "cornell":
            (tmp / "object_map.txt").write_text("\n".join(object_map) + "\n")
        marker = _params(fmt, n_scenes, seed, size, views, gripper)
        marker.update(
            n_object_sets=n_sets,
            n_grasps=n_grasps,
            frame=list(shape),
            seconds=round(time.perf_counter() - t0, 2),
        )
        # Written last and fsynced: a folder with its marker is complete.
        atomic_write_json(tmp / MARKER, marker, indent=1)
        _install(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _install(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``out`` (replacing an old ``out`` when ``overwrite``)."""
    old = None
    if out.exists() and overwrite:
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        # Someone else installed it first (a parallel run): keep theirs if it is complete.
        if read_marker(out) is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(out.parent)  # the rename survives a power cut


def default_root(fmt: str, n_scenes: int, size: int, seed: int) -> Path:
    """``<repo>/data/synthetic/<fmt>_v<version>_n<n>_s<size>_seed<seed>``: the generator
    version is in the name, so a new generator makes a new folder beside the old one (runs
    of the old one can still be scored on it) instead of replacing it."""
    name = f"{fmt}_v{GENERATOR_VERSION}_n{n_scenes}_s{size}_seed{seed}"
    return _REPO / "data" / "synthetic" / name


def ensure_synthetic_dataset(
    root: str | Path | None = None,
    n_scenes: int = DEFAULT_N_SCENES,
    size: int = 300,
    seed: int = 0,
    fmt: str = "jacquard",
    views: int = DEFAULT_VIEWS,
    replace: bool = True,
) -> Path:
    """The synthetic dataset folder, generated on first use and reused afterwards.

    ``root`` None: :func:`default_root`. A folder whose marker matches the parameters is
    reused, and so is a named ``root`` whose set differs only in the generator version (an
    older run's data; the default folders carry the version in their name); one holding a
    synthetic dataset with other parameters is regenerated; an existing
    non-empty folder without a marker is left alone (ValueError), as it may be someone's data;
    with ``replace=False`` (evaluation, the benchmark set) a set of other parameters is too.
    The default of 600 images (120 object sets of 5 views, ~250 objects) takes about 18 s on
    one core and ~220 MB: the size of Cornell (885 images of ~240 objects), on which GG-CNN
    trains well with rotation/zoom augmentation, and enough object sets (12 at a 90/10
    object-wise split) for a meaningful held-out part. Pass more for longer runs (1,000 images
    take ~30 s).
    """
    named = root is not None
    root = Path(root) if named else default_root(fmt, n_scenes, size, seed)
    params = _params(fmt, n_scenes, seed, size, views, DEFAULT_GRIPPER)
    marker = read_marker(root)
    if _marker_matches(marker, params):
        return root
    if named and marker and _marker_matches(marker, {**params, "version": marker.get("version")}):
        # A folder the user names is their data: an older generator's set is what an old run
        # trained on, so reproducing that run must not regenerate it under the new version.
        print(
            f"{root}: synthetic generator v{marker.get('version')} (this code writes "
            f"v{GENERATOR_VERSION}); used as it is (remove the folder to regenerate it)"
        )
        return root
    if root.exists() and marker is None and any(root.iterdir()):
        raise ValueError(
            f"{root}: exists and is not a complete synthetic dataset (no {MARKER}); "
            "remove it or choose another folder"
        )
    if marker is not None and not replace:
        raise ValueError(
            f"{root}: holds a synthetic dataset of other parameters (seed {marker.get('seed')}, "
            f"{marker.get('n_scenes')} images, version {marker.get('version')}); it is not "
            "replaced here: choose another folder"
        )
    print(
        f"Generating synthetic {fmt} dataset ({n_scenes} images, {size} px, seed {seed}) "
        f"in {root} ...",
        end=" ",
        flush=True,
    )
    t0 = time.perf_counter()
    generate_dataset(root, fmt, n_scenes, seed, size, views, overwrite=root.exists())
    print(f"done in {time.perf_counter() - t0:.1f} s", flush=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.data.synthetic",
        description="Generate a procedural synthetic grasp dataset (Jacquard or Cornell layout).",
    )
    parser.add_argument("--format", choices=FORMATS, default="jacquard")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    parser.add_argument("--n", type=int, default=DEFAULT_N_SCENES, help="number of images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="frame rows in pixels (default 300 Jacquard, 480 Cornell)",
    )
    parser.add_argument("--views", type=int, default=DEFAULT_VIEWS, help="views per object set")
    parser.add_argument(
        "--gripper",
        choices=("2f140", "2f85"),
        default="2f140",
        help="gripper model: 0.14 m (default) or 0.085 m maximum opening",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    from utils.data.benchmark import HELD_OUT_SEEDS

    if args.seed in HELD_OUT_SEEDS:
        print(
            f"error: --seed {args.seed} is a held-out set's seed, the benchmark set's or the "
            "confirmation set's (utils/data/benchmark.py); a set made from it would leak its "
            "objects into training",
            file=sys.stderr,
        )
        return 2
    size = args.size if args.size is not None else (300 if args.format == "jacquard" else 480)
    gripper = DEFAULT_GRIPPER if args.gripper == "2f140" else ROBOTIQ_2F85
    t0 = time.perf_counter()
    try:
        out = generate_dataset(
            args.out,
            args.format,
            args.n,
            args.seed,
            size,
            args.views,
            gripper,
            args.overwrite,
            True,
        )
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} {args.format} images to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
