"""Cornell grasping dataset: ``root/<NN>/pcdXXXX{cpos.txt,d.tiff,r.png}`` (480 x 640 frames).

Depth images ``pcdXXXXd.tiff`` are made from the point clouds ``pcdXXXX.txt`` with
``python -m utils.data.pcd_to_tiff ROOT`` (see :mod:`utils.data.pcd_to_tiff`).

Crop placement (``crop=``):

- ``"center"`` (default): a fixed ``crop_size`` square (400 px) centred on the image centre,
  resized to ``output_size``. It uses no labels, so it is the same at test time as on a robot.
- ``"labels"``: GG-CNN's crop placement, centred on the mean corner of the ground-truth
  rectangles (clamped to stay inside the image). It peeks at the labels to place the view,
  which makes evaluation easier than deployment; kept to reproduce published GG-CNN numbers,
  whose square is 300 source pixels at a 300 px input (``crop_size=300``, no resize).

Object ids: Cornell has 885 images of about 244 objects, each photographed in a few
consecutive images. With ``object_map=FILE`` (lines ``pcdXXXX objectid``; the image may also
be written as its number, e.g. ``100 17``; more columns, blank lines and ``#`` comments are
ignored) the ids come from that file; ``<root>/object_map.txt`` is used when no file is
named. Without one, images are grouped in blocks of
:data:`IMAGES_PER_PSEUDO_OBJECT` consecutive image numbers (``pcd0100..pcd0103`` ->
``block0025``); object-wise splits need the map (``--split-by object`` without one is an
error), ``--split-by image`` works either way.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from utils.data.base import GraspDataset, Sample
from utils.grasp import GraspRectangles

CROP_MODES = ("center", "labels")
#: Consecutive image numbers grouped into one pseudo-object when no object map is given.
IMAGES_PER_PSEUDO_OBJECT = 4
_PATTERN = "*/pcd*cpos.txt"
_ID = re.compile(r"^pcd(\d+)cpos\.txt$")


#: Read from the dataset root when no object map is named.
DEFAULT_OBJECT_MAP = "object_map.txt"


def read_object_map(path: str | Path) -> dict[str, str]:
    """Read ``pcdXXXX objectid`` lines into {sample id: object id} (see the module doc)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ValueError(f"{path}: cannot read Cornell object map ({e.strerror})") from None
    mapping: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        key = fields[0]
        if len(fields) < 2 or not re.fullmatch(r"(pcd)?\d+", key):
            raise ValueError(
                f"{path}:{lineno}: expected 'pcdXXXX objectid' (image, object), got {line!r}"
            )
        num = int(key[3:] if key.startswith("pcd") else key)
        mapping[f"pcd{num:04d}"] = fields[1]
    return mapping


class CornellDataset(GraspDataset):
    """Cornell-format dataset.

    Args:
        root: dataset folder with numbered sub-folders holding ``pcdXXXXcpos.txt`` files.
        crop: ``"center"`` (default) or ``"labels"`` (see the module doc).
        crop_size: side of the square source crop, pixels (default 400), resized to
            ``output_size``.
        object_map: optional image -> object file (see the module doc).
        **kwargs: :class:`GraspDataset` options.

    Only images with a ``cpos`` file are samples; ``cpos`` files with no image beside them are
    skipped with a warning.
    """

    def __init__(
        self,
        root: str | Path,
        crop: str = "center",
        crop_size: float = 400,
        object_map: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
        if not crop_size > 0:
            raise ValueError(f"crop_size must be > 0 pixels, got {crop_size}")
        self.root = Path(root)
        self.crop = crop
        self._crop_size = float(crop_size)
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: Cornell root folder not found")
        if object_map is None and (self.root / DEFAULT_OBJECT_MAP).is_file():
            object_map = self.root / DEFAULT_OBJECT_MAP  # e.g. written by the synthetic generator
        objects = read_object_map(object_map) if object_map is not None else None
        samples, skipped = [], []
        for grasp_file in sorted(self.root.glob(_PATTERN)):
            m = _ID.match(grasp_file.name)
            if m is None:
                continue
            sid = f"pcd{m.group(1)}"
            depth = grasp_file.with_name(f"{sid}d.tiff")
            rgb = grasp_file.with_name(f"{sid}r.png")
            if not depth.is_file() and not rgb.is_file():
                skipped.append(grasp_file)  # a label file alone is not a sample
                continue
            if self.use_depth and not depth.is_file():
                raise ValueError(
                    f"{depth}: depth image not found; convert the point clouds first with "
                    f"'python -m utils.data.pcd_to_tiff {self.root}'"
                )
            if objects is not None:
                if sid not in objects:
                    raise ValueError(f"{object_map}: no object id for image {sid}")
                obj = objects[sid]
            else:
                obj = f"block{int(m.group(1)) // IMAGES_PER_PSEUDO_OBJECT:04d}"
            samples.append(
                Sample(grasps=grasp_file, sample_id=sid, object_id=obj, depth=depth, rgb=rgb)
            )
        if skipped:
            warnings.warn(
                f"{self.root}: skipped {len(skipped)} grasp file(s) with no image beside them "
                f"(e.g. {skipped[0]})",
                stacklevel=2,
            )
        self._set_samples(samples, self.root, f"{self.root / _PATTERN} with pcdXXXXd.tiff/r.png")
        #: Whether object ids are real (an object map) or blocks of consecutive images.
        self.has_object_map = objects is not None

    def load_grasps(self, idx: int) -> GraspRectangles:
        """Rectangles in the 480 x 640 source frame (rectangles with NaN corners dropped)."""
        return GraspRectangles.load_from_cornell_file(self.samples[self._check_index(idx)].grasps)

    def crop_size(self, idx: int) -> float:
        return self._crop_size

    def crop_center(self, idx: int, grasps: GraspRectangles) -> tuple[float, float]:
        rows, cols = self.source_size(idx)
        if self.crop == "center" or len(grasps) == 0:
            return (rows - 1) / 2.0, (cols - 1) / 2.0
        # GG-CNN: centre on the labels, then shift the crop to stay inside the image.
        half = self._crop_size / 2.0
        r, c = grasps.center
        r = (
            min(max(r, half - 0.5), rows - half - 0.5)
            if self._crop_size <= rows
            else (rows - 1) / 2
        )
        c = (
            min(max(c, half - 0.5), cols - half - 0.5)
            if self._crop_size <= cols
            else (cols - 1) / 2
        )
        return float(r), float(c)
