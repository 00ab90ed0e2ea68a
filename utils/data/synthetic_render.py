"""Scene model of the synthetic grasp dataset: objects, camera, height-field rendering, stereo.

Everything here is in metres and radians; images are (row, col) with rows growing downward and
pixel centres at integer coordinates (the project convention of :mod:`utils.grasp`).

Camera (pinhole, looking straight down at a table):

- Square or rectangular frames of ``shape = (rows, cols)`` pixels; focal length
  ``f = rows / (2 tan(HFOV / 2))`` pixels with :data:`HFOV` = 30 degrees (the same for both
  axes, square pixels) and the principal point at the frame centre ``((rows-1)/2,
  (cols-1)/2)``. 30 degrees matches Jacquard (its 1 cm jaw unit is about 12.5 px of the
  1024 px frame at 1.45 m, i.e. f ~ 1.8 x 1024 px) and a 300 px crop of a Kinect frame as in
  GG-CNN's Cornell pipeline (2 atan(150 / 585) ~ 29 degrees).
- The table plane is ``distance`` metres away along the optical axis (1.4 to 1.6 m; farther
  when needed to fit the view's largest object) and tilted by ``tilt`` (8 to 12 degrees)
  about a random axis. Every real Jacquard view in ``../shared/data`` has its table at 1.50 m
  and tilted 10.0 degrees (``benchmarks/domain_gap.py`` fits the plane), so the ranges sit
  around those values (generator v2: 0.5 to 1.6 m and 0 to 12 degrees).

Objects are height fields over a 2-D footprint: ``height(u, v)`` in metres above the table at
object-frame coordinates (u, v) in metres, 0 outside the footprint. Compound families (wire
frames, furniture lying on its side, leaning discs and boxes) are the max over a few
:class:`Part` primitives: rods (capsules whose base may rise along them, so a rod can float
above the table like a chair's upper legs), flat or sloped slabs, and posts. A placed object
is drawn with its own image scale ``px_per_m = f / (table depth under it - silhouette height)``, i.e.
its widest cross-section has the right perspective size; side walls are not drawn (top-down
height field). Objects are combined by max; depth = table depth - height * cos(tilt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

#: Horizontal and vertical field of view of the rows axis, radians (see the module doc).
HFOV: float = math.radians(30.0)
#: Camera distance to the table (m), sampled uniformly per view (from the distance that fits
#: the view's largest object, see :data:`FIT_SHARE`). Real Jacquard views all sit at 1.50 m
#: (``benchmarks/domain_gap.py`` on the shared real views; generator v2 drew 0.5 to 1.6 m).
DISTANCE_RANGE: tuple[float, float] = (1.4, 1.6)
#: Table tilt range (radians): real Jacquard views all show 10.0 degrees.
TILT_RANGE: tuple[float, float] = (math.radians(8.0), math.radians(12.0))
#: Largest table tilt (radians).
MAX_TILT: float = TILT_RANGE[1]
#: The view's largest object spans at most this share of the frame's short side, when the
#: distance range allows (the camera backs off for big objects, as Jacquard frames them).
FIT_SHARE: float = 0.9
#: Thickness of a mug's bottom seen through its opening (m).
MUG_FLOOR: float = 0.006

#: Shape families (see :func:`sample_shape`).
FAMILIES: tuple[str, ...] = (
    "box",
    "cylinder_lying",
    "cylinder_standing",
    "ellipsoid",
    "l_shape",
    "t_shape",
    "ring",
    "mug",
    "convex_polygon",
    "nonconvex_polygon",
    "rod",
    "tool",
    "wire_frame",
    "furniture",
    "leaning",
)
#: Families made of :class:`Part` primitives (see :func:`_sample_parts`).
_COMPOUND: tuple[str, ...] = ("wire_frame", "furniture", "leaning")
#: Relative frequency of each family in :func:`sample_shape` (1 unless listed). Thin frames
#: (chairs and tables lying on their side, ladders, racks) are 3 of the 6 objects of the real
#: Jacquard views in ``../shared/data`` and dominate ShapeNet's furniture classes, so they
#: are drawn 3x as often: about a third of the objects (generator v2: 2 in 15). The domain-gap
#: report's mask fill, thin-part share and object length move with this.
FAMILY_WEIGHTS: dict[str, float] = {"wire_frame": 3.0, "furniture": 3.0}


def focal_length(rows: int) -> float:
    """Focal length in pixels for a frame with ``rows`` rows (the rows axis spans :data:`HFOV`)."""
    return rows / (2.0 * math.tan(HFOV / 2.0))


@dataclass(frozen=True)
class Camera:
    """Pinhole camera above a tilted table plane.

    ``shape`` (rows, cols) pixels; ``f`` focal length (px); principal point at the frame
    centre; ``distance`` (m) along the optical axis to the table; ``tilt`` (rad) of the table
    normal away from the optical axis, towards image direction ``tilt_dir`` (rad, CCW on
    screen from the +col axis).
    """

    shape: tuple[int, int]
    f: float
    distance: float
    tilt: float = 0.0
    tilt_dir: float = 0.0

    @property
    def center(self) -> tuple[float, float]:
        """Principal point (row, col)."""
        return (self.shape[0] - 1) / 2.0, (self.shape[1] - 1) / 2.0

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised image coordinates (y', x') = ((row - cy) / f, (col - cx) / f), each (H, W)."""
        cy, cx = self.center
        rows, cols = self.shape
        yp = ((np.arange(rows, dtype=np.float64) - cy) / self.f)[:, None]
        xp = ((np.arange(cols, dtype=np.float64) - cx) / self.f)[None, :]
        return np.broadcast_to(yp, self.shape), np.broadcast_to(xp, self.shape)

    def table_depth(self) -> np.ndarray:
        """z-depth (m, float64, H x W) of the table plane under each pixel (exact ray-plane)."""
        yp, xp = self.rays()
        ct, st = math.cos(self.tilt), math.sin(self.tilt)
        # Plane through (0, 0, D) with normal (st cos phi, -st sin phi, -ct) in camera (x, y, z)
        # (image "up" is -y); a ray z (x', y', 1) meets it at the z below.
        slope = st * (math.cos(self.tilt_dir) * xp - math.sin(self.tilt_dir) * yp)
        return self.distance * ct / (ct - slope)


