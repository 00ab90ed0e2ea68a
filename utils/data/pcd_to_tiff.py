"""Convert Cornell point clouds ``pcdXXXX.txt`` into depth images ``pcdXXXXd.tiff``.

Usage::

    python -m utils.data.pcd_to_tiff DATASET_ROOT          # every pcdXXXX.txt below it
    python -m utils.data.pcd_to_tiff a/pcd0100.txt b/...   # given files

A Cornell cloud is PCD v.7 ASCII: header lines up to ``DATA ascii``, then one line
``x y z rgb index`` per point, where ``index = row * 640 + col`` in the 480 x 640 image. Each
point's pixel gets its Euclidean distance ``sqrt(x^2 + y^2 + z^2) / 1000``, as in GG-CNN's
conversion (``DepthImage.from_pcd``), whose TIFFs this reproduces. The cloud's coordinates are
nominally millimetres, so the values are nominally metres (distance from the sensor, not the
z-depth along the optical axis); the dataset documents no calibration, and the real samples
range from about 0.03 to 2.03, so treat them as relative distances. Pixels with no point are 0
and are inpainted by the loader (:func:`utils.image.inpaint_depth`). Output: float32
480 x 640 TIFF (uncompressed) beside the input.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Cornell image size (rows, cols).
CORNELL_SHAPE = (480, 640)
_PCD_NAME = re.compile(r"^pcd\d+\.txt$")


def read_pcd_depth(path: str | Path, shape: tuple[int, int] = CORNELL_SHAPE) -> np.ndarray:
    """Depth image (float32 ``shape``) of an ASCII PCD file: per-point distance / 1000, 0 where
    no point falls. Raises ValueError naming the file on a malformed header or line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read point cloud ({e.strerror})") from None
    lines = text.splitlines(keepends=True)
    fields: list[str] | None = None
    data_start = None
    for i, line in enumerate(lines):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FIELDS":
            fields = [w.lower() for w in words[1:]]
        elif words[0].upper() == "DATA":
            if len(words) < 2 or words[1].lower() != "ascii":
                raise ValueError(f"{path}:{i + 1}: expected 'DATA ascii', got {line.strip()!r}")
            data_start = i + 1
            break
    if data_start is None:
        raise ValueError(f"{path}: no 'DATA ascii' line (expected a PCD v.7 ASCII point cloud)")
    fields = fields or ["x", "y", "z", "rgb", "index"]
    missing = [f for f in ("x", "y", "z", "index") if f not in fields]
    if missing:
        raise ValueError(f"{path}: FIELDS lacks {missing} (expected 'x y z rgb index')")
    rows, cols = shape
    img = np.zeros(shape, dtype=np.float32)
    body = "".join(lines[data_start:])
    if not body.strip():
        return img
    try:
        data = np.loadtxt(io.StringIO(body), dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: malformed point line ({e})") from None
    if data.shape[1] != len(fields):
        raise ValueError(
            f"{path}: point lines have {data.shape[1]} values, expected {len(fields)} ({fields})"
        )
    xyz = data[:, [fields.index("x"), fields.index("y"), fields.index("z")]]
    index = data[:, fields.index("index")]
    if np.any(index != np.round(index)) or np.any(index < 0) or np.any(index >= rows * cols):
        raise ValueError(
            f"{path}: point index outside 0..{rows * cols - 1} (a {rows}x{cols} image)"
        )
    ok = np.isfinite(xyz).all(axis=1)  # NaN points are "no measurement"
    idx = index[ok].astype(np.int64)
    img.reshape(-1)[idx] = (np.linalg.norm(xyz[ok], axis=1) / 1000.0).astype(np.float32)
    return img


def tiff_path_for(pcd_path: str | Path) -> Path:
    """``.../pcd0100.txt`` -> ``.../pcd0100d.tiff``."""
    p = Path(pcd_path)
    return p.with_name(f"{p.stem}d.tiff")


def convert(pcd_path: str | Path, overwrite: bool = False) -> Path | None:
    """Write the TIFF beside ``pcd_path``; returns its path, or None if it existed already."""
    import tifffile

    out = tiff_path_for(pcd_path)
    if out.exists() and not overwrite:
        return None
    depth = read_pcd_depth(pcd_path)
    tmp = out.with_name(f".{out.name}.tmp")
    tifffile.imwrite(tmp, depth)
    tmp.replace(out)
    return out


def find_point_clouds(paths: Sequence[str | Path]) -> list[Path]:
    """``pcdXXXX.txt`` files named or found (recursively) under the given folders."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("pcd*.txt") if _PCD_NAME.match(q.name)))
        elif p.is_file():
            found.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.data.pcd_to_tiff",
        description="Convert Cornell pcdXXXX.txt point clouds to pcdXXXXd.tiff depth images.",
    )
    parser.add_argument("paths", nargs="+", help="dataset folders and/or pcdXXXX.txt files")
    parser.add_argument("--overwrite", action="store_true", help="redo existing TIFFs")
    args = parser.parse_args(argv)
    try:
        files = find_point_clouds(args.paths)
        if not files:
            raise ValueError(f"no pcdXXXX.txt files under {' '.join(args.paths)}")
        from tqdm import tqdm

        written = skipped = 0
        for f in tqdm(files, desc="pcd -> tiff", disable=len(files) < 10):
            if convert(f, overwrite=args.overwrite) is None:
                skipped += 1
            else:
                written += 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {written} TIFF(s), skipped {skipped} existing (use --overwrite to redo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
