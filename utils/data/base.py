"""GraspDataset: the shared loader behind the Cornell, Jacquard and synthetic datasets.

Every view of a sample is made by ONE 2 x 3 (row, col) affine map from the source image to the
S x S output (:func:`utils.image.crop_transform`: crop placement, resize, rotation about the
crop centre, zoom). The image is resampled with it (:func:`utils.image.warp_image`) and the
ground-truth rectangles are moved with the very same matrix (:meth:`GraspRectangles.affine`),
so image and labels agree by construction, including sub-pixel offsets: a whole-frame resize
from F to S pixels maps p to (p + 0.5) * S / F - 0.5 (pixel centres at integer coordinates).

Anti-aliasing: resampling a 1024 px frame straight to 300 px with bilinear interpolation
aliases, so each image is first shrunk with ``cv2.INTER_AREA`` to a "level" and the warp runs
from that level (the matrix is composed with the level's resize map, so labels, which use the
plain source-to-output matrix, stay exactly consistent). Levels are the base scale
``S / crop_size`` times powers of sqrt(2), chosen so the final warp magnifies by a factor in
[1, sqrt(2)]: it never shrinks (no aliasing) and at most mildly blurs. Without augmentation
the warp from the base level is an identity or an integer shift (Jacquard, Cornell at 300 px),
and quarter turns are exact pixel permutations. Zoom in [0.5, 1) uses one more level.

Caching: decoding and inpainting a 1024 x 1024 TIFF costs tens of ms, so with ``cache_dir``
every level is stored as ``.npy`` (see :class:`ArrayCache`), and so are the parsed grasps
(:meth:`GraspDataset.grasps`); after the first epoch a sample is a small ``.npy`` read per
input, a warp and one vectorised target drawing (about 2.0 ms for an augmented Jacquard
sample with depth + RGB at 224 px, ``benchmarks/loader_speed.py``). Disk use at 300 px: 0.64 MB per Jacquard
sample (depth + RGB) without zoom augmentation, 1.9 MB with it (the extra sqrt(2) level).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from utils.atomic import atomic_open, remove_leftovers
from utils.depth import DEPTH_NORMS, normalise_depth, randomise_depth
from utils.grasp import WIDTH_SCALE, GraspRectangles, stacked_targets
from utils.image import (
    IMAGE_BORDER,
    affine_scale,
    compose_affine,
    crop_transform,
    image_shape,
    inpaint_depth,
    invert_affine,
    load_depth,
    load_mask,
    load_rgb,
    normalise_rgb,
    resize_image,
    resize_transform,
    warp_image,
)

#: Bump when the decoding / processing of cached arrays changes, to invalidate old caches.
CACHE_VERSION = 1
#: Depth inpainting used before caching (GG-CNN: Navier-Stokes, radius 1).
INPAINT_METHOD = "ns"
INPAINT_RADIUS = 1
_KINDS = ("depth", "rgb", "mask")


@dataclass(frozen=True)
class Sample:
    """One image: its files and ids. Paths that the sample lacks are None (``grasps`` too, for
    an unlabelled image)."""

    grasps: Path | None
    sample_id: str
    object_id: str
    depth: Path | None = None
    rgb: Path | None = None
    mask: Path | None = None


#: Cache folders already swept for leftovers by this process.
_SWEPT: set[Path] = set()


class ArrayCache:
    """Decoded arrays on disk as ``.npy``, keyed by the source file and processing parameters.

    The key is the source's absolute path, size and mtime (ns) plus a tag describing the
    processing (kind, level shape, inpainting, :data:`CACHE_VERSION`), hashed into
    ``<root>/<2 hex>/<stem>.<hash>.npy``; an edited source file therefore misses. Writes go
    through :func:`utils.atomic.atomic_open`, so concurrent DataLoader workers or runs never
    see half-written arrays. Unreadable entries are rebuilt.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"{self.root}: cannot create cache folder ({e.strerror})") from None
        self._warned = False
        self._resolved: dict[Path, str] = {}  # source -> its absolute path
        self._layouts: dict[Path, tuple[np.dtype, tuple[int, ...], int]] = {}  # entry -> header
        # Writes killed outright leave temporary files; an hour's margin spares live writers.
        # Once per folder and process: a large cache is many files to list.
        if self.root.resolve() not in _SWEPT:
            _SWEPT.add(self.root.resolve())
            for sub in self.root.iterdir():
                if sub.is_dir():
                    remove_leftovers(sub, older_than_s=3600)

    def path(self, source: Path, tag: str) -> Path:
        st = source.stat()  # every time: an edited source must miss
        resolved = self._resolved.get(source)
        if resolved is None:
            resolved = self._resolved[source] = str(source.resolve())
        key = f"{resolved}|{st.st_size}|{st.st_mtime_ns}|{tag}|v{CACHE_VERSION}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:24]
        return self.root / digest[:2] / f"{source.stem}.{digest}.npy"

    def load(self, source: Path, tag: str) -> np.ndarray | None:
        path = self.path(source, tag)
        try:
            # An entry's .npy header is parsed once per process (np.load parses it with
            # ast.literal_eval on every read: 3x the time of reading a 224 px array).
            layout = self._layouts.get(path) or self._read_layout(path)
            dtype, shape, offset = layout
            count = math.prod(shape)
            arr = np.fromfile(path, dtype=dtype, count=count, offset=offset)
            if arr.size != count:
                raise ValueError(f"{path}: truncated")
            self._layouts[path] = layout
            return arr.reshape(shape)
        except (OSError, ValueError, EOFError):
            self._layouts.pop(path, None)
            return None  # missing or damaged: the caller rebuilds and overwrites it

    @staticmethod
    def _read_layout(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
        """(dtype, shape, data offset) of a C-ordered .npy file without objects."""
        fmt = np.lib.format
        with open(path, "rb") as f:
            major, _ = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
            if fortran or dtype.hasobject:
                raise ValueError(f"{path}: not a C-ordered plain array")
            return dtype, tuple(shape), f.tell()

    def save(self, source: Path, tag: str, arr: np.ndarray) -> None:
        try:
            with atomic_open(self.path(source, tag), "wb") as f:
                np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
        except OSError as e:
            if not self._warned:  # a full or read-only disk must not stop training
                warnings.warn(
                    f"{self.root}: cannot write cache ({e}); continuing uncached", stacklevel=2
                )
                self._warned = True


def _level_index(magnification: float) -> int:
    """Half-octave level j (factor base * 2**(j/2)) from which the warp magnifies by [1, sqrt2]."""
    t = 2.0 * math.log2(magnification)
    if magnification >= 1.0:
        return max(0, math.ceil(t - 1.0 - 1e-9))
    return math.floor(t + 1e-9)


class GraspDataset(Dataset):
    """Base dataset of grasp-labelled images; subclasses fill :attr:`samples`.

    Args:
        output_size: side S of the square network input and targets, pixels.
        use_depth, use_rgb: input channels; both -> 4 channels, depth first.
        random_rotate: rotate each view about the crop centre: random quarter turns
            (``rotation="quarter"``, GG-CNN: 0, pi/2, pi, 3pi/2; exact, no border fill) or a
            uniform angle in [-pi, pi) (``rotation="continuous"``; corners are filled by
            mirroring the image, and mirrored content carries no labels).
        random_zoom: view ``zoom * crop_size`` source pixels, zoom uniform in ``zoom_range``
            (zoom < 1 magnifies; GG-CNN uses (0.5, 1.0)).
        width_scale: opening (pixels) that maps to 1.0 in the width target.
        cache_dir: folder for decoded arrays (:class:`ArrayCache`); None: no disk cache.
        include_mask: add the object mask (warped with nearest neighbour) when a sample has one.
        depth_norm: ``"mean"`` or ``"table"`` (:func:`utils.depth.normalise_depth`).
        depth_aug: randomise each training item's depth (:func:`utils.depth.randomise_depth`;
            :meth:`item` only: :meth:`view` and evaluation stay deterministic).

    Random draws come from the generator given to :meth:`item` (the training loaders seed one
    per item, see :mod:`utils.data.loader`), or torch's global RNG for ``dataset[idx]``. Items are dicts; batch them with :func:`collate_grasp_batch`.
    """

    def __init__(
        self,
        output_size: int = 300,
        use_depth: bool = True,
        use_rgb: bool = False,
        random_rotate: bool = False,
        random_zoom: bool = False,
        zoom_range: Sequence[float] = (0.5, 1.0),
        rotation: str = "quarter",
        width_scale: float = WIDTH_SCALE,
        cache_dir: str | Path | None = None,
        include_mask: bool = False,
        depth_norm: str = "mean",
        depth_aug: bool = False,
    ) -> None:
        if not use_depth and not use_rgb:
            raise ValueError("use_depth and use_rgb are both False: at least one input is needed")
        if isinstance(output_size, bool) or int(output_size) != output_size or output_size < 1:
            raise ValueError(f"output_size must be a positive integer, got {output_size!r}")
        zr = tuple(float(z) for z in zoom_range)
        if len(zr) != 2 or not 0 < zr[0] <= zr[1]:
            raise ValueError(
                f"zoom_range must be (low, high) with 0 < low <= high, got {zoom_range}"
            )
        if rotation not in ("quarter", "continuous"):
            raise ValueError(f"rotation must be 'quarter' or 'continuous', got {rotation!r}")
        if depth_norm not in DEPTH_NORMS:
            raise ValueError(f"depth_norm must be one of {DEPTH_NORMS}, got {depth_norm!r}")
        if not width_scale > 0:
            raise ValueError(f"width_scale must be > 0, got {width_scale}")
        self.output_size = int(output_size)
        self.use_depth = bool(use_depth)
        self.use_rgb = bool(use_rgb)
        self.random_rotate = bool(random_rotate)
        self.random_zoom = bool(random_zoom)
        self.zoom_range = zr
        self.rotation = rotation
        self.width_scale = float(width_scale)
        self.include_mask = bool(include_mask)
        self.depth_norm = depth_norm
        self.depth_aug = bool(depth_aug)
        self.cache = ArrayCache(cache_dir) if cache_dir is not None else None
        self.samples: list[Sample] = []
        self._shapes: dict[int, tuple[int, int]] = {}
        self._grasp_memo: dict[int, np.ndarray] = {}
        self._memo_bytes = 0
        self._runs_memo: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._image_memo: dict[tuple[int, str, tuple[int, int]], np.ndarray] = {}
        self._image_memo_bytes = 0

    #: Parsed rectangles kept in memory, per process (each DataLoader worker has its own), at
    #: most this many bytes of corners; beyond it they come from the disk cache.
    GRASP_MEMO_BYTES = 64 * 2**20
    #: Decoded, resized images (:meth:`_level`) kept in memory as well, per process, at most
    #: this many bytes (the default synthetic set's 600 samples take about 340 MB); beyond it
    #: every read goes to the disk cache (a stat, a hash and a file read: about 0.1 ms of a
    #: 1 ms training item) or, without one, decodes again.
    IMAGE_MEMO_BYTES = 512 * 2**20

    # --- subclass hooks ------------------------------------------------------------------------
    def load_grasps(self, idx: int) -> GraspRectangles:
        """Ground-truth rectangles of sample ``idx`` in the SOURCE frame, (row, col) pixels."""
        raise NotImplementedError

    def crop_size(self, idx: int) -> float:
        """Side of the square source region shown at zoom 1, source pixels.

        Default: the whole frame (the largest centred square; the full frame when square).
        """
        return float(min(self.source_size(idx)))

    def crop_center(self, idx: int, grasps: GraspRectangles) -> tuple[float, float]:
        """Centre (row, col) of the crop in source pixels (default: the frame centre).

        ``grasps`` are the sample's source-frame rectangles, for label-centred crops.
        """
        rows, cols = self.source_size(idx)
        return (rows - 1) / 2.0, (cols - 1) / 2.0

    def _set_samples(self, samples: list[Sample], root: Path, pattern: str) -> None:
        """Install ``samples`` after checking that the files the inputs need exist."""
        if not samples:
            raise ValueError(f"{root}: no labelled samples found (expected files {pattern})")
        for s in samples:
            for kind, used in (("depth", self.use_depth), ("rgb", self.use_rgb)):
                path = getattr(s, kind)
                if used and (path is None or not path.is_file()):
                    raise ValueError(
                        f"{path if path is not None else s.grasps}: {kind} image of sample "
                        f"{s.sample_id} not found"
                    )
        self.samples = list(samples)
        self._shapes = {}
        self._grasp_memo, self._memo_bytes, self._runs_memo = {}, 0, {}
        self._image_memo, self._image_memo_bytes = {}, 0

    def grasps(self, idx: int) -> GraspRectangles:
        """:meth:`load_grasps`, parsed once: kept in memory (:attr:`GRASP_MEMO_BYTES`) and, with
        a cache folder, stored beside the decoded images (keyed on the grasp file's path, size
        and mtime, so an edited file is parsed again; a damaged entry is rebuilt)."""
        idx = self._check_index(idx)
        pts = self._grasp_memo.get(idx)
        if pts is None:
            source = self.samples[idx].grasps
            cache = self.cache if source is not None else None
            if cache is not None:
                pts = cache.load(source, "grasps")
                if pts is not None and not (
                    pts.dtype == np.float64 and pts.ndim == 3 and pts.shape[1:] == (4, 2)
                ):
                    pts = None
            if pts is None:
                pts = self.load_grasps(idx).points
                self._check_grasps_in_frame(idx, pts)
                if cache is not None:
                    cache.save(source, "grasps", pts)
            if self._memo_bytes + pts.nbytes <= self.GRASP_MEMO_BYTES:
                self._grasp_memo[idx] = pts
                self._memo_bytes += pts.nbytes
        return GraspRectangles(pts.copy())

    def _check_grasps_in_frame(self, idx: int, pts: np.ndarray) -> None:
        """Grasps whose centres all lie outside the image mean an image of the wrong size."""
        if not len(pts):
            return
        rows, cols = self.source_size(idx)
        c = pts.mean(axis=1)
        inside = (c[:, 0] >= -0.5) & (c[:, 0] < rows) & (c[:, 1] >= -0.5) & (c[:, 1] < cols)
        if not inside.any():
            s = self.samples[idx]
            image = s.depth if self.use_depth else s.rgb
            raise ValueError(
                f"{image}: image is {rows}x{cols}, but every grasp of {s.grasps.name} lies "
                "outside it (an image of the wrong size?)"
            )

    # --- ids and geometry ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def _check_index(self, idx: int) -> int:
        i = int(idx)
        if not -len(self.samples) <= i < len(self.samples):
            raise IndexError(f"sample index {idx} out of range for {len(self.samples)} samples")
        return i % len(self.samples)

    def sample_id(self, idx: int) -> str:
        """Sample id, e.g. ``0_1d7830c5...`` (Jacquard) or ``pcd0100`` (Cornell)."""
        return self.samples[self._check_index(idx)].sample_id

    def object_id(self, idx: int) -> str:
        """Object id (the group for object-wise splits)."""
        return self.samples[self._check_index(idx)].object_id

    @property
    def object_ids(self) -> list[str]:
        return [s.object_id for s in self.samples]

    def source_size(self, idx: int) -> tuple[int, int]:
        """(rows, cols) of the sample's source frame, from the first input image's header."""
        idx = self._check_index(idx)
        if idx not in self._shapes:
            s = self.samples[idx]
            path = s.depth if self.use_depth else s.rgb
            self._shapes[idx] = image_shape(path)
        return self._shapes[idx]

    def _matrix(self, idx: int, rot: float, zoom: float, grasps: GraspRectangles) -> np.ndarray:
        return crop_transform(
            self.crop_center(idx, grasps), self.crop_size(idx), self.output_size, rot, zoom
        )

    def warp_matrix(self, idx: int, rot: float = 0.0, zoom: float = 1.0) -> np.ndarray:
        """2 x 3 (row, col) map from SOURCE pixels to OUTPUT pixels of the view (rot, zoom)."""
        idx = self._check_index(idx)
        return self._matrix(idx, rot, zoom, self.grasps(idx))

    def output_to_source_matrix(self, idx: int) -> np.ndarray:
        """2 x 3 (row, col) map from OUTPUT pixels of the unaugmented view back to SOURCE pixels.

        Use it with :meth:`GraspRectangles.affine` to write predictions in the source frame
        (e.g. Jacquard's 1024 x 1024). Lengths scale by the same factor.
        """
        return invert_affine(self.warp_matrix(idx))

    # --- arrays --------------------------------------------------------------------------------
    def _source_path(self, idx: int, kind: str) -> Path:
        path = getattr(self.samples[idx], kind)
        if path is None:
            raise ValueError(f"sample {self.samples[idx].sample_id} has no {kind} image")
        return path

    def _decode(self, idx: int, kind: str) -> np.ndarray:
        path = self._source_path(idx, kind)
        if kind == "depth":
            # Inpaint at full resolution: invalid pixels must not leak into area averages.
            try:
                arr = inpaint_depth(load_depth(path), INPAINT_METHOD, INPAINT_RADIUS)
            except ValueError as e:
                if str(path) in str(e):
                    raise
                raise ValueError(f"{path}: {e}") from None
        elif kind == "rgb":
            arr = load_rgb(path)
        else:
            arr = load_mask(path)
        expected = self.source_size(idx)
        if arr.shape[:2] != expected:
            raise ValueError(
                f"{path}: image is {arr.shape[0]}x{arr.shape[1]}, expected {expected[0]}x"
                f"{expected[1]} like the sample's other images"
            )
        return arr

    def _level_shape(self, idx: int, level: int) -> tuple[int, int]:
        """Shape of level ``level``: the source shrunk by (S / crop_size) * 2**(level / 2)."""
        rows, cols = self.source_size(idx)
        factor = self.output_size / self.crop_size(idx) * 2.0 ** (level / 2.0)
        if factor >= 1.0 - 1e-9:
            return rows, cols  # never enlarge the source: warp from it directly
        return max(1, round(rows * factor)), max(1, round(cols * factor))

    def _tag(self, kind: str, shape: tuple[int, int]) -> str:
        extra = f"|inpaint={INPAINT_METHOD},{INPAINT_RADIUS}" if kind == "depth" else ""
        return f"{kind}|{shape[0]}x{shape[1]}|area{extra}"

    def _level(self, idx: int, kind: str, shape: tuple[int, int]) -> np.ndarray:
        """The sample's ``kind`` image shrunk (INTER_AREA) to ``shape``, via the in-memory memo
        (:attr:`IMAGE_MEMO_BYTES`; read-only arrays) and the disk cache."""
        key = (idx, kind, shape)
        arr = self._image_memo.get(key)
        if arr is None:
            arr = self._level_uncached(idx, kind, shape)
            if self._image_memo_bytes + arr.nbytes <= self.IMAGE_MEMO_BYTES:
                arr.flags.writeable = False  # shared by every later view of the sample
                self._image_memo[key] = arr
                self._image_memo_bytes += arr.nbytes
        return arr

    def _level_uncached(self, idx: int, kind: str, shape: tuple[int, int]) -> np.ndarray:
        """:meth:`_level` from the disk cache, or decoded (and cached) on a miss."""
        path = self._source_path(idx, kind)
        if self.cache is not None:
            arr = self.cache.load(path, self._tag(kind, shape))
            if arr is not None:
                return arr.astype(bool) if kind == "mask" else arr
        full = self._decode(idx, kind)
        if self.cache is None:
            return resize_image(full, shape)
        # One decode fills every level this dataset's augmentation will ask for.
        result = None
        for s in dict.fromkeys([shape, *self._expected_levels(idx)]):
            arr = resize_image(full, s)
            stored = arr.astype(np.uint8) if kind == "mask" else arr
            self.cache.save(path, self._tag(kind, s), stored)
            if s == shape:
                result = arr
        return result

    def _expected_levels(self, idx: int) -> list[tuple[int, int]]:
        lo, hi = self.zoom_range if self.random_zoom else (1.0, 1.0)
        j0, j1 = _level_index(1.0 / hi), _level_index(1.0 / lo)
        return [self._level_shape(idx, j) for j in range(j0, j1 + 1)]

    def _warp(self, idx: int, kind: str, matrix: np.ndarray) -> np.ndarray:
        # Magnification relative to the unzoomed view (1 / zoom for the views built here).
        magnification = affine_scale(matrix) * self.crop_size(idx) / self.output_size
        shape = self._level_shape(idx, _level_index(magnification))
        level = self._level(idx, kind, shape)
        src_shape = self.source_size(idx)
        m = matrix
        if shape != src_shape:
            m = compose_affine(matrix, invert_affine(resize_transform(src_shape, shape)))
        if kind == "mask":
            return warp_image(level, m, self.output_size, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT, 0)
        return warp_image(level, m, self.output_size, cv2.INTER_LINEAR, IMAGE_BORDER)

    def get_gt(self, idx: int, rot: float = 0.0, zoom: float = 1.0) -> GraspRectangles:
        """Ground-truth rectangles in the OUTPUT frame of the view (rot, zoom), pixels."""
        idx = self._check_index(idx)
        grasps = self.grasps(idx)
        return grasps.affine(self._matrix(idx, rot, zoom, grasps))

    def get_depth(self, idx: int, rot: float = 0.0, zoom: float = 1.0) -> np.ndarray:
        """Inpainted depth of the view, float32 S x S, source units (metres), not normalised."""
        idx = self._check_index(idx)
        return self._warp(idx, "depth", self.warp_matrix(idx, rot, zoom))

    def get_rgb(self, idx: int, rot: float = 0.0, zoom: float = 1.0) -> np.ndarray:
        """RGB of the view, uint8 S x S x 3, not normalised."""
        idx = self._check_index(idx)
        return self._warp(idx, "rgb", self.warp_matrix(idx, rot, zoom))

    def get_mask(self, idx: int, rot: float = 0.0, zoom: float = 1.0) -> np.ndarray | None:
        """Object mask of the view, bool S x S (nearest neighbour), or None if there is none."""
        idx = self._check_index(idx)
        if self.samples[idx].mask is None:
            return None
        return self._warp(idx, "mask", self.warp_matrix(idx, rot, zoom))

    # --- items -----------------------------------------------------------------------------------
    def _random_view(self, generator: torch.Generator | None = None) -> tuple[float, float]:
        """(rotation in radians, zoom) for one training item, drawn from ``generator``
        (torch's global RNG when None)."""
        rot, zoom = 0.0, 1.0
        if self.random_rotate:
            if self.rotation == "quarter":
                rot = int(torch.randint(0, 4, (1,), generator=generator)) * (math.pi / 2)
            else:
                u = float(torch.rand(1, dtype=torch.float64, generator=generator))
                rot = (u * 2.0 - 1.0) * math.pi
        if self.random_zoom:
            lo, hi = self.zoom_range
            zoom = lo + (hi - lo) * float(torch.rand(1, dtype=torch.float64, generator=generator))
        return rot, zoom

    def _depth_input(self, idx: int, matrix: np.ndarray, aug_seed: int | None = None) -> np.ndarray:
        """The normalised (and with ``aug_seed``, randomised) depth channel, 1 x S x S."""
        x = normalise_depth(self._warp(idx, "depth", matrix), self.depth_norm)
        if aug_seed is not None:
            x = randomise_depth(x, np.random.default_rng(aug_seed))
        return x[None]

    def _input(self, idx: int, matrix: np.ndarray, aug_seed: int | None = None) -> torch.Tensor:
        """The network input of the view ``matrix``: C x S x S float32, depth first."""
        parts = []
        if self.use_depth:
            parts.append(self._depth_input(idx, matrix, aug_seed))
        if self.use_rgb:
            parts.append(normalise_rgb(self._warp(idx, "rgb", matrix)))
        return torch.from_numpy(np.concatenate(parts, axis=0))

    def view(
        self, idx: int, rot: float = 0.0, zoom: float = 1.0, aug_seed: int | None = None
    ) -> dict[str, Any]:
        """The item of sample ``idx`` for a given rotation (radians, CCW) and zoom; with
        ``aug_seed``, its depth randomised by that seed."""
        return self.views([(idx, rot, zoom, aug_seed)])[0]

    def views(self, specs: Sequence[tuple[int, float, float, int | None]]) -> list[dict[str, Any]]:
        """:meth:`view` of each ``(idx, rot, zoom, aug_seed)``, the same items, with the
        targets of all of them drawn in one pass (:func:`utils.grasp.stacked_targets`)."""
        s = self.output_size
        items, gts, runs = [], [], []
        for idx, rot, zoom, aug_seed in specs:
            idx = self._check_index(idx)
            grasps = self.grasps(idx)
            matrix = self._matrix(idx, rot, zoom, grasps)
            x = self._input(idx, matrix, aug_seed)
            gt = grasps.affine(matrix)
            sample_runs = self._runs_memo.get(idx)
            if sample_runs is None:  # a property of the sample's rectangles, in every view
                sample_runs = grasps.jaw_size_runs()
                if idx in self._grasp_memo:  # kept as long as the rectangles they describe
                    self._runs_memo[idx] = sample_runs
            item: dict[str, Any] = {
                "x": x,
                "y": None,
                "gt": gt.points.astype(np.float32),
                "index": idx,
                "rot": float(rot),
                "zoom": float(zoom),
            }
            if self.include_mask and self.samples[idx].mask is not None:
                mask = self._warp(idx, "mask", matrix)
                item["mask"] = torch.from_numpy(mask.astype(np.float32)[None])
            items.append(item)
            gts.append(gt)
            runs.append(sample_runs)
        ys = stacked_targets(gts, (s, s), self.width_scale, runs)
        for item, y in zip(items, ys, strict=True):
            item["y"] = torch.from_numpy(y)
        return items

    def __getitem__(self, idx: int) -> dict[str, Any]:
        """A training/evaluation item: ``x`` (C x S x S float32, depth first, normalised),
        ``y`` (4 x S x S: quality, cos 2a, sin 2a, opening / width_scale), ``gt`` (N x 4 x 2
        float32 output-frame corners), ``index``, ``rot``, ``zoom`` and optionally ``mask``."""
        return self.item(idx)

    def item(self, idx: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Like ``dataset[idx]``, with the augmentation drawn from ``generator``."""
        return self.views([self._random_spec(idx, generator)])[0]

    def batch_items(self, keys: Sequence[tuple[int, torch.Generator]]) -> list[dict[str, Any]]:
        """``[self.item(idx, generator) for idx, generator in keys]``, the same items, made
        together (:meth:`views`): what the loaders call for a batch."""
        cls = type(self)
        if cls.item is not GraspDataset.item or cls.view is not GraspDataset.view:
            return [self.item(idx, generator) for idx, generator in keys]  # a subclass's own
        return self.views([self._random_spec(idx, generator) for idx, generator in keys])

    def _random_spec(
        self, idx: int, generator: torch.Generator | None
    ) -> tuple[int, float, float, int | None]:
        """(idx, rotation, zoom, depth augmentation seed) of one training item, drawn from
        ``generator`` (torch's global RNG when None) in a fixed order."""
        rot, zoom = self._random_view(generator)
        seed = None
        if self.depth_aug and self.use_depth:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return idx, rot, zoom, seed

    def unlabelled_view(self, idx: int, rot: float = 0.0, zoom: float = 1.0) -> dict[str, Any]:
        """The input of sample ``idx`` alone (``x``, ``index``, ``rot``, ``zoom``), made exactly
        as in :meth:`view` but without ever opening the sample's grasp file (label-centred
        crops fall back to the frame centre)."""
        idx = self._check_index(idx)
        matrix = crop_transform(
            self.crop_center(idx, GraspRectangles()),
            self.crop_size(idx),
            self.output_size,
            rot,
            zoom,
        )
        return {
            "x": self._input(idx, matrix),
            "index": idx,
            "rot": float(rot),
            "zoom": float(zoom),
        }


def collate_grasp_batch(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items of :class:`GraspDataset`: tensors are stacked, ``index`` becomes an int64
    tensor, ``rot``/``zoom`` float64 tensors, and ``gt`` stays a LIST of N_i x 4 x 2 arrays
    (images have different numbers of rectangles). A key missing from some items is kept as a
    list with None there."""
    if not batch:
        raise ValueError("collate_grasp_batch: empty batch")
    keys = list(dict.fromkeys(k for item in batch for k in item))
    out: dict[str, Any] = {}
    for k in keys:
        vals = [item.get(k) for item in batch]
        if k == "gt" or any(v is None for v in vals):
            out[k] = vals
        elif all(isinstance(v, torch.Tensor) for v in vals):
            out[k] = torch.stack(vals)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            out[k] = torch.tensor([int(v) for v in vals], dtype=torch.int64)
        elif all(isinstance(v, (int, float, np.floating, np.integer)) for v in vals):
            out[k] = torch.tensor([float(v) for v in vals], dtype=torch.float64)
        else:
            out[k] = vals
    return out