# --- object shapes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """One primitive of a compound shape, in object coordinates (metres).

    - ``"rod"``: a capsule of radius ``r`` along ``p0 -> p1`` whose underside rises linearly
      from ``base0`` to ``base1`` (m above the table); its top at distance d from the axis is
      base + r + sqrt(r^2 - d^2).
    - ``"slab"``: a rectangle (an ellipse when ``round``) centred at ``p0`` with half sizes
      ``(a, b)`` along axes turned by ``yaw``; its top is the plane ``h0 + gu u' + gv v'`` in
      those axes (a leaning plate when sloped), never below 2 mm.
    - ``"post"``: a disc of radius ``r`` at ``p0`` with a slightly domed top of height ``h``.
    """

    kind: str
    p0: tuple[float, float]
    p1: tuple[float, float] = (0.0, 0.0)
    r: float = 0.0
    base0: float = 0.0
    base1: float = 0.0
    a: float = 0.0
    b: float = 0.0
    yaw: float = 0.0
    h0: float = 0.0
    gu: float = 0.0
    gv: float = 0.0
    round: bool = False
    h: float = 0.0

    def height(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Top height (m) at object coordinates (u, v); 0 off the part."""
        cu, cv = self.p0
        if self.kind == "rod":
            du, dv = self.p1[0] - cu, self.p1[1] - cv
            t = np.clip(((u - cu) * du + (v - cv) * dv) / max(du * du + dv * dv, 1e-12), 0, 1)
            d2 = (u - cu - t * du) ** 2 + (v - cv - t * dv) ** 2
            top = self.base0 + t * (self.base1 - self.base0) + self.r
            return np.where(d2 <= self.r**2, top + np.sqrt(np.clip(self.r**2 - d2, 0, None)), 0.0)
        if self.kind == "slab":
            c, s = math.cos(self.yaw), math.sin(self.yaw)
            lu = c * (u - cu) + s * (v - cv)
            lv = -s * (u - cu) + c * (v - cv)
            if self.round:
                inside = (lu / self.a) ** 2 + (lv / self.b) ** 2 <= 1
            else:
                inside = (np.abs(lu) <= self.a) & (np.abs(lv) <= self.b)
            plane = np.maximum(self.h0 + self.gu * lu + self.gv * lv, 0.002)
            return np.where(inside, plane, 0.0)
        if self.kind == "post":
            q = ((u - cu) ** 2 + (v - cv) ** 2) / self.r**2
            return np.where(q <= 1, self.h * (0.85 + 0.15 * np.sqrt(np.clip(1 - q, 0, None))), 0.0)
        raise ValueError(f"unknown part kind {self.kind!r}")

    @property
    def reach(self) -> float:
        """Largest distance (m) of the part from the object origin."""
        if self.kind == "rod":
            return max(math.hypot(*self.p0), math.hypot(*self.p1)) + self.r
        if self.kind == "slab":
            return math.hypot(*self.p0) + math.hypot(self.a, self.b)
        return math.hypot(*self.p0) + self.r

    @property
    def top(self) -> float:
        """Highest point (m) of the part."""
        if self.kind == "rod":
            return max(self.base0, self.base1) + 2 * self.r
        if self.kind == "slab":
            return max(self.h0 + abs(self.gu) * self.a + abs(self.gv) * self.b, 0.002)
        return self.h


