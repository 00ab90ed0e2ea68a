"""Image I/O, depth inpainting, normalisation and the one affine warp used for every view.

Conventions (the same as :mod:`utils.grasp`):

- Coordinates are (row, col) in pixels, rows growing downward, with pixel centres at integer
  coordinates: pixel (r, c) covers [r - 0.5, r + 0.5) x [c - 0.5, c + 0.5). OpenCV resamples
  with the same convention, so a (row, col) affine matrix built here means the same thing to
  ``cv2.warpAffine`` (after swapping to (x, y)) and to :meth:`GraspRectangles.affine`.
- Angles are radians, counter-clockwise *on screen*.
- Depth is float32 in the file's unit (metres for Jacquard; see :mod:`utils.data.pcd_to_tiff`
  for Cornell).
- A 2 x 3 "matrix" maps a point p = (row, col) to ``m[:, :2] @ p + m[:, 2]``. The matrices
  built here map SOURCE coordinates to OUTPUT coordinates.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

# tifffile logs what is wrong with a damaged file before raising; the error we raise from it
# names the file and the reason in one line, so its log line would only repeat it.
logging.getLogger("tifffile").setLevel(logging.CRITICAL)

#: Border mode for depth and RGB warps: mirror the image with the edge pixel repeated
#: (``cba|abc``), as GG-CNN's skimage ``mode='symmetric'``. Mirrored content is plausible
#: depth, unlike a constant fill; masks instead use a constant 0 border (nothing outside).
IMAGE_BORDER: int = cv2.BORDER_REFLECT

_TIFF_SUFFIXES = (".tif", ".tiff")


# --- file I/O -----------------------------------------------------------------------------------
def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found (no such file)")


def _read_tiff(path: Path) -> np.ndarray | None:
    try:
        import tifffile

        return tifffile.imread(path)
    except Exception:
        # tifffile needs the optional ``imagecodecs`` package for LZW; OpenCV's libtiff
        # decodes LZW itself, so fall back to it.
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def load_depth(path: str | Path) -> np.ndarray:
    """Read a single-channel float TIFF depth image as float32 (H, W), in the file's unit.

    Jacquard ``*_perfect_depth.tiff`` / ``*_stereo_depth.tiff`` (LZW) hold metres, with -1 at
    invalid stereo pixels; Cornell ``pcdXXXXd.tiff`` hold the converted point distances. The
    values are returned unchanged (invalid pixels are not filled: see :func:`inpaint_depth`).
    Raises ValueError naming the file when it is missing, undecodable or not a float image.
    """
    path = Path(path)
    _require_file(path, "depth image")
    arr = _read_tiff(path)
    if arr is None:
        raise ValueError(f"{path}: cannot decode depth image (expected a float32 TIFF)")
    arr = np.asarray(arr)
    if arr.ndim > 2:
        arr = arr.squeeze()  # (H, W, 1) or (1, H, W) single-channel layouts
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel depth image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{path}: expected float depth (metres), got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


#: Depth frame files :func:`load_depth_frame` reads.
DEPTH_FRAME_SUFFIXES = (".tif", ".tiff", ".png", ".npy", ".exr")


def _read_exr(path: Path) -> np.ndarray:
    try:
        import OpenEXR  # optional: requirements-deploy.txt
    except ImportError:
        raise ValueError(
            f"{path}: reading .exr needs the OpenEXR package (pip install -r "
            "requirements-deploy.txt), or save the depth as a float TIFF or .npy"
        ) from None
    if not hasattr(OpenEXR, "File"):
        raise ValueError(
            f"{path}: reading .exr needs OpenEXR 3.3 or later (pip install -U OpenEXR)"
        )
    with OpenEXR.File(str(path)) as f:
        channels = {k: np.asarray(v.pixels) for k, v in f.channels().items()}
    # Depth channels by name (Blender writes "ViewLayer.Depth.Z"); else a single channel, or
    # a grey RGB whose channels are equal. Never guess among others (alpha is not depth).
    named = [k for k in channels if k in ("Z", "depth", "Depth") or k.endswith((".Z", ".depth"))]
    if len(named) == 1 or (named and len({k.rsplit(".", 1)[-1] for k in named}) == 1):
        return channels[named[0]]
    if len(channels) == 1:
        arr = next(iter(channels.values()))
        if arr.ndim == 3 and arr.shape[-1] in (3, 4) and np.allclose(arr[..., :3], arr[..., :1]):
            return arr[..., 0]
        return arr
    raise ValueError(
        f"{path}: which EXR channel is depth? expected one named Z or depth, found "
        f"{', '.join(sorted(channels))}"
    )


def load_depth_frame(path: str | Path, depth_scale: float | None = None) -> np.ndarray:
    """A camera's depth frame as float32 (H, W) metres, missing pixels as NaN.

    Formats: float ``.tiff`` / ``.exr`` / ``.npy`` in metres; 16-bit ``.png`` (or integer
    ``.tiff`` / ``.npy``) in millimetres, as RealSense and Azure Kinect tools save them.
    ``depth_scale`` (metres per stored unit) overrides the unit: 0.001 for millimetres, 1.0
    for metres, say 0.00025 for a camera that stores quarter millimetres. Zeros, negative
    values, NaN and infinities are missing. An 8-bit or colour image is not depth: a
    ValueError naming the file says so.
    """
    path = Path(path)
    _require_file(path, "depth image")
    suffix = path.suffix.lower()
    if suffix not in DEPTH_FRAME_SUFFIXES:
        raise ValueError(
            f"{path}: unknown depth format (expected one of {', '.join(DEPTH_FRAME_SUFFIXES)})"
        )
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".exr":
            arr = _read_exr(path)
        elif suffix in _TIFF_SUFFIXES:
            arr = _read_tiff(path)
        else:
            arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except Exception as e:  # noqa: BLE001 -- any decoder failure is a bad file
        if isinstance(e, ValueError) and str(path) in str(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: cannot decode depth image ({first})") from None
    if arr is None:
        raise ValueError(f"{path}: cannot decode depth image")
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.squeeze()
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise ValueError(
            f"{path}: a {arr.shape[-1]}-channel image is not depth (expected one channel: float "
            "metres or 16-bit millimetres)"
        )
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected an (H, W) depth image, got shape {arr.shape}")
    if arr.dtype in (np.uint8, np.int8, np.bool_):
        raise ValueError(
            f"{path}: an 8-bit image is not depth (expected a 16-bit PNG in millimetres, or "
            "float TIFF / EXR / NPY in metres)"
        )
    if np.issubdtype(arr.dtype, np.integer):
        scale = 0.001 if depth_scale is None else depth_scale
    elif np.issubdtype(arr.dtype, np.floating):
        scale = 1.0 if depth_scale is None else depth_scale
    else:
        raise ValueError(f"{path}: depth of dtype {arr.dtype} (expected float or 16-bit)")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"--depth-scale must be a positive number, got {depth_scale}")
    out = arr.astype(np.float32) * np.float32(scale)
    out[invalid_depth(out)] = np.nan
    if np.isnan(out).all():
        raise ValueError(f"{path}: every depth pixel is missing (zero, negative or NaN)")
    median = float(np.nanmedian(out))
    if depth_scale is None and not 0.05 <= median <= 20.0:
        raise ValueError(
            f"{path}: median depth {median:.4g} m is not a tabletop scene's: depth in another "
            "unit? give --depth-scale (metres per stored unit)"
        )
    return out


def load_rgb(path: str | Path) -> np.ndarray:
    """Read a colour image as uint8 (H, W, 3) in RGB order (grey images are expanded)."""
    path = Path(path)
    _require_file(path, "RGB image")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot decode RGB image (expected a PNG/JPEG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_mask(path: str | Path) -> np.ndarray:
    """Read an object mask as bool (H, W): True where the (first channel) value is > 0."""
    path = Path(path)
    _require_file(path, "mask image")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: cannot decode mask image (expected a PNG)")
    if img.ndim == 3:
        img = img[..., 0]
    return img > 0


def image_shape(path: str | Path) -> tuple[int, int]:
    """(rows, cols) of an image file, read from its header without decoding the pixels."""
    path = Path(path)
    _require_file(path, "image")
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            import tifffile

            with warnings.catch_warnings():  # a damaged file's warning: the error says it
                warnings.simplefilter("ignore")
                with tifffile.TiffFile(path) as tf:
                    shape = tf.pages[0].shape
            return int(shape[0]), int(shape[1])
        from PIL import Image  # a dependency of imageio and scikit-image

        with Image.open(path) as im:
            cols, rows = im.size
        return int(rows), int(cols)
    except Exception as e:
        raise ValueError(f"{path}: cannot read image header ({e})") from None


# --- depth processing ---------------------------------------------------------------------------
def invalid_depth(depth: np.ndarray) -> np.ndarray:
    """Bool mask of missing depth: NaN, +-inf or <= 0 (Jacquard stereo uses -1, Cornell 0)."""
    d = np.asarray(depth)
    return ~np.isfinite(d) | (d <= 0)


def inpaint_depth(depth: np.ndarray, method: str = "ns", radius: int = 1) -> np.ndarray:
    """Fill missing depth (NaN, inf, <= 0) with OpenCV inpainting; returns float32 (H, W).

    As in GG-CNN: a 1-pixel mirrored border is added so holes on the image edge have
    neighbours, and OpenCV inpaints a copy scaled into [-1, 1] that is scaled back after.
    ``method`` is ``"ns"`` (Navier-Stokes, GG-CNN's choice) or ``"telea"``. Valid pixels are
    returned unchanged. Raises ValueError if every pixel is invalid.
    """
    flags = {"ns": cv2.INPAINT_NS, "telea": cv2.INPAINT_TELEA}
    if method not in flags:
        raise ValueError(f"inpaint_depth: method must be 'ns' or 'telea', got {method!r}")
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"inpaint_depth: expected a 2-D depth image, got shape {d.shape}")
    bad = invalid_depth(d)
    if not bad.any():
        return d.copy()
    if bad.all():
        raise ValueError("inpaint_depth: every pixel is invalid (NaN, inf or <= 0)")
    filled = np.where(bad, np.float32(0), d)
    scale = float(np.abs(filled).max())
    padded = cv2.copyMakeBorder(filled / scale, 1, 1, 1, 1, cv2.BORDER_REFLECT_101)
    mask = cv2.copyMakeBorder(bad.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_REFLECT_101)
    out = cv2.inpaint(padded, mask, radius, flags[method])[1:-1, 1:-1] * np.float32(scale)
    out = out.astype(np.float32, copy=False)
    out[~bad] = d[~bad]  # keep measured values bit-exact
    still_bad = invalid_depth(out)
    if still_bad.any():
        # Inpainting interpolates between positive values, so this is a safety net only:
        # copy the nearest valid pixel.
        from scipy.ndimage import distance_transform_edt

        _, (ri, ci) = distance_transform_edt(still_bad, return_indices=True)
        out = out[ri, ci]
    return out


def normalise_rgb(rgb: np.ndarray) -> np.ndarray:
    """GG-CNN RGB input: uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1] minus the image mean.

    The mean is one scalar over all pixels and channels (as GG-CNN), not per channel.
    """
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"normalise_rgb: expected an (H, W, 3) image, got shape {img.shape}")
    f = img.astype(np.float32) / np.float32(255.0)
    f -= f.mean()
    return np.ascontiguousarray(f.transpose(2, 0, 1))


# --- affine maps in (row, col) ------------------------------------------------------------------
def _rotation(angle: float) -> np.ndarray:
    """2 x 2 (row, col) rotation by ``angle`` radians CCW on screen (rows grow down).

    Quarter turns are made exact (cos and sin in {-1, 0, 1}) so they permute pixels exactly.
    """
    c, s = math.cos(angle), math.sin(angle)
    c = float(round(c)) if abs(c - round(c)) < 1e-12 else c
    s = float(round(s)) if abs(s - round(s)) < 1e-12 else s
    # A point to the right of centre, (0, 1), must go above it, (-1, 0), for a +pi/2 turn.
    return np.array([[c, -s], [s, c]])


def crop_transform(
    center: Sequence[float],
    crop_size: float,
    output_size: int | Sequence[int],
    rotation: float = 0.0,
    zoom: float = 1.0,
) -> np.ndarray:
    """2 x 3 (row, col) matrix mapping SOURCE pixel coordinates to OUTPUT pixel coordinates.

    The output (``output_size`` pixels, an int for a square or (rows, cols)) shows a square of
    ``zoom * crop_size`` source pixels centred on ``center`` (row, col; source pixels,
    continuous, pixel centres at integers), rotated by ``rotation`` radians counter-clockwise
    on screen about that centre. ``zoom < 1`` magnifies (GG-CNN convention). ``center`` lands
    on the output's centre ((rows - 1) / 2, (cols - 1) / 2), and the crop's edges on the
    output's outer pixel edges, so a full-frame resize from F to S pixels is
    ``p' = (p + 0.5) * S / F - 0.5``.
    """
    if crop_size <= 0 or zoom <= 0:
        raise ValueError(f"crop_transform: crop_size and zoom must be > 0, got {crop_size}, {zoom}")
    out_rows, out_cols = _pair(output_size, "output_size")
    # Square output pixels: a non-square output shows more (or less) along its columns.
    scale = out_rows / (zoom * crop_size)
    a = scale * _rotation(rotation)
    c = np.asarray(center, dtype=np.float64).reshape(2)
    c_out = np.array([(out_rows - 1) / 2.0, (out_cols - 1) / 2.0])
    return np.concatenate([a, (c_out - a @ c)[:, None]], axis=1)


def resize_transform(src_shape: Sequence[int], dst_shape: Sequence[int]) -> np.ndarray:
    """2 x 3 (row, col) matrix of a whole-image resize, pixel-centre exact (as cv2.resize):
    ``p' = (p + 0.5) * dst / src - 0.5`` per axis."""
    sr, sc = (float(v) for v in src_shape[:2])
    dr, dc = (float(v) for v in dst_shape[:2])
    fr, fc = dr / sr, dc / sc
    return np.array([[fr, 0.0, 0.5 * fr - 0.5], [0.0, fc, 0.5 * fc - 0.5]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine map."""
    m = np.asarray(matrix, dtype=np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, (-a_inv @ m[:, 2])[:, None]], axis=1)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The map ``p -> outer(inner(p))`` of two 2 x 3 affine maps."""
    o = np.asarray(outer, dtype=np.float64)
    i = np.asarray(inner, dtype=np.float64)
    return np.concatenate([o[:, :2] @ i[:, :2], (o[:, :2] @ i[:, 2] + o[:, 2])[:, None]], axis=1)


def affine_scale(matrix: np.ndarray) -> float:
    """Isotropic scale of a 2 x 3 map: sqrt(|det|) (> 1 magnifies)."""
    m = np.asarray(matrix, dtype=np.float64)
    return math.sqrt(abs(float(np.linalg.det(m[:, :2]))))


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 (row, col) map to points (..., 2)."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ m[:, :2].T + m[:, 2]


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        rows = cols = int(size)
    else:
        rows, cols = (int(v) for v in size)
    if rows < 1 or cols < 1:
        raise ValueError(f"{name} must be positive, got {size}")
    return rows, cols


def warp_image(
    img: np.ndarray,
    matrix_rc: np.ndarray,
    out_size: int | Sequence[int],
    interpolation: int = cv2.INTER_LINEAR,
    border: int = IMAGE_BORDER,
    border_value: float = 0.0,
) -> np.ndarray:
    """Resample ``img`` (H, W) or (H, W, C) into the output frame of a (row, col) matrix.

    ``matrix_rc`` maps source (row, col) to output (row, col) (as :func:`crop_transform`); it
    is swapped into OpenCV's (x, y) form and applied with one ``cv2.warpAffine`` call, so the
    same matrix given to :meth:`GraspRectangles.affine` moves the labels identically. Use
    ``cv2.INTER_LINEAR`` for depth/RGB and ``cv2.INTER_NEAREST`` for masks. bool images are
    warped as uint8 and returned as bool. The warp does not low-pass filter: shrink strongly
    downscaled images with ``cv2.INTER_AREA`` first (see :func:`resize_transform`).
    """
    rows, cols = _pair(out_size, "out_size")
    m = np.asarray(matrix_rc, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"warp_image: expected a 2 x 3 matrix, got shape {m.shape}")
    # (row, col) -> (x, y) = (col, row): swap both the input and the output axes.
    m_xy = np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]]])
    src = np.asarray(img)
    is_bool = src.dtype == np.bool_
    if is_bool:
        src = src.astype(np.uint8)
    out = cv2.warpAffine(
        src,
        m_xy,
        (cols, rows),
        flags=interpolation,
        borderMode=border,
        borderValue=border_value,
    )
    if out.ndim == 2 and src.ndim == 3:  # OpenCV drops a trailing channel axis of size 1
        out = out[..., None]
    return out.astype(bool) if is_bool else out


def resize_image(
    img: np.ndarray, shape: Sequence[int], interpolation: int = cv2.INTER_AREA
) -> np.ndarray:
    """Resize a whole image to (rows, cols); its (row, col) map is :func:`resize_transform`.

    bool masks are area-averaged and thresholded at 0.5 (majority vote).
    """
    rows, cols = _pair(tuple(shape[:2]), "shape")
    src = np.asarray(img)
    if src.shape[:2] == (rows, cols):
        return src.copy()
    if src.dtype == np.bool_:
        return cv2.resize(src.astype(np.float32), (cols, rows), interpolation=interpolation) >= 0.5
    return cv2.resize(src, (cols, rows), interpolation=interpolation)
