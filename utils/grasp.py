"""Grasp geometry: grasps, grasp rectangles, their file formats, the exact IoU and target maps.

Conventions shared by the whole project (every other module follows these):

- Image coordinates are (row, col) in pixels; rows grow downward. Pixel centres sit at integer
  coordinates (pixel (r, c) covers [r - 0.5, r + 0.5) x [c - 0.5, c + 0.5)), as in OpenCV and
  scikit-image.
- A grasp angle is in radians in [-pi/2, pi/2), counter-clockwise *on screen*. Because rows grow
  downward, the opening direction of a grasp with angle ``a`` is ``(d_row, d_col) =
  (-sin a, cos a)``: a positive angle points the opening up and to the right. A parallel-jaw
  grasp is symmetric under a half turn, so angles are equal modulo pi.
- ``length`` is the gripper opening (the distance between the jaws, along the opening
  direction); ``width`` is the jaw size (the rectangle's other side).
- A :class:`GraspRectangle` holds 4 corners ``p0..p3`` as (row, col). Edge p0 -> p1 is the
  opening (its direction gives the angle, its length is ``length``); edge p1 -> p2 is the jaw
  (``width``). This is the Cornell convention (first edge = opening).
- Target maps: quality in [0, 1]; the angle as cos 2a and sin 2a (continuous across the +-pi/2
  wrap); the opening in pixels divided by one width scale (:data:`WIDTH_SCALE` unless a caller
  passes another) that :func:`utils.post_process.post_process_output` multiplies back.

File formats:

- Cornell ``pcdXXXXcpos.txt``: 4 lines ``x y`` per rectangle, x the column, y the row; a
  rectangle with any NaN corner is dropped whole.
- Jacquard ``*_grasps.txt``: lines ``x;y;theta;w;h`` (CRLF or LF) in the image frame (1024 x
  1024 for the real dataset); theta in degrees, *clockwise* on screen, so our angle is
  ``-radians(theta)``; w is the opening (length), h the jaw size (width).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from utils.atomic import atomic_open, atomic_write_text

#: Pixels of gripper opening that map to 1.0 in the width target map. Encoding (datasets) and
#: decoding (post-processing) both default to this one constant.
WIDTH_SCALE: float = 150.0

#: The rectangle metric's angle tolerance: 30 degrees.
DEFAULT_ANGLE_THRESHOLD: float = math.pi / 6


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap grasp angles (radians) to [-pi/2, pi/2), using their half-turn symmetry."""
    wrapped = np.mod(np.asarray(angle, dtype=np.float64) + np.pi / 2, np.pi) - np.pi / 2
    if np.ndim(wrapped) == 0:
        return float(wrapped)
    return wrapped