@dataclass(eq=False)
class Shape:
    """One object: a family, its dimensions (metres) and colour (RGB in [0, 1]).

    ``dims`` holds the family's parameters (see :func:`sample_shape`); ``vertices`` (V x 2,
    metres, (u, v)) the footprint of polygon families; ``parts`` the primitives of compound
    families. ``radius`` bounds the footprint, ``top`` is the highest point and
    ``silhouette`` the height of the widest cross-section (it sets the object's image scale).
    """

    family: str
    dims: dict[str, float]
    color: tuple[float, float, float]
    vertices: np.ndarray | None = None
    parts: tuple[Part, ...] | None = None
    radius: float = field(init=False)
    top: float = field(init=False)
    silhouette: float = field(init=False)

    def __post_init__(self) -> None:
        d, fam = self.dims, self.family
        if self.parts is not None:
            self.radius = max(p.reach for p in self.parts)
            self.top = max(p.top for p in self.parts)
            self.silhouette = self.top / 2
            return
        if self.vertices is not None:
            self.radius = float(np.linalg.norm(self.vertices, axis=1).max())
        elif fam in ("box", "l_shape", "t_shape"):
            self.radius = math.hypot(d["a"], d["b"]) / 2
        elif fam in ("cylinder_lying", "rod"):
            self.radius = math.hypot(d["length"], 2 * d["r"]) / 2
        elif fam == "tool":
            self.radius = math.hypot(d["length"], max(2 * d["r"], d["head_b"])) / 2
        elif fam == "ellipsoid":
            self.radius = max(d["a"], d["b"])
        elif fam == "mug":
            self.radius = d["r"] + d["handle_len"]
        else:  # cylinder_standing, ring
            self.radius = d["r"]
        if fam in ("cylinder_lying", "rod"):
            self.top, self.silhouette = 2 * d["r"], d["r"]
        elif fam == "ellipsoid":
            self.top, self.silhouette = 2 * d["c"], d["c"]
        elif fam == "tool":
            self.top = max(2 * d["r"], d["head_h"])
            self.silhouette = self.top / 2
        else:
            self.top = self.silhouette = d["h"]

    def height(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Top-surface height (m, float64) at object coordinates (u, v) (m); 0 off the object."""
        d, fam = self.dims, self.family
        zero = np.zeros(np.broadcast(u, v).shape)
        if self.parts is not None:
            return np.maximum.reduce([p.height(u, v) for p in self.parts] + [zero])
        if self.vertices is not None:
            return np.where(_inside_polygon(u, v, self.vertices), d["h"], zero)
        if fam == "box":
            inside = (np.abs(u) <= d["a"] / 2) & (np.abs(v) <= d["b"] / 2)
            return np.where(inside, d["h"], zero)
        if fam in ("cylinder_lying", "rod"):
            return _lying_cylinder(u, v, d["length"], d["r"])
        if fam == "cylinder_standing":
            return np.where(u * u + v * v <= d["r"] ** 2, d["h"], zero)
        if fam == "ellipsoid":
            q = (u / d["a"]) ** 2 + (v / d["b"]) ** 2
            return np.where(q <= 1, d["c"] * (1 + np.sqrt(np.clip(1 - q, 0, None))), zero)
        if fam == "l_shape":
            a, b, t1, t2 = d["a"], d["b"], d["t1"], d["t2"]
            arm1 = (np.abs(u) <= a / 2) & (v >= -b / 2) & (v <= -b / 2 + t1)
            arm2 = (u >= -a / 2) & (u <= -a / 2 + t2) & (np.abs(v) <= b / 2)
            return np.where(arm1 | arm2, d["h"], zero)
        if fam == "t_shape":
            a, b, t1, t2 = d["a"], d["b"], d["t1"], d["t2"]
            bar = (np.abs(u) <= a / 2) & (v >= -b / 2) & (v <= -b / 2 + t1)
            stem = (np.abs(u) <= t2 / 2) & (np.abs(v) <= b / 2)
            return np.where(bar | stem, d["h"], zero)
        if fam == "ring":
            rho2 = u * u + v * v
            return np.where((rho2 <= d["r"] ** 2) & (rho2 >= d["r_in"] ** 2), d["h"], zero)
        if fam == "mug":
            rho2 = u * u + v * v
            r, r_in = d["r"], d["r"] - d["wall"]
            body = np.where(rho2 <= r_in**2, MUG_FLOOR, np.where(rho2 <= r * r, d["h"], 0.0))
            # Seen from above a vertical loop handle is a thin radial bar at the loop's top.
            handle = (u >= r_in) & (u <= r + d["handle_len"]) & (np.abs(v) <= d["handle_w"] / 2)
            return np.maximum(body, np.where(handle & (rho2 > r_in**2), 0.8 * d["h"], 0.0))
        if fam == "tool":
            rod = _lying_cylinder(u, v, d["length"], d["r"])
            hu = d["length"] / 2 - d["head_a"] / 2
            head = (np.abs(u - hu) <= d["head_a"] / 2) & (np.abs(v) <= d["head_b"] / 2)
            return np.maximum(rod, np.where(head, d["head_h"], 0.0))
        raise ValueError(f"unknown shape family {fam!r}")


def _lying_cylinder(u: np.ndarray, v: np.ndarray, length: float, r: float) -> np.ndarray:
    """Top of a cylinder of radius r lying along u: r + sqrt(r^2 - v^2) over its footprint."""
    inside = (np.abs(u) <= length / 2) & (np.abs(v) <= r)
    return np.where(inside, r + np.sqrt(np.clip(r * r - v * v, 0, None)), 0.0)


def _inside_polygon(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over the points (loop over the few edges)."""
    inside = np.zeros(np.broadcast(u, v).shape, dtype=bool)
    x0, y0 = verts[-1]
    for x1, y1 in verts:
        crosses = (y0 > v) != (y1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (x1 - x0) * (v - y0) / (y1 - y0) + x0
        inside ^= crosses & (u < x_at)
        x0, y0 = x1, y1
    return inside


def _random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(60, 230), rng.uniform(70, 245)]]])
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def pick_family(rng: np.random.Generator, families: tuple[str, ...] | list[str]) -> str:
    """One of ``families``, drawn with :data:`FAMILY_WEIGHTS`."""
    w = np.array([FAMILY_WEIGHTS.get(f, 1.0) for f in families])
    return families[int(rng.choice(len(families), p=w / w.sum()))]


