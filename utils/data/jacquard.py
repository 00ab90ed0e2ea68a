"""Jacquard dataset: ``root/<object>/<view>_<object>_{grasps.txt,perfect_depth.tiff,...}``.

The whole frame (1024 x 1024 for the real dataset; any square size for generated data, read
from the image header) is resized to ``output_size``. Grasp files are in the frame's pixel
coordinates, which we take in the project convention (pixel centres at integer coordinates):
the resize maps them with the same matrix as the image, p' = (p + 0.5) * S / F - 0.5, i.e. the
plain scale S / F of :meth:`GraspRectangles.load_from_jacquard_file` plus an offset of
(S / F - 1) / 2 pixels (-0.35 px at 1024 -> 300).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.data.base import GraspDataset, Sample
from utils.grasp import GraspRectangles

DEPTH_TYPES = ("perfect", "stereo")
_PATTERN = "*/*_grasps.txt"


class JacquardDataset(GraspDataset):
    """Jacquard-format dataset.

    Args:
        root: dataset folder with one sub-folder per object (the object id).
        depth_type: ``"perfect"`` (rendered depth, default) or ``"stereo"`` (simulated stereo;
            its -1 pixels are inpainted).
        **kwargs: :class:`GraspDataset` options (output_size, use_rgb, random_rotate, ...).

    Sample ids are ``<view>_<object>``; ``*_mask.png`` is attached when present.
    """

    def __init__(self, root: str | Path, depth_type: str = "perfect", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if depth_type not in DEPTH_TYPES:
            raise ValueError(f"depth_type must be one of {DEPTH_TYPES}, got {depth_type!r}")
        self.root = Path(root)
        self.depth_type = depth_type
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: Jacquard root folder not found")
        samples = []
        for grasp_file in sorted(self.root.glob(_PATTERN)):
            sid = grasp_file.name[: -len("_grasps.txt")]
            folder = grasp_file.parent
            mask = folder / f"{sid}_mask.png"
            samples.append(
                Sample(
                    grasps=grasp_file,
                    sample_id=sid,
                    object_id=folder.name,
                    depth=folder / f"{sid}_{depth_type}_depth.tiff",
                    rgb=folder / f"{sid}_RGB.png",
                    mask=mask if mask.is_file() else None,
                )
            )
        self._set_samples(samples, self.root, f"{self.root / _PATTERN}")

    def load_grasps(self, idx: int) -> GraspRectangles:
        """Rectangles in the source frame's pixels (the file's own coordinates)."""
        return GraspRectangles.load_from_jacquard_file(self.samples[self._check_index(idx)].grasps)