def angle_difference(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray | float:
    """Absolute difference of grasp angles modulo pi, in radians in [0, pi/2]."""
    return np.abs(wrap_angle(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def _grasp_corners(
    centers: np.ndarray, angles: np.ndarray, lengths: np.ndarray, widths: np.ndarray
) -> np.ndarray:
    """Corners (N x 4 x 2, (row, col)) of grasps; p0 -> p1 is the opening."""
    opening = np.stack([-np.sin(angles), np.cos(angles)], axis=-1)  # unit, (row, col)
    jaw = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # opening turned by -90 on screen
    half_l = (lengths / 2)[:, None] * opening
    half_w = (widths / 2)[:, None] * jaw
    c = centers
    return np.stack(
        [c - half_l - half_w, c + half_l - half_w, c + half_l + half_w, c - half_l + half_w], axis=1
    )


class Grasp:
    """A grasp: centre (row, col) in pixels, angle in radians, opening and jaw size in pixels.

    ``quality`` is optional metadata (e.g. the quality-map peak a detection came from).
    """

    __slots__ = ("center", "angle", "length", "width", "quality")

    def __init__(
        self,
        center: Sequence[float] | np.ndarray,
        angle: float,
        length: float = 60.0,
        width: float = 30.0,
        quality: float | None = None,
    ) -> None:
        self.center = np.asarray(center, dtype=np.float64).reshape(2)
        self.angle = float(wrap_angle(angle))
        self.length = float(length)
        self.width = float(width)
        self.quality = quality

    @property
    def as_gr(self) -> GraspRectangle:
        """This grasp as a :class:`GraspRectangle` (p0 -> p1 along the opening)."""
        corners = _grasp_corners(
            self.center[None],
            np.array([self.angle]),
            np.array([self.length]),
            np.array([self.width]),
        )
        return GraspRectangle(corners[0])

    def max_iou(
        self, rectangles: GraspRectangles, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD
    ) -> float:
        """Largest IoU of this grasp with any of ``rectangles`` (0 if none passes the angle test)."""
        return max_iou(self.as_gr, rectangles, angle_threshold)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grasp):
            return NotImplemented
        return (
            np.allclose(self.center, other.center)
            and angle_difference(self.angle, other.angle) < 1e-9
            and math.isclose(self.length, other.length, abs_tol=1e-9)
            and math.isclose(self.width, other.width, abs_tol=1e-9)
        )

    __hash__ = None  # mutable, compared by value

    def __repr__(self) -> str:
        r, c = self.center
        return (
            f"Grasp(center=({r:.2f}, {c:.2f}), angle={self.angle:.4f}, "
            f"length={self.length:.2f}, width={self.width:.2f})"
        )


class GraspRectangle:
    """One grasp rectangle: ``points`` is 4 x 2, (row, col), p0 -> p1 the opening.

    Transforms (:meth:`rotate`, :meth:`scale`, :meth:`zoom`, :meth:`offset`, :meth:`affine`)
    return a new rectangle and leave this one unchanged.
    """

    __slots__ = ("points",)

    def __init__(self, points: np.ndarray | Sequence[Sequence[float]]) -> None:
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape != (4, 2):
            raise ValueError(f"a grasp rectangle needs 4 (row, col) points, got shape {pts.shape}")
        self.points = pts

    @property
    def angle(self) -> float:
        """Angle of the opening edge p0 -> p1, radians in [-pi/2, pi/2), CCW on screen."""
        d = self.points[1] - self.points[0]
        return float(wrap_angle(math.atan2(-d[0], d[1])))

    @property
    def center(self) -> np.ndarray:
        """Centre (row, col): the mean of the 4 corners."""
        return self.points.mean(axis=0)

    @property
    def length(self) -> float:
        """Gripper opening: length of edge p0 -> p1, pixels."""
        return float(np.linalg.norm(self.points[1] - self.points[0]))

    @property
    def width(self) -> float:
        """Jaw size: length of edge p1 -> p2, pixels."""
        return float(np.linalg.norm(self.points[2] - self.points[1]))

    @property
    def as_grasp(self) -> Grasp:
        return Grasp(self.center, self.angle, self.length, self.width)

    def polygon_coords(self, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the pixels whose centres lie inside the rectangle, clipped to shape."""
        if shape is None:  # unbounded below the polygon's far corner
            far = np.nan_to_num(self.points.max(0), nan=0.0, posinf=0.0)
            shape = (int(max(far[0], 0)) + 2, int(max(far[1], 0)) + 2)
        _, rr, cc = fill_convex_polygons(self.points[None], shape)
        return rr, cc

    def compact_polygon_coords(
        self, shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of the middle third of the rectangle along its opening (GG-CNN target area)."""
        g = self.as_grasp
        return Grasp(g.center, g.angle, g.length / 3, g.width).as_gr.polygon_coords(shape)

    def iou(self, other: GraspRectangle, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD) -> float:
        """Exact IoU of the two rectangles' areas; 0 if their angles differ by > angle_threshold."""
        return max_iou(self, GraspRectangles([other]), angle_threshold)

    def affine(self, matrix: np.ndarray) -> GraspRectangle:
        """Apply a 2 x 3 affine map in (row, col): p' = matrix[:, :2] @ p + matrix[:, 2]."""
        return GraspRectangles([self]).affine(matrix)[0]

    def rotate(self, angle: float, center: Sequence[float]) -> GraspRectangle:
        """Rotate by ``angle`` radians counter-clockwise on screen about ``center`` (row, col)."""
        return GraspRectangles([self]).rotate(angle, center)[0]

    def scale(self, factor: float) -> GraspRectangle:
        """Multiply all coordinates by ``factor`` (e.g. to resize the image by that factor)."""
        return GraspRectangle(self.points * factor)

    def zoom(self, factor: float, center: Sequence[float]) -> GraspRectangle:
        """The rectangle as seen in a view ``factor`` times the size, centred on ``center``.

        Points move away from ``center`` by 1 / factor (factor < 1 magnifies).
        """
        return GraspRectangles([self]).zoom(factor, center)[0]

    def offset(self, delta: Sequence[float]) -> GraspRectangle:
        """Translate by ``delta`` (row, col) pixels."""
        return GraspRectangle(self.points + np.asarray(delta, dtype=np.float64))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GraspRectangle):
            return NotImplemented
        return bool(np.allclose(self.points, other.points))

    __hash__ = None

    def __repr__(self) -> str:
        return f"GraspRectangle({np.round(self.points, 2).tolist()})"


class GraspRectangles:
    """An ordered list of grasp rectangles held as one N x 4 x 2 float64 array, (row, col)."""

    def __init__(self, rectangles: Iterable[GraspRectangle] | np.ndarray | None = None) -> None:
        if rectangles is None:
            pts = np.zeros((0, 4, 2))
        elif isinstance(rectangles, np.ndarray):
            pts = np.asarray(rectangles, dtype=np.float64).reshape(-1, 4, 2)
        else:
            rects = list(rectangles)
            pts = np.stack([r.points for r in rects]) if rects else np.zeros((0, 4, 2))
        self.points = np.array(pts, dtype=np.float64)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_grasps(
        cls,
        centers: np.ndarray,
        angles: np.ndarray,
        lengths: np.ndarray,
        widths: np.ndarray,
    ) -> GraspRectangles:
        """Rectangles from vectorised grasp parameters (centres N x 2 (row, col), radians, px)."""
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
        n = len(centers)
        return cls(
            _grasp_corners(
                centers,
                np.broadcast_to(np.asarray(angles, dtype=np.float64), (n,)),
                np.broadcast_to(np.asarray(lengths, dtype=np.float64), (n,)),
                np.broadcast_to(np.asarray(widths, dtype=np.float64), (n,)),
            )
        )

    @classmethod
    def load_from_cornell_file(cls, path: str | Path) -> GraspRectangles:
        """Read a Cornell ``pcdXXXXcpos.txt``: 4 lines ``x y`` per rectangle.

        A rectangle with any NaN (or infinite) corner is dropped whole. A malformed line
        raises ValueError naming the file and line number.
        """
        path = Path(path)
        lines = _read_text(path, "Cornell grasp file").splitlines()
        corners: list[tuple[float, float]] = []
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                if len(fields) != 2:
                    raise ValueError
                x, y = float(fields[0]), float(fields[1])
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: expected 'x y' (two numbers), got {line.strip()!r}"
                ) from None
            corners.append((y, x))
        if len(corners) % 4:
            raise ValueError(
                f"{path}: expected 4 corner lines per rectangle, got {len(corners)} point lines"
            )
        pts = np.array(corners, dtype=np.float64).reshape(-1, 4, 2)
        return cls(pts[np.isfinite(pts).all(axis=(1, 2))])

    @classmethod
    def from_jacquard_lines(
        cls, lines: Iterable[str], scale: float = 1.0, source: str = "<lines>"
    ) -> GraspRectangles:
        """Parse Jacquard ``x;y;theta;w;h`` lines (see :meth:`load_from_jacquard_file`)."""
        rows: list[list[float]] = []
        for lineno, line in enumerate(lines, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(";")
            try:
                if len(fields) != 5:
                    raise ValueError
                rows.append([float(f) for f in fields])
            except ValueError:
                raise ValueError(
                    f"{source}:{lineno}: expected 'x;y;theta;w;h' (five numbers), got {line!r}"
                ) from None
        if not rows:
            return cls()
        arr = np.array(rows, dtype=np.float64)
        arr = arr[np.isfinite(arr).all(axis=1)]
        x, y, theta, w, h = arr.T
        return cls.from_grasps(
            np.stack([y, x], axis=1) * scale,
            wrap_angle(-np.deg2rad(theta)),
            w * scale,
            h * scale,
        )

    @classmethod
    def load_from_jacquard_file(cls, path: str | Path, scale: float = 1.0) -> GraspRectangles:
        """Read a Jacquard ``*_grasps.txt``; ``scale`` multiplies positions and sizes.

        theta is degrees clockwise on screen, so the grasp angle is -radians(theta).
        ``scale`` is a plain p * s; an image resize from F to S pixels moves pixel centres by
        p' = (p + 0.5) * S / F - 0.5, so to follow a resized image exactly use the loaders'
        matrices (``GraspRectangles.affine``) rather than ``scale``.
        """
        path = Path(path)
        text = _read_text(path, "Jacquard grasp file")
        return cls.from_jacquard_lines(text.splitlines(), scale=scale, source=str(path))

    # --- writing -----------------------------------------------------------------------------
    def to_cornell_lines(self) -> list[str]:
        """Cornell lines: 4 ``x y`` lines per rectangle (x = column)."""
        return [f"{c:.3f} {r:.3f}" for rect in self.points for r, c in rect]

    def to_jacquard_lines(self, scale: float = 1.0) -> list[str]:
        """Jacquard lines ``x;y;theta;w;h``; coordinates are divided by ``scale``.

        theta is written clockwise in degrees, in (-90, 90]. To write predictions made on a
        resized image back in the source frame, map them with the dataset's
        ``output_to_source_matrix`` (``affine``) and keep ``scale=1``: see
        :meth:`load_from_jacquard_file` on pixel centres.
        """
        lines = []
        for (r, c), a, ln, wd in zip(
            self.centers / scale,
            self.angles,
            self.lengths / scale,
            self.widths / scale,
            strict=True,
        ):
            theta = -math.degrees(a)
            lines.append(f"{c:.5f};{r:.5f};{theta:.5f};{ln:.5f};{wd:.5f}")
        return lines

    def save_cornell(self, path: str | Path) -> None:
        atomic_write_text(path, "\n".join(self.to_cornell_lines()) + "\n")

    def save_jacquard(self, path: str | Path, scale: float = 1.0) -> None:
        # Real Jacquard files use CRLF line ends; write the same.
        with atomic_open(path, "wb") as f:
            f.write(("\r\n".join(self.to_jacquard_lines(scale)) + "\r\n").encode())

    # --- list behaviour ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            return GraspRectangle(self.points[item].copy())
        return GraspRectangles(self.points[item])

    def __iter__(self) -> Iterator[GraspRectangle]:
        for p in self.points:
            yield GraspRectangle(p.copy())

    def __add__(self, other: GraspRectangles) -> GraspRectangles:
        return GraspRectangles(np.concatenate([self.points, other.points]))

    def __repr__(self) -> str:
        return f"GraspRectangles(n={len(self)})"

    def copy(self) -> GraspRectangles:
        return GraspRectangles(self.points.copy())

    # --- vectorised properties ----------------------------------------------------------------
    @property
    def centers(self) -> np.ndarray:
        """N x 2 centres (row, col)."""
        return self.points.mean(axis=1)

    @property
    def angles(self) -> np.ndarray:
        """N angles of the opening edges, radians in [-pi/2, pi/2), CCW on screen."""
        d = self.points[:, 1] - self.points[:, 0]
        return np.asarray(wrap_angle(np.arctan2(-d[:, 0], d[:, 1]))).reshape(-1)

    @property
    def lengths(self) -> np.ndarray:
        """N gripper openings (edge p0 -> p1), pixels."""
        return np.linalg.norm(self.points[:, 1] - self.points[:, 0], axis=-1)

    @property
    def widths(self) -> np.ndarray:
        """N jaw sizes (edge p1 -> p2), pixels."""
        return np.linalg.norm(self.points[:, 2] - self.points[:, 1], axis=-1)

    @property
    def center(self) -> np.ndarray:
        """Mean (row, col) of all corners of all rectangles."""
        return self.points.reshape(-1, 2).mean(axis=0)

    # --- transforms (all return new objects) -------------------------------------------------
    def affine(self, matrix: np.ndarray) -> GraspRectangles:
        """Apply a 2 x 3 affine map in (row, col): p' = matrix[:, :2] @ p + matrix[:, 2]."""
        m = np.asarray(matrix, dtype=np.float64)
        return GraspRectangles(self.points @ m[:, :2].T + m[:, 2])

    def rotate(self, angle: float, center: Sequence[float]) -> GraspRectangles:
        """Rotate by ``angle`` radians counter-clockwise on screen about ``center`` (row, col).

        Each rectangle's angle grows by ``angle`` (modulo pi).
        """
        c = np.asarray(center, dtype=np.float64)
        ca, sa = math.cos(angle), math.sin(angle)
        # With rows pointing down, a CCW screen rotation maps (dr, dc) to
        # (cos*dr - sin*dc, sin*dr + cos*dc).
        rot = np.array([[ca, -sa], [sa, ca]])
        return self.affine(np.concatenate([rot, (c - rot @ c)[:, None]], axis=1))

    def scale(self, factor: float) -> GraspRectangles:
        """Multiply all coordinates by ``factor``."""
        return GraspRectangles(self.points * factor)

    def zoom(self, factor: float, center: Sequence[float]) -> GraspRectangles:
        """As seen in a view ``factor`` times the size about ``center``: points scale by 1/factor."""
        c = np.asarray(center, dtype=np.float64)
        return GraspRectangles((self.points - c) / factor + c)

    def offset(self, delta: Sequence[float]) -> GraspRectangles:
        """Translate by ``delta`` (row, col) pixels."""
        return GraspRectangles(self.points + np.asarray(delta, dtype=np.float64))

    # --- target maps -------------------------------------------------------------------------
    def draw(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Quality, angle and opening maps (float32, ``shape``) from the rectangles.

        Each rectangle marks the middle third of its length along the opening, across its full
        jaw size (the GG-CNN convention): quality 1, angle in radians, opening in pixels.
        Rectangles are drawn in order, so where they overlap the **later** rectangle in the
        list wins (its angle and opening overwrite earlier ones). Pixels outside every
        rectangle are 0 in all maps. One vectorised pass (:func:`fill_convex_polygons`), no
        loop over rectangles.
        """
        q, ang, wid = (np.zeros(shape, dtype=np.float32) for _ in range(3))
        on, run, last = self._covered(shape)
        q.reshape(-1)[on] = 1.0
        ends = GraspRectangles(self.points[last])  # each run's last line: its values
        ang.reshape(-1)[on] = ends.angles.astype(np.float32)[run]
        wid.reshape(-1)[on] = ends.lengths.astype(np.float32)[run]
        return q, ang, wid

    def targets(
        self,
        shape: tuple[int, int],
        width_scale: float = WIDTH_SCALE,
        runs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The network target of these rectangles: 4 x H x W float32, exactly
        ``encode_grasp_maps(*self.draw(shape), width_scale)`` but made in one pass over the
        covered pixels only (without full-size angle and opening maps in between); the
        training loader draws a whole batch at once with :func:`stacked_targets`. ``runs``:
        :meth:`jaw_size_runs` of these rectangles, or of the same rectangles in another frame,
        which the loader computes once per sample instead of once per item (a rotation,
        uniform scale and shift keeps the runs, except where rounding moves a run's angle
        across the +-pi/2 wrap: then the maps differ in the last bit of sin 2θ, the same
        grasp)."""
        return stacked_targets([self], shape, width_scale, [runs])[0]

    def jaw_size_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """Runs of consecutive rectangles that are one grasp line with several jaw sizes (the
        same centre, angle and opening): per run, in order, the index of its widest rectangle
        and of its last one (:meth:`draw` fills the widest and gives it the last's values)."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        return _jaw_size_runs(self.centers, self.angles, self.lengths, self.widths)

    def _checked_runs(
        self, runs: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``runs`` (default: :meth:`jaw_size_runs`) after the cheap necessary checks that they
        describe these rectangles: runs of other rectangles would draw wrong maps silently."""
        largest, last = self.jaw_size_runs() if runs is None else runs
        if (
            len(largest) != len(last)
            or (len(last) > 0) != (len(self) > 0)
            or (len(last) and last[-1] != len(self) - 1)
        ):
            raise ValueError(
                f"jaw-size runs ({len(last)} runs ending at line "
                f"{last[-1] if len(last) else None}) do not fit {len(self)} rectangles"
            )
        return largest, last

    def _covered(
        self, shape: tuple[int, int], runs: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flat indices of the pixels some rectangle's drawn part covers, each once; the run
        of the last rectangle in the list covering each; each run's last rectangle, see
        :meth:`jaw_size_runs`): the GG-CNN drawing rule of :meth:`draw`."""
        largest, last = self._checked_runs(runs)
        on, run = _covered_pixels([self.points[largest]], shape)
        return on, run, last


def _covered_pixels(
    widest: Sequence[np.ndarray], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The drawing rule for several images at once. ``widest[i]``: image i's runs' widest
    rectangles (K_i x 4 x 2, in list order). Returns (flat indices into an
    ``len(widest) x H x W`` stack of the pixels some rectangle's drawn part covers, each once,
    in no particular order; for each, the index of the covering run, counted over all images
    in order, of the last rectangle in its image's list that covers it).

    Grasp files list one grasp with several jaw sizes on consecutive lines (Jacquard: about
    4 per grasp), and their drawn parts are nested, so only the largest of each such run is
    filled, standing for the run's last line (the run's values are the same, so the maps
    are too): 3.8-4.1x fewer polygons on the real and synthetic sets. One fill for all the
    images: an image has few rectangles, so each numpy call of a fill is small and the calls,
    not the pixels, are what costs."""
    pixels = shape[0] * shape[1]
    counts = [len(w) for w in widest]
    if not sum(counts):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    rects = GraspRectangles(np.concatenate([w.reshape(-1, 4, 2) for w in widest]))
    compact = GraspRectangles.from_grasps(
        rects.centers, rects.angles, rects.lengths / 3, rects.widths
    )
    owner, rr, cc = fill_convex_polygons(compact.points, shape)  # clipped to each image
    image = np.repeat(np.arange(len(widest)), counts)
    flat = image[owner] * pixels + rr * shape[1] + cc
    # Later rectangles win: each pixel keeps the highest run covering it (runs are in list
    # order, so that is the run of the highest-indexed rectangle). Only the covered entries
    # of the stack are ever written or read (np.empty leaves the rest untouched), and a
    # polygon covers a pixel once, so the winning entries are one per covered pixel.
    top = np.empty(len(widest) * pixels, dtype=np.intp)
    top[flat] = -1
    np.maximum.at(top, flat, owner)
    wins = top[flat] == owner
    return flat[wins], owner[wins]


def stacked_targets(
    grasps: Sequence[GraspRectangles],
    shape: tuple[int, int],
    width_scale: float = WIDTH_SCALE,
    runs: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
) -> np.ndarray:
    """The targets of several images: ``B x 4 x H x W`` float32, exactly
    ``np.stack([g.targets(shape, width_scale, r) for g, r in zip(grasps, runs)])`` (quality,
    cos 2θ, sin 2θ, opening / ``width_scale``; pixels) in one pass over all of their covered
    pixels. ``runs``: each image's :meth:`GraspRectangles.jaw_size_runs` or None (found here).
    """
    runs = [None] * len(grasps) if runs is None else list(runs)
    if len(runs) != len(grasps):
        raise ValueError(f"{len(runs)} jaw-size runs for {len(grasps)} rectangle sets")
    out = np.zeros((len(grasps), 4, *shape), dtype=np.float32)
    checked = [g._checked_runs(r) for g, r in zip(grasps, runs, strict=True)]
    on, run = _covered_pixels(
        [g.points[lg] for g, (lg, _) in zip(grasps, checked, strict=True)], shape
    )
    if not len(on):
        return out
    ends = GraspRectangles(
        np.concatenate([g.points[la] for g, (_, la) in zip(grasps, checked, strict=True)])
    )
    a = 2 * ends.angles.astype(np.float32)[run]
    w = ends.lengths.astype(np.float32)[run]
    pixels = shape[0] * shape[1]
    at = on + 3 * pixels * (on // pixels)  # image i's pixel p -> channel 0 of item i
    flat = out.reshape(-1)
    flat[at] = 1.0
    flat[at + pixels] = np.cos(a)
    flat[at + 2 * pixels] = np.sin(a)
    flat[at + 3 * pixels] = np.clip(w, 0.0, width_scale) / width_scale
    return out


def _jaw_size_runs(
    centers: np.ndarray, angles: np.ndarray, lengths: np.ndarray, widths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive rectangles with the same centre, angle and opening (to 1e-6 px and
    1e-9 rad: one grasp line with several jaw sizes): per run, in order, the index of its
    widest rectangle and of its last one."""
    same = (
        (np.abs(np.diff(centers, axis=0)).max(axis=1) <= 1e-6)
        & (np.abs(np.diff(angles)) <= 1e-9)
        & (np.abs(np.diff(lengths)) <= 1e-6)
    )
    new_run = np.concatenate([[True], ~same])
    run = np.cumsum(new_run) - 1
    by_width = np.lexsort((widths, run))  # by run, then jaw size ascending
    ends = np.append(np.flatnonzero(np.diff(run[by_width])), len(run) - 1)
    last = np.append(np.flatnonzero(new_run)[1:] - 1, len(run) - 1)
    return by_width[ends], last


def _read_text(path: Path, what: str) -> str:
    """A grasp file's text; unreadable or not text: a ValueError naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a {what}: byte {e.start} is not text (UTF-8)") from None


def draw_one_at_a_time(
    grasps: GraspRectangles, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`GraspRectangles.draw` the slow way, one ``skimage.draw.polygon`` fill per
    rectangle (how the GG-CNN code and this project drew targets before): the reference the
    tests and ``benchmarks/loader_speed.py`` compare the vectorised pass with."""
    from skimage.draw import polygon

    q, ang, wid = (np.zeros(shape, dtype=np.float32) for _ in range(3))
    compact = GraspRectangles.from_grasps(
        grasps.centers, grasps.angles, grasps.lengths / 3, grasps.widths
    )
    for pts, a, length in zip(compact.points, grasps.angles, grasps.lengths, strict=True):
        rr, cc = polygon(pts[:, 0], pts[:, 1], shape)
        q[rr, cc], ang[rr, cc], wid[rr, cc] = 1.0, a, length
    return q, ang, wid


def fill_convex_polygons(
    points: np.ndarray, shape: tuple[int, int], min_area: float = 1e-9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of many convex polygons at once: ``(owner, rows, cols)`` int arrays, one entry
    per pixel whose centre (integer row, col) lies inside or on the boundary of polygon
    ``owner`` (an index into ``points``, N x V x 2 vertices in (row, col) pixels, either
    winding), clipped to ``shape``. Entries come ordered by owner, then row, then column.

    Polygons with a non-finite vertex or an area under ``min_area`` square pixels draw
    nothing. Equal to ``skimage.draw.polygon`` for polygons in general position; where a
    vertex or edge falls exactly on a pixel centre up to rounding (integer or half-pixel
    corners at 0, 45 or 90 degrees: 63 of 5,000 such random rectangles) the two can differ on
    those boundary pixels. The datasets' targets are identical (tests/test_grasp.py).

    Each row of a convex polygon meets it in one closed interval of columns, so the work is
    one interval per (polygon, row) and no per-pixel inside test.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, np.shape(points)[-2], 2)
    rows_n, cols_n = int(shape[0]), int(shape[1])
    # Edge-major (V x N) so each per-edge reduction runs over contiguous rows.
    y, x = np.ascontiguousarray(p[..., 0].T), np.ascontiguousarray(p[..., 1].T)
    y2, x2 = np.roll(y, -1, 0), np.roll(x, -1, 0)  # edge e: vertex e -> e + 1
    with np.errstate(invalid="ignore"):
        area = 0.5 * np.abs((y * x2 - y2 * x).sum(0))
        keep = np.isfinite(p).all((1, 2)) & (area >= min_area)
    lo = np.ceil(np.where(keep, y.min(0), 0.0)).clip(0, rows_n)
    hi = np.floor(np.where(keep, y.max(0), -1.0)).clip(-1, rows_n - 1)
    n_rows = np.maximum(hi - lo + 1, 0).astype(np.intp)
    poly = np.repeat(np.arange(len(p)), n_rows)  # one entry per (polygon, row)
    row = np.arange(poly.size) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    row += lo.astype(np.intp)[poly]
    yy = row.astype(np.float64)
    yi, xi, yj, xj = y[:, poly], x[:, poly], y2[:, poly], x2[:, poly]
    meets = (np.minimum(yi, yj) <= yy) & (yy <= np.maximum(yi, yj))
    flat = yi == yj
    with np.errstate(divide="ignore", invalid="ignore"):
        at = xi + (xj - xi) * (yy - yi) / (yj - yi)  # where the edge crosses the row
    slanted = meets & ~flat
    left = np.where(slanted, at, np.inf).min(0)
    right = np.where(slanted, at, -np.inf).max(0)
    level = meets & flat  # an edge along the row: both of its ends bound the interval
    if level.any():
        left = np.minimum(left, np.where(level, np.minimum(xi, xj), np.inf).min(0))
        right = np.maximum(right, np.where(level, np.maximum(xi, xj), -np.inf).max(0))
    with np.errstate(invalid="ignore"):
        a = np.ceil(np.where(np.isfinite(left), left, 0.0)).clip(0, cols_n).astype(np.intp)
        b = np.floor(np.where(np.isfinite(right), right, -1.0)).clip(-1, cols_n - 1)
    n_cols = np.maximum(b.astype(np.intp) - a + 1, 0)
    seg = np.repeat(np.arange(poly.size), n_cols)
    cols = np.arange(seg.size) - np.repeat(np.cumsum(n_cols) - n_cols, n_cols) + a[seg]
    return poly[seg], row[seg], cols


def encode_grasp_maps(
    quality: np.ndarray, angle: np.ndarray, opening: np.ndarray, width_scale: float = WIDTH_SCALE
) -> np.ndarray:
    """Stack drawn maps into the network target: 4 x H x W float32 (quality, cos 2a, sin 2a,
    opening / width_scale).

    Openings are clipped to [0, width_scale] first. Both angle channels are 0 where quality is
    0: off-grasp pixels carry no angle, so the (cos, sin) vector's length doubles as a
    confidence, and a network is not pushed towards an arbitrary angle on the background.
    """
    quality = np.asarray(quality, dtype=np.float32)
    out = np.zeros((4, *quality.shape), dtype=np.float32)
    out[0] = quality
    # Only the grasp pixels (a few percent of the map) need trigonometry.
    on = np.flatnonzero(quality > 0)
    a = 2 * np.asarray(angle, dtype=np.float32).ravel()[on]
    w = np.asarray(opening, dtype=np.float32).ravel()[on]
    for channel, values in (
        (1, np.cos(a)),
        (2, np.sin(a)),
        (3, np.clip(w, 0.0, width_scale) / width_scale),
    ):
        out[channel].reshape(-1)[on] = values
    return out


# --- exact IoU of convex quadrilaterals --------------------------------------------------------
def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z of (a - o) x (b - o) over the last axis (2-vectors)."""
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def _polygon_area(poly: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Absolute shoelace areas of padded polygons (N x V x 2) with ``count`` valid vertices."""
    v = poly.shape[1]
    idx = np.arange(v)[None, :]
    nxt = np.where(idx + 1 >= count[:, None], 0, idx + 1)
    nxt_pts = np.take_along_axis(poly, nxt[..., None].repeat(2, axis=-1), axis=1)
    terms = poly[..., 0] * nxt_pts[..., 1] - poly[..., 1] * nxt_pts[..., 0]
    terms = np.where(idx < count[:, None], terms, 0.0)
    return np.abs(terms.sum(axis=1)) / 2 * (count >= 3)


def polygon_intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact intersection areas of pairs of convex quadrilaterals.

    ``a`` and ``b`` are N x 4 x 2 corner arrays (any winding). Sutherland-Hodgman clipping of
    each ``a`` by the 4 half-planes of its ``b``, vectorised over N on padded vertex arrays (a
    convex 4-gon clipped by k half-planes has at most 4 + k vertices, so 8 slots suffice).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = len(a)
    if n == 0:
        return np.zeros(0)
    # Orient every clip polygon so that "inside" is cross >= 0 for each directed edge.
    signed = _cross(b[:, 0], b[:, 1], b[:, 2]) + _cross(b[:, 0], b[:, 2], b[:, 3])
    b = np.where((signed < 0)[:, None, None], b[:, ::-1], b)
    slots = 8
    poly = np.zeros((n, slots, 2))
    poly[:, :4] = a
    count = np.full(n, 4)
    idx = np.arange(slots)[None, :]
    rows = np.arange(n)[:, None]
    for k in range(4):
        e0, e1 = b[:, k][:, None, :], b[:, (k + 1) % 4][:, None, :]
        valid = idx < count[:, None]
        prev_i = np.where(idx == 0, count[:, None] - 1, idx - 1)
        prev = poly[rows, prev_i]
        d_cur = _cross(e0, e1, poly)
        d_prev = _cross(e0, e1, prev)
        in_cur = d_cur >= 0
        in_prev = d_prev >= 0
        denom = d_prev - d_cur
        t = np.divide(d_prev, denom, out=np.zeros_like(denom), where=denom != 0)
        crossing = prev + t[..., None] * (poly - prev)
        # Each input vertex emits (crossing point if the edge crosses the line) then (itself if
        # inside): the standard Sutherland-Hodgman order, laid out in 2 slots per vertex.
        out = np.stack([crossing, poly], axis=2).reshape(n, 2 * slots, 2)
        keep = np.stack([(in_cur != in_prev) & valid, in_cur & valid], axis=2).reshape(n, 2 * slots)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :slots]
        poly = np.take_along_axis(out, order[..., None].repeat(2, axis=-1), axis=1)
        count = np.minimum(keep.sum(axis=1), slots)
    return _polygon_area(poly, count)


def max_iou(
    rectangle: GraspRectangle,
    rectangles: GraspRectangles,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
) -> float:
    """Largest exact IoU of ``rectangle`` with any of ``rectangles``.

    Rectangles whose angle differs from ``rectangle``'s by more than ``angle_threshold``
    (modulo pi) count as IoU 0. Returns 0.0 for an empty list.
    """
    ious = iou_many(rectangle, rectangles, angle_threshold)
    return float(ious.max()) if len(ious) else 0.0


def iou_many(
    rectangle: GraspRectangle,
    rectangles: GraspRectangles,
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
) -> np.ndarray:
    """Exact IoU of ``rectangle`` with each of ``rectangles`` (0 where the angle test fails)."""
    mine = np.broadcast_to(rectangle.points, rectangles.points.shape)
    return pair_ious(mine, rectangles.points, angle_threshold)


def pair_ious(
    a: np.ndarray, b: np.ndarray, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD
) -> np.ndarray:
    """Exact IoU of rectangles ``a[i]`` and ``b[i]`` (K x 4 x 2 corners each, (row, col)
    pixels, p0 -> p1 the opening): 0 where their angles differ by more than
    ``angle_threshold`` radians (modulo pi), where either has no area or a non-finite corner.
    Every pair is computed on its own, so batching pairs changes no value."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4, 2)
    k = len(a)
    ious = np.zeros(k)
    if k == 0:
        return ious
    rect_a, rect_b = GraspRectangles(a), GraspRectangles(b)
    ok = angle_difference(rect_b.angles, rect_a.angles) <= angle_threshold + 1e-12
    # Cheap reject: rectangles whose bounding circles do not touch cannot overlap.
    ca, cb = rect_a.centers, rect_b.centers
    radius_a = np.linalg.norm(a - ca[:, None], axis=2).max(axis=1)
    radius_b = np.linalg.norm(b - cb[:, None], axis=2).max(axis=1)
    ok &= np.linalg.norm(cb - ca, axis=1) < radius_a + radius_b
    # Zero-area (collinear or point) rectangles overlap nothing; the clipping below assumes
    # a proper convex polygon.
    area_a, area_b = (_polygon_area(p, np.full(k, 4)) for p in (a, b))
    ok &= (area_a > 1e-12) & (area_b > 1e-12)
    if not ok.any():
        return ious
    inter = polygon_intersection_area(a[ok], b[ok])
    union = area_a[ok] + area_b[ok] - inter
    ious[ok] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    # Rounding can leave a hair outside [0, 1]; degenerate corners (NaN) give 0.
    return np.clip(np.nan_to_num(ious, nan=0.0), 0.0, 1.0)


def max_iou_per_image(
    rectangles: Sequence[GraspRectangle | None],
    gts: Sequence[GraspRectangles],
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
) -> np.ndarray:
    """``max_iou(rectangles[i], gts[i])`` for every image ``i`` (0 where ``rectangles[i]`` is
    None or ``gts[i]`` is empty), all images' pairs in one vectorised pass."""
    best = np.zeros(len(rectangles))
    has = [i for i, r in enumerate(rectangles) if r is not None and len(gts[i])]
    if not has:
        return best
    counts = [len(gts[i]) for i in has]
    image = np.repeat(np.arange(len(has)), counts)
    mine = np.stack([rectangles[i].points for i in has])[image]  # type: ignore[union-attr]
    ious = pair_ious(mine, np.concatenate([gts[i].points for i in has]), angle_threshold)
    per = np.zeros(len(has))
    np.maximum.at(per, image, ious)
    best[has] = per
    return best