def sample_shape(rng: np.random.Generator, family: str | None = None) -> Shape:
    """A random object of ``family`` (drawn with :data:`FAMILY_WEIGHTS` when None).

    Size ranges are household-object scale (1 cm up to about 70 cm across for furniture with
    legs at both ends, up to 25 cm tall, like the real Jacquard samples); many objects are narrower than the gripper in one direction and
    longer than it in the other, some (wide boxes, big cylinders, plates) are too wide for it
    in every direction. The compound families (``wire_frame``, ``furniture``, ``leaning``)
    come from :func:`_sample_parts`.
    """
    fam = family if family is not None else pick_family(rng, FAMILIES)
    u = rng.uniform
    color = _random_color(rng)
    verts = None
    if fam in _COMPOUND:
        dims, parts = _sample_parts(rng, fam)
        return Shape(fam, dims, color, parts=parts)
    if fam == "box":
        a = u(0.03, 0.24)
        b = u(0.015, 0.07) if rng.random() < 0.75 else u(0.07, 0.18)
        dims = {"a": a, "b": b, "h": u(0.015, 0.10) if rng.random() < 0.8 else u(0.10, 0.20)}
    elif fam == "cylinder_lying":
        dims = {"length": u(0.06, 0.25), "r": u(0.012, 0.04)}
    elif fam == "cylinder_standing":
        dims = {"r": u(0.015, 0.085), "h": u(0.02, 0.25)}
    elif fam == "ellipsoid":
        a = u(0.015, 0.07)
        b = a * u(0.5, 1.0)
        dims = {"a": a, "b": b, "c": min(a, b) * u(0.5, 1.0)}
    elif fam in ("l_shape", "t_shape"):
        dims = {
            "a": u(0.05, 0.18),
            "b": u(0.05, 0.15),
            "t1": u(0.012, 0.04),
            "t2": u(0.012, 0.04),
            "h": u(0.015, 0.06),
        }
    elif fam == "ring":
        r = u(0.03, 0.08)
        dims = {"r": r, "r_in": r - u(0.006, min(0.02, r - 0.018)), "h": u(0.015, 0.05)}
    elif fam == "mug":
        dims = {
            "r": u(0.03, 0.05),
            "wall": u(0.004, 0.008),
            "h": u(0.06, 0.12),
            "handle_len": u(0.02, 0.035),
            "handle_w": u(0.008, 0.014),
        }
    elif fam == "convex_polygon":
        n = int(rng.integers(5, 10))
        pts = np.stack([rng.uniform(-1, 1, 3 * n), rng.uniform(-1, 1, 3 * n)], axis=1)
        pts = pts[(pts**2).sum(1) <= 1][:n] * [u(0.03, 0.10), u(0.015, 0.06)]
        if len(pts) < 3:
            pts = np.array([[-0.03, -0.02], [0.03, -0.02], [0.0, 0.03]])
        hull = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
        verts = hull - hull.mean(axis=0)
        dims = {"h": u(0.015, 0.08)}
    elif fam == "nonconvex_polygon":
        n = int(rng.integers(6, 12))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.35, 1.0, n)
        verts = np.stack([np.cos(ang) * rad * u(0.04, 0.10), np.sin(ang) * rad * u(0.03, 0.08)], 1)
        dims = {"h": u(0.015, 0.06)}
    elif fam == "rod":
        dims = {"length": u(0.08, 0.30), "r": u(0.005, 0.012)}
    elif fam == "tool":
        dims = {
            "length": u(0.10, 0.24),
            "r": u(0.006, 0.015),
            "head_a": u(0.025, 0.06),
            "head_b": u(0.03, 0.09),
            "head_h": u(0.02, 0.045),
        }
    else:
        raise ValueError(f"unknown shape family {fam!r}; expected one of {FAMILIES}")
    return Shape(fam, dims, color, verts)


def _centred(parts: list[Part]) -> tuple[Part, ...]:
    """The parts shifted so that the bounding box of their anchor points (rod ends, slab and
    post centres) is centred on the object origin."""
    pts = np.array([q for p in parts for q in ((p.p0, p.p1) if p.kind == "rod" else (p.p0,))])
    cu, cv = (pts.min(axis=0) + pts.max(axis=0)) / 2
    return tuple(
        replace(p, p0=(p.p0[0] - cu, p.p0[1] - cv), p1=(p.p1[0] - cu, p.p1[1] - cv)) for p in parts
    )


def _furniture_edge_on(rng: np.random.Generator) -> tuple[dict[str, float], tuple[Part, ...]]:
    """A chair lying on its side with its seat upright, seen from above: the seat's edge, a
    strip (u axis) 10 to 30 cm long and 1.5 to 5 cm thick standing 8 to 25 cm tall; from
    both ends of the strip the legs (6 to 15 mm radius, 8 to 25 cm long) run across it (-v)
    in pairs one above the other (the upper one floats at the seat's top, shifted 0 to 5 cm
    on screen: the chair is not quite upright); optionally a rail between the lower legs;
    at one end the backrest's edge runs the other way (+v), a strip as thick as the seat and
    40 to 100% of its height. Real chairs in Jacquard views look like this from above: mostly
    thin parts, grasped across the legs, the rails and the edges."""
    u = rng.uniform
    sa, thick, top = u(0.10, 0.30), u(0.015, 0.05), u(0.08, 0.25)
    parts = [Part("slab", (0.0, 0.0), a=sa / 2, b=thick / 2, h0=top)]
    r_leg, leg_len = u(0.006, 0.015), u(0.08, 0.25)
    shift = u(0.0, 0.05)
    for end in (-1, 1):
        x = end * (sa / 2 - r_leg)
        for dx, base in ((0.0, 0.0), (-end * shift, max(top - 2 * r_leg, 0.0))):
            parts.append(Part("rod", (x + dx, 0.0), (x + dx, -leg_len), r=r_leg, base0=base,
                              base1=base))  # fmt: skip
    if rng.random() < 0.5:
        v = -leg_len * u(0.4, 0.8)
        parts.append(Part("rod", (-sa / 2, v), (sa / 2, v), r=r_leg * 0.7))
    ba = u(0.10, 0.30)
    side = rng.choice([-1, 1])
    parts.append(Part("slab", (side * (sa / 2 - thick / 2), ba / 2), a=thick / 2, b=ba / 2,
                      h0=top * u(0.4, 1.0)))  # fmt: skip
    return {"h_hi": top}, _centred(parts)


def _sample_parts(rng: np.random.Generator, fam: str) -> tuple[dict[str, float], tuple[Part, ...]]:
    """Dimensions and parts of a compound family (object axes: u along the longest extent).

    - ``wire_frame``: thin rods (4.5 to 10 mm radius) 15 to 55 cm long: two rails joined at the
      ends (one rail may be raised up to 6 cm, the joins then slope), optionally with rungs
      (a ladder) and knobs or feet at the ends; or a bent wire of 2 to 4 segments.
    - ``furniture``: a chair or table lying on its side: a plate 8 to 22 cm square standing
      slanted (its top rises from under 3 cm to 6 to 22 cm across it), legs (6 to 15 mm
      radius, 8 to 25 cm long) out of its corners at the plate's height there (so the upper
      ones float above the table), a rail between them or a second, lower plate (a backrest);
      or, half of the time, the same seen with its seat upright (:func:`_furniture_edge_on`).
    - ``leaning``: a disc, can or box resting at an angle: its top a plane rising from 0.4 to
      3 cm on one side to 4 to 12 cm on the other, over a 6 to 16 cm footprint.
    """
    u = rng.uniform
    parts: list[Part] = []
    if fam == "wire_frame":
        # At least 4.5 mm: a thinner rod on the table is lower than SOLID_MIN_HEIGHT (no wall).
        r = u(0.0045, 0.01)
        style = ("rails", "ladder", "bent")[int(rng.integers(3))]
        if style == "bent":
            p, heading = np.zeros(2), u(-np.pi, np.pi)
            for _ in range(int(rng.integers(2, 5))):
                q = p + u(0.06, 0.25) * np.array([math.cos(heading), math.sin(heading)])
                parts.append(Part("rod", tuple(p), tuple(q), r=r))
                p, heading = (
                    q,
                    heading + rng.choice([-1, 1]) * u(math.radians(30), math.radians(120)),
                )
        else:
            length, gap = u(0.15, 0.55), u(0.04, 0.18)
            lift = u(0.0, 0.06) if rng.random() < 0.6 else 0.0
            lo, hi = (0.0, lift) if rng.random() < 0.5 else (lift, 0.0)
            for side, base in ((-1, lo), (1, hi)):
                parts.append(
                    Part("rod", (-length / 2, side * gap / 2), (length / 2, side * gap / 2), r=r,
                         base0=base, base1=base)
                )  # fmt: skip
            n_rungs = int(rng.integers(2, 7)) if style == "ladder" else 0
            for x in np.linspace(-length / 2, length / 2, n_rungs + 2):
                parts.append(Part("rod", (x, -gap / 2), (x, gap / 2), r=r, base0=lo, base1=hi))
            if rng.random() < 0.6:  # knobs or feet at the ends of one rail
                side, base = (-1, lo) if rng.random() < 0.5 else (1, hi)
                rk, hk = u(0.01, 0.025), max(u(0.03, 0.09), base + 2 * r + 0.01)
                for x in (-length / 2, length / 2):
                    parts.append(Part("post", (x, side * gap / 2), r=rk, h=hk))
        return {"r": r}, _centred(parts)
    if fam == "furniture" and rng.random() < 0.5:
        return _furniture_edge_on(rng)
    if fam == "furniture":
        sa, sb = u(0.08, 0.22), u(0.08, 0.22)
        h_lo, h_hi = u(0.005, 0.03), u(0.06, 0.22)
        slope = (h_hi - h_lo) / sb
        parts.append(Part("slab", (0.0, 0.0), a=sa / 2, b=sb / 2, h0=(h_lo + h_hi) / 2, gv=slope))
        r_leg, leg_len = u(0.006, 0.015), u(0.08, 0.25)
        ends = [-1, 1] if rng.random() < 0.5 else [-1]
        for end in ends:
            x0 = end * sa / 2
            x1 = x0 + end * leg_len * u(0.8, 1.0)
            bases = []
            for side in (-1, 1):
                v = side * (sb / 2 - r_leg)
                base = max((h_lo + h_hi) / 2 + slope * v - 2 * r_leg, 0.0)
                parts.append(Part("rod", (x0, v), (x1, v), r=r_leg, base0=base, base1=base))
                bases.append(base)
            if rng.random() < 0.5:  # a rail between the two legs
                xm = (x0 + x1) / 2
                parts.append(
                    Part("rod", (xm, -(sb / 2 - r_leg)), (xm, sb / 2 - r_leg), r=r_leg * 0.7,
                         base0=bases[0], base1=bases[1])
                )  # fmt: skip
        if len(ends) == 1:  # a backrest: a second plate beyond the other edge, lower
            ba = u(0.08, 0.22)
            bh_hi = u(0.02, 0.08)
            parts.append(
                Part("slab", (sa / 2 + ba / 2, 0.0), a=ba / 2, b=sb / 2, h0=bh_hi / 2 + 0.002,
                     gv=(bh_hi - 0.004) / sb * rng.choice([-1, 1]))
            )  # fmt: skip
        return {"h_hi": h_hi}, _centred(parts)
    if fam == "leaning":
        round_ = rng.random() < 0.6
        a = u(0.03, 0.08)
        b = a * u(0.6, 1.0) if round_ else u(0.02, 0.07)
        h_lo, h_hi = u(0.004, 0.03), u(0.04, 0.12)
        slab = Part("slab", (0.0, 0.0), a=a, b=b, h0=(h_lo + h_hi) / 2, gu=(h_hi - h_lo) / (2 * a),
                    round=round_)  # fmt: skip
        return {"a": a, "b": b}, (slab,)
    raise ValueError(f"unknown compound family {fam!r}")


# --- placement and rendering ----------------------------------------------------------------------
@dataclass(eq=False)
class PlacedObject:
    """A shape placed in one view: image centre (row, col), yaw (rad), scale (px per metre)."""

    shape: Shape
    center: tuple[float, float]
    yaw: float
    px_per_m: float


def _object_patch(
    obj: PlacedObject, frame: tuple[int, int]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The object's heights (m) over its pixel bounding box, clipped to the frame."""
    r_px = obj.shape.radius * obj.px_per_m + 1.5
    rc, cc = obj.center
    r0, r1 = max(int(math.floor(rc - r_px)), 0), min(int(math.ceil(rc + r_px)) + 1, frame[0])
    c0, c1 = max(int(math.floor(cc - r_px)), 0), min(int(math.ceil(cc + r_px)) + 1, frame[1])
    if r0 >= r1 or c0 >= c1:
        return None
    dr = ((np.arange(r0, r1) - rc) / obj.px_per_m)[:, None]
    dc = ((np.arange(c0, c1) - cc) / obj.px_per_m)[None, :]
    cy, sy = math.cos(obj.yaw), math.sin(obj.yaw)
    u = cy * dc - sy * dr
    v = sy * dc + cy * dr
    return (slice(r0, r1), slice(c0, c1)), obj.shape.height(u, v)


def place_objects(
    shapes: list[Shape],
    camera: Camera,
    table_depth: np.ndarray,
    rng: np.random.Generator,
    tries: int = 25,
) -> list[PlacedObject]:
    """Place shapes at random image positions and yaws without overlap (rejection sampling).

    Footprints (dilated by a random gap of 2 to 15 mm) must not overlap; a shape that finds
    no free spot in ``tries`` attempts is left out (the first one always fits). Centres keep
    most of each object inside the frame.
    """
    rows, cols = camera.shape
    occupied = np.zeros(camera.shape, dtype=bool)
    placed: list[PlacedObject] = []
    for shape in shapes:
        for _ in range(tries):
            # Scale at a provisional centre, refined once at the sampled one.
            z0 = float(table_depth[rows // 2, cols // 2]) - shape.silhouette
            rad_px = shape.radius * camera.f / z0
            mr = min(0.75 * rad_px, rows / 2 - 1)
            mc = min(0.75 * rad_px, cols / 2 - 1)
            center = (rng.uniform(mr, rows - 1 - mr), rng.uniform(mc, cols - 1 - mc))
            z = float(table_depth[int(round(center[0])), int(round(center[1]))]) - shape.silhouette
            obj = PlacedObject(shape, center, rng.uniform(-np.pi, np.pi), camera.f / z)
            patch = _object_patch(obj, camera.shape)
            if patch is None:
                continue
            sl, h = patch
            foot = h > 0
            if not foot.any():
                continue
            gap = max(1, int(round(rng.uniform(0.002, 0.015) * obj.px_per_m)))
            grown = cv2.dilate(foot.astype(np.uint8), np.ones((2 * gap + 1,) * 2, np.uint8)) > 0
            if (occupied[sl] & grown).any():
                continue
            occupied[sl] |= foot
            placed.append(obj)
            break
    return placed


def render_heights(
    objects: list[PlacedObject], frame: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Height above the table (float32 m) and object labels (uint8, 0 = table, i + 1 = object i)
    of placed objects, combined by max height."""
    heights = np.zeros(frame, dtype=np.float32)
    labels = np.zeros(frame, dtype=np.uint8)
    for i, obj in enumerate(objects):
        patch = _object_patch(obj, frame)
        if patch is None:
            continue
        sl, h = patch
        higher = h > heights[sl]
        heights[sl] = np.where(higher, h, heights[sl])
        labels[sl] = np.where(higher, i + 1, labels[sl])
    return heights, labels


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]
) -> np.ndarray:
    """Unit-variance Gaussian noise low-passed with (row, col) sigmas in pixels, float32.

    Wide blurs are made at a lower resolution and resized up (same look, a fraction of the
    cost): each axis is shrunk so that its blur is ~1.5 low-res pixels.
    """
    h, w = shape
    fr, fc = max(1.0, sigma[0] / 1.5), max(1.0, sigma[1] / 1.5)
    lh, lw = max(2, math.ceil(h / fr)), max(2, math.ceil(w / fc))
    n = rng.standard_normal((lh, lw), dtype=np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigmaX=max(sigma[1] / fc, 0.3), sigmaY=max(sigma[0] / fr, 0.3))
    if (lh, lw) != (h, w):
        n = cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR)
    return n / max(float(n.std()), 1e-6)


def render_rgb(
    heights: np.ndarray,
    labels: np.ndarray,
    depth: np.ndarray,
    camera: Camera,
    colors: list[tuple[float, float, float]],
    table_color: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Lambertian shading of the height field (uint8 H x W x 3, RGB).

    Normals come from the height gradient in metres per metre (pixel gradient x px per m at
    the pixel's depth); one directional light 40 to 75 degrees above the table plus ambient
    light; the table has a low-frequency texture and soft contact shadows.
    """
    h, w = labels.shape
    px_per_m = np.float32(camera.f) / depth.astype(np.float32)
    gr, gc = np.gradient(heights.astype(np.float32))
    # Cap the slopes: a height step at a silhouette is a vertical wall, drawn dark.
    sr = np.clip(gr * px_per_m, -8, 8)
    sc = np.clip(gc * px_per_m, -8, 8)
    elev = rng.uniform(math.radians(40), math.radians(75))
    azim = rng.uniform(-np.pi, np.pi)
    lr_, lc_, lz = math.cos(elev) * math.sin(azim), math.cos(elev) * math.cos(azim), math.sin(elev)
    # Normal (-dh/drow, -dh/dcol, 1) normalised, dotted with the light (row, col, up), relative
    # to a flat surface (which keeps its base colour).
    shade = (lz - sr * lr_ - sc * lc_) / (np.sqrt(1 + sr * sr + sc * sc) * lz)
    ambient = np.float32(rng.uniform(0.3, 0.5))
    shade = ambient + (1 - ambient) * np.clip(shade, 0, 1 / lz)
    palette = np.array([table_color, *colors], dtype=np.float32)
    tex = 0.06 * _smooth_noise(rng, (h, w), (h / 20, w / 20))
    tex += 0.025 * _smooth_noise(rng, (h, w), (0.7, 0.7))
    # Soft contact shadow: the blurred object mask shifted away from the light.
    obj = labels > 0
    sigma = max(1.0, 0.01 * float(camera.f / camera.distance))
    m = np.float32([[1, 0, -lc_ * 2 * sigma], [0, 1, -lr_ * 2 * sigma]])
    shadow = cv2.warpAffine(cv2.GaussianBlur(obj.astype(np.float32), (0, 0), sigma), m, (w, h))
    shade = np.where(obj, shade * (1 + 0.5 * tex), (1 - 0.35 * shadow) * (1 + tex))
    img = palette[labels] * shade[..., None]
    img += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(0.008)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def random_table_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """A table colour: mostly light greys and beiges (as Jacquard and Cornell), some wood/dark."""
    if rng.random() < 0.7:
        g = rng.uniform(0.55, 0.9)
        tint = rng.normal(0, 0.03, 3)
        c = np.clip(g + tint, 0, 1)
    else:
        c = np.clip(
            np.array([0.55, 0.4, 0.28]) * rng.uniform(0.5, 1.4) + rng.normal(0, 0.04, 3), 0, 1
        )
    return float(c[0]), float(c[1]), float(c[2])


# --- simulated stereo sensor ----------------------------------------------------------------------
#: Depth noise of the simulated sensor: sigma = STEREO_SIGMA * z^2 (m, z in m); 3.3 mm at 1.5 m
#: like the real Jacquard stereo images (median |stereo - perfect| ~ 2.2 mm).
STEREO_SIGMA: float = 0.0015
#: Depth quantisation step = STEREO_STEP * z^2 (inverse-depth steps): 0.84 mm at 1.5 m (Jacquard).
STEREO_STEP: float = 0.00037
#: Stereo baseline (m) along +col: sets the width of occlusion shadows beside objects.
STEREO_BASELINE: float = 0.05


def simulate_stereo(
    depth: np.ndarray, labels: np.ndarray, camera: Camera, rng: np.random.Generator
) -> np.ndarray:
    """A stereo-like depth image from the perfect one: float32 metres, -1 where invalid.

    Noise and quantisation act on inverse depth (as disparity does), so both grow as z^2:
    low-frequency streaks elongated along rows (matching errors) plus fine noise, rounded to
    steps of :data:`STEREO_STEP`. Invalid pixels: the occlusion shadow of a second camera
    :data:`STEREO_BASELINE` to the side (table pixels the other view cannot see), a few
    pixels of depth discontinuities (7%) and of steep faces (slope > ~65 degrees, 10%) and of
    the object's rim (5%), and in 30% of the views 0 to 4 dropout blobs (mostly on objects,
    like specular or textureless patches). A few pixels on edges get a wrong depth between
    the two sides ("flying pixels"). The rates (generator v3) put the holes at a few percent
    of the mask, as on real Jacquard's stereo depth (v2: about 20%).
    """
    h, w = depth.shape
    z = depth.astype(np.float64)
    inv = 1.0 / z
    noise = 0.8 * _smooth_noise(rng, (h, w), (h / 150, w / 25)) + 0.6 * _smooth_noise(
        rng, (h, w), (0.5, 0.5)
    )
    inv = inv + STEREO_SIGMA * noise
    inv = np.round(inv / STEREO_STEP) * STEREO_STEP
    stereo = (1.0 / inv).astype(np.float32)

    invalid = np.zeros((h, w), dtype=bool)
    # Occlusion: pixel c is hidden from the second camera when some pixel to its left has a
    # disparity exceeding its own by more than their distance (the running max below).
    disp = camera.f * STEREO_BASELINE * inv.astype(np.float32)
    # Only rows with objects can have shadows (the table's disparity changes slowly).
    obj_rows = np.flatnonzero((labels > 0).any(axis=1))
    if len(obj_rows):
        ra, rb = int(obj_rows[0]), int(obj_rows[-1]) + 1
        sub = disp[ra:rb]
        reach = np.full(rb - ra, -np.inf, dtype=np.float32)
        for c in range(1, w):
            reach = np.maximum(reach, sub[:, c - 1]) - 1.0
            invalid[ra:rb, c] = reach > sub[:, c] + 0.5
    # Discontinuities and steep faces.
    k = np.ones((3, 3), np.uint8)
    zf = depth.astype(np.float32)
    jump = cv2.dilate(zf, k) - cv2.erode(zf, k)
    edges = jump > np.maximum(0.006, 0.004 * zf)
    invalid |= edges & (rng.random((h, w), dtype=np.float32) < 0.07)
    gr, gc = np.gradient(zf)
    slope = np.hypot(gr, gc) * camera.f / zf
    invalid |= (slope > 2.1) & (rng.random((h, w), dtype=np.float32) < 0.1)
    obj = (labels > 0).astype(np.uint8)
    rim = (obj > 0) & (cv2.erode(obj, k) == 0)
    invalid |= rim & (rng.random((h, w), dtype=np.float32) < 0.05)
    # Dropout blobs.
    blobs = np.zeros((h, w), np.uint8)
    ys, xs = np.nonzero(obj)
    for _ in range(int(rng.integers(0, 5)) if rng.random() < 0.3 else 0):
        if len(ys) and rng.random() < 0.7:
            i = int(rng.integers(len(ys)))
            cy, cx = int(ys[i]), int(xs[i])
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        axes = (
            max(1, int(rng.uniform(0.005, 0.03) * w)),
            max(1, int(rng.uniform(0.005, 0.02) * h)),
        )
        cv2.ellipse(blobs, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    invalid |= blobs > 0
    # Flying pixels on the remaining edges: a depth between the two sides.
    fly = edges & ~invalid & (rng.random((h, w), dtype=np.float32) < 0.1)
    lo = cv2.erode(zf, k)
    stereo[fly] = (lo + rng.random((h, w), dtype=np.float32) * jump)[fly]
    stereo[invalid] = -1.0
    return stereo
