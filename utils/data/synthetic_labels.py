"""Grasp labels from geometry: a parallel-jaw gripper tested against a height field.

The input is a top-down height field (metres above the table), a label image (0 = table,
k = object k) and each object's image scale (pixels per metre at its depth). A candidate grasp
is a closing line (angle a, opening direction (d_row, d_col) = (-sin a, cos a), the project
convention) and a pair of contacts on it. It is labelled positive when all of these hold:

1. Contacts: both lie on the boundary of ONE object's *grippable* footprint above a floor:
   object pixels at least :data:`SOLID_MIN_HEIGHT` above the table (so a mug's floor seen
   through its opening is not a wall) and, searched again, at least each of
   :data:`SLICE_FRACTIONS` of the object's height: a part that floats above or beside lower
   parts of the same object (a chair's upper legs, lying on its side, over and against its
   lower ones) is then a footprint of its own, grasped across if the jaws clear everything
   below it (rule 5 tests the lower parts as obstacles). Above the first floor each contact
   must also be a step down of at least :data:`SLICE_MIN_STEP` (the object 1 and 2 px
   beyond it that much below the floor), not where a sloped face crosses the floor. A grasp
   found again on a higher floor (same angle, centre and opening to the pixel) is kept once.
   Along the line the object is crossed by one or more runs; the contacts are the outer ends
   of one run or of several consecutive runs of that object, with no other object in
   between. Several runs cover a gripper spanning a hole or notch (a ring grasped
   across, the arms of a U); a single run of a wall is a rim grasp (one jaw in the hole).
2. Opening: contact distance + 2 x clearance <= max opening (metric, via the object's scale).
3. Reach: the grasp height is ``z_g = max(H - finger_length, table_clearance)`` where H is the
   highest point of the object between the contacts (the fingers reach ``finger_length`` below
   it, never into the table); each contact wall must stand at least ``min_contact_height``
   above z_g within 1 cm of the contact (so the pads touch something).
4. Antipodal: the outward normal of the footprint boundary at each contact (from the gradient
   of the object's Gaussian-smoothed footprint, sigma 1 px, sampled at the boundary point)
   lies within the friction cone ``atan(friction)`` of the closing direction at that contact.
5. Collision: each jaw's swept region, from the contact outward over ``clearance +
   finger_thickness`` and over the jaw size across, is lower than z_g everywhere: the table,
   other objects, and this object's other parts (a T's bar, a mug's handle). This object's
   own contact face may enter the region only within a wedge of slope ``friction`` (at row
   offset s from the closing line, up to 1 + |s| x friction px beyond the contact): a face
   oblique to the jaw within the friction cone, which the closing jaw aligns with; without
   this tolerance only lines exactly perpendicular to an edge would pass. Each grasp keeps
   the jaw sizes of ``gripper.jaw_sizes`` that pass; a grasp needs at least the smallest.

The search runs per object over all angles at once: a crop around the object (padded by the
jaws' reach) is rotated (nearest neighbour) once per angle so the closing direction is the
+col axis, every ``row_spacing`` metres a row is a closing line, runs are found with array
ops over all lines of all angles together, and contacts are mapped back to the original frame
exactly (the rotation itself adds at most ~0.7 px of position error). Lines start at a
different row offset per angle so neighbouring angles interleave.
Written rectangles: centre = midpoint of the contacts, angle = the line's angle, length =
contact distance + 2 x clearance (it spans the object, like Jacquard's w), width = jaw size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from utils.grasp import GraspRectangles, wrap_angle

#: Object pixels lower than this (m) are not grippable walls (a mug's floor, thin plates).
SOLID_MIN_HEIGHT: float = 0.008
#: Further floors of the footprint search, as fractions of each object's height (rule 1).
SLICE_FRACTIONS: tuple[float, ...] = (1 / 3, 2 / 3)
#: A floor is searched only if it lies at least this far (m) above the one below it.
SLICE_MIN_STEP: float = 0.01
#: Wall height above the grasp height is looked for within this distance of a contact (m).
CONTACT_DEPTH: float = 0.01
#: Heights outside the analysed crop: forbidden for jaws.
_FORBIDDEN = np.float32(1e3)
_OUTSIDE = 255


@dataclass(frozen=True)
class GripperModel:
    """A parallel-jaw gripper; all lengths in metres.

    Defaults: a Robotiq 2F-140-like hand. ``max_opening`` 0.14 m is the 2F-140 stroke; it is
    chosen over the 2F-85's 0.085 m because Jacquard's labels reach openings of 13-21 cm
    (measured on the shared samples in units of their 1 cm jaw step), and a network trained
    here should propose wide grasps too. :data:`ROBOTIQ_2F85` is the smaller hand.
    ``jaw_sizes`` are Jacquard's jaw sizes (1, 2, 3, 4 and 6 cm, its h column).
    ``finger_thickness`` is the jaw's extent along the closing direction, ``clearance`` the
    gap opened beyond each contact before closing (also added to the written opening),
    ``finger_length`` how far below the local top of the object the fingertips can reach,
    ``min_contact_height`` the wall height needed above the fingertips, ``table_clearance``
    how close to the table the fingertips may go, and ``friction`` the Coulomb coefficient
    (friction cone half-angle atan(0.5) = 26.6 degrees).
    """

    max_opening: float = 0.14
    jaw_sizes: tuple[float, ...] = (0.01, 0.02, 0.03, 0.04, 0.06)
    finger_thickness: float = 0.01
    clearance: float = 0.005
    finger_length: float = 0.04
    min_contact_height: float = 0.005
    table_clearance: float = 0.003
    friction: float = 0.5

    def __post_init__(self) -> None:
        if not self.jaw_sizes or list(self.jaw_sizes) != sorted(self.jaw_sizes):
            raise ValueError(
                f"jaw_sizes must be a non-empty increasing tuple, got {self.jaw_sizes}"
            )
        if min(self.max_opening, self.finger_thickness, self.finger_length, self.friction) <= 0:
            raise ValueError(f"gripper lengths and friction must be > 0: {self}")

    @property
    def friction_angle(self) -> float:
        """Half-angle of the friction cone, radians."""
        return math.atan(self.friction)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["jaw_sizes"] = list(self.jaw_sizes)
        return d


#: The default gripper (see :class:`GripperModel`).
DEFAULT_GRIPPER = GripperModel()
#: A Robotiq 2F-85-like hand (0.085 m stroke), for labels of a smaller gripper.
ROBOTIQ_2F85 = GripperModel(max_opening=0.085)


@dataclass
class GraspLabels:
    """Grasps found in one image (pixels, (row, col); angles in radians, project convention).

    ``contacts`` (N x 2 x 2): the two contact points on the footprint boundary, the first one
    on the -opening side. ``openings``: rectangle lengths (contact distance + 2 x clearance).
    ``jaw_px`` (N x J): each gripper jaw size in pixels at the grasp's object scale;
    ``jaw_ok`` (N x J): which of them are collision-free. ``objects``: label of the grasped
    object (1-based, as the label image). ``floors``: the height (m) above which the object's
    pixels formed the footprint the grasp was found on (rule 1 of the module doc).
    """

    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    angles: np.ndarray = field(default_factory=lambda: np.zeros(0))
    openings: np.ndarray = field(default_factory=lambda: np.zeros(0))
    contacts: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))
    jaw_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    jaw_ok: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    objects: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    floors: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.centers)

    def subset(self, index: np.ndarray) -> GraspLabels:
        return GraspLabels(
            self.centers[index],
            self.angles[index],
            self.openings[index],
            self.contacts[index],
            self.jaw_px[index],
            self.jaw_ok[index],
            self.objects[index],
            self.floors[index],
        )

    def rectangles(self, jaw: str | int = "all") -> GraspRectangles:
        """Rectangles: ``"all"`` one per grasp and collision-free jaw size, grouped per grasp
        (Jacquard's h rows); ``"largest"`` the largest free jaw per grasp; an int j: jaw size
        j where free, else the largest free one below it."""
        if len(self) == 0:
            return GraspRectangles()
        if jaw == "all":
            g, j = np.nonzero(self.jaw_ok)  # row-major: grasp by grasp, jaws increasing
            widths = self.jaw_px[g, j]
        else:
            n_free = self.jaw_ok.sum(axis=1)
            top = n_free - 1 if jaw == "largest" else np.minimum(int(jaw), n_free - 1)
            g = np.arange(len(self))
            widths = self.jaw_px[g, top]
        return GraspRectangles.from_grasps(
            self.centers[g], self.angles[g], self.openings[g], widths
        )


def _concat(parts: list[GraspLabels], n_jaws: int) -> GraspLabels:
    if not parts:
        empty = GraspLabels()
        empty.jaw_px = np.zeros((0, n_jaws))
        empty.jaw_ok = np.zeros((0, n_jaws), dtype=bool)
        return empty
    return GraspLabels(
        *(np.concatenate([getattr(p, k) for p in parts]) for k in GraspLabels.__dataclass_fields__)
    )


def _bilinear(img: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` (..., H, W) at float (rows, cols), clamped to the image."""
    h, w = img.shape[-2:]
    r = np.clip(rows, 0, h - 1.000001)
    c = np.clip(cols, 0, w - 1.000001)
    r0 = np.floor(r).astype(np.int64)
    c0 = np.floor(c).astype(np.int64)
    fr, fc = r - r0, c - c0
    return (
        img[..., r0, c0] * (1 - fr) * (1 - fc)
        + img[..., r0 + 1, c0] * fr * (1 - fc)
        + img[..., r0, c0 + 1] * (1 - fr) * fc
        + img[..., r0 + 1, c0 + 1] * fr * fc
    )


def find_grasps(
    heights: np.ndarray,
    labels: np.ndarray,
    px_per_m: np.ndarray | dict[int, float],
    gripper: GripperModel = DEFAULT_GRIPPER,
    angle_step: float = math.radians(15.0),
    row_spacing: float = 0.005,
    max_runs: int = 3,
    slice_fractions: tuple[float, ...] = SLICE_FRACTIONS,
) -> GraspLabels:
    """All positive grasps of a height field (see the module doc for the rules).

    Args:
        heights: H x W height above the table, metres.
        labels: H x W int labels, 0 = table, k >= 1 = object k.
        px_per_m: image scale of each object (indexable by label k), pixels per metre.
        gripper: the gripper model.
        angle_step: spacing of the closing-line angles, radians (angles cover [-pi/2, pi/2)).
        row_spacing: spacing of parallel closing lines, metres (at least 1 pixel).
        max_runs: most consecutive runs of one object a grasp may span.
        slice_fractions: the higher floors, as fractions of each object's height (rule 1;
            ``()``: the first floor only, generator v3's labeller).

    Returns grasps ordered by object, then angle, then line, then run pair.
    """
    heights = np.asarray(heights, dtype=np.float32)
    labels = np.asarray(labels)
    solid = (labels > 0) & (heights >= SOLID_MIN_HEIGHT)
    solid_labels = np.where(solid, labels, 0).astype(np.uint8)
    parts = []
    for k in np.unique(solid_labels):
        if k == 0:
            continue
        found = []
        for floor in floors_of(float(heights[solid_labels == k].max()), slice_fractions):
            # Object k above its floor; the other objects' footprints as they are.
            level = solid_labels.copy()
            level[(solid_labels == k) & (heights < floor)] = 0
            g = _object_grasps(
                heights, level, int(k), float(px_per_m[int(k)]), gripper, angle_step,
                row_spacing, max_runs, floor,
            )  # fmt: skip
            if g is not None:
                found.append(g)
        if found:
            parts.append(_unique(_concat(found, len(gripper.jaw_sizes))))
    return _concat(parts, len(gripper.jaw_sizes))


def floors_of(top: float, fractions: tuple[float, ...] = SLICE_FRACTIONS) -> list[float]:
    """The floors (m) of an object ``top`` metres high: :data:`SOLID_MIN_HEIGHT`, then each of
    ``fractions`` of ``top`` that lies :data:`SLICE_MIN_STEP` above the last."""
    floors = [SOLID_MIN_HEIGHT]
    for f in fractions:
        if f * top >= floors[-1] + SLICE_MIN_STEP:
            floors.append(f * top)
    return floors


def _unique(labels: GraspLabels) -> GraspLabels:
    """The grasps of one object once: a grasp found again on a higher floor (the same angle,
    centre and opening to the nearest pixel) is dropped, so that a floor which changes
    nothing adds nothing; order (floor by floor) is kept."""
    if len(labels) < 2:
        return labels
    key = np.stack(
        [np.round(labels.angles, 6), *np.round(labels.centers.T), np.round(labels.openings)],
        axis=1,
    )
    _, first = np.unique(key, axis=0, return_index=True)
    return labels.subset(np.sort(first))


def _object_grasps(
    heights: np.ndarray,
    solid_labels: np.ndarray,
    k: int,
    s: float,
    g: GripperModel,
    angle_step: float,
    row_spacing: float,
    max_runs: int,
    floor: float = SOLID_MIN_HEIGHT,
) -> GraspLabels | None:
    """Grasps of object ``k`` (image scale ``s`` px per metre) among all objects' walls, on its
    footprint above ``floor`` (m; ``solid_labels`` holds that footprint for object k)."""
    jaws_m = np.asarray(g.jaw_sizes, dtype=np.float64)
    # Crop around the object, padded by the farthest reach of a jaw; other objects inside the
    # crop take part in the collision tests.
    rr, cc = np.nonzero(solid_labels == k)
    pad = int(math.ceil((g.clearance + g.finger_thickness + jaws_m[-1] / 2) * s * 1.5)) + 3
    h_img, w_img = heights.shape
    r0, r1 = max(rr.min() - pad, 0), min(rr.max() + pad + 1, h_img)
    c0, c1 = max(cc.min() - pad, 0), min(cc.max() + pad + 1, w_img)
    # Beyond the image edge nothing is known: jaws may not go there.
    at_edge = r0 == 0 or c0 == 0 or r1 == h_img or c1 == w_img
    border = float(_FORBIDDEN) if at_edge else 0.0
    hc = cv2.copyMakeBorder(heights[r0:r1, c0:c1], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=border)
    lc = cv2.copyMakeBorder(solid_labels[r0:r1, c0:c1], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    r0 -= 1
    c0 -= 1
    ch, cw = hc.shape

    # Outward footprint normals: gradient of the object's smoothed grippable footprint.
    sm = cv2.GaussianBlur((lc == k).astype(np.float32), (0, 0), 1.0)
    grad = np.stack(np.gradient(sm))  # (2, ch, cw): d/drow, d/dcol

    ctr_r, ctr_c = (ch - 1) / 2.0, (cw - 1) / 2.0
    half = int(math.ceil(math.hypot(ch, cw) / 2)) + 1
    side = 2 * half + 1
    stride = max(1, int(round(row_spacing * s)))
    lj = max(1, int(math.ceil((g.clearance + g.finger_thickness) * s)))
    s_half = int(math.ceil(jaws_m[-1] / 2 * s)) + 1
    offs = np.arange(-s_half, s_half + 1)
    slack = np.floor(np.abs(offs) * g.friction).astype(np.int64)[None, :]
    jaw_px = jaws_m * s
    cos_fc = math.cos(g.friction_angle)
    n_in = max(1, int(math.ceil(CONTACT_DEPTH * s)))
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP

    # Rotated frames, one per angle a: canvas point (r', c') is crop point
    # ctr + (r' - half) * (cos a, sin a) + (c' - half) * d, d = (-sin a, cos a) the opening
    # direction (row, col), so canvas rows are closing lines. All angles are then processed as
    # one stack (A, side, side).
    angles = np.arange(-np.pi / 2, np.pi / 2 - 1e-9, angle_step)
    cos_a, sin_a = np.cos(angles), np.sin(angles)
    lr = np.empty((len(angles), side, side), dtype=np.uint8)
    hr = np.empty((len(angles), side, side), dtype=np.float32)
    for ai, (ca, sa) in enumerate(zip(cos_a, sin_a, strict=True)):
        # As cv2's inverse map (x, y) <- (x', y'), x = col, y = row.
        m = np.array(
            [
                [ca, sa, ctr_c - half * ca - half * sa],
                [-sa, ca, ctr_r + half * sa - half * ca],
            ]
        )
        lr[ai] = cv2.warpAffine(lc, m, (side, side), flags=flags, borderValue=_OUTSIDE)
        hr[ai] = cv2.warpAffine(hc, m, (side, side), flags=flags, borderValue=float(_FORBIDDEN))
    lr[lr == _OUTSIDE] = 0  # outside the crop: no wall (its heights forbid jaws anyway)

    # Closing lines: every stride-th row that crosses the object (the offset varies by angle).
    row_ids = np.arange(side)
    use = (lr == k).any(axis=2) & (
        (row_ids[None, :] - np.arange(len(angles))[:, None]) % stride == 0
    )
    line_a, line_r = np.nonzero(use)
    if len(line_a) == 0:
        return None
    # Runs of equal non-zero labels along all lines at once; a zero column after each line
    # stops runs at the line end.
    width = side + 1
    lab = np.zeros((len(line_a), width), dtype=np.uint8)
    lab[:, :side] = lr[line_a, line_r]
    flat = lab.ravel()
    before = np.concatenate([[0], flat[:-1]])
    after = np.concatenate([flat[1:], [0]])
    starts = np.flatnonzero((flat != 0) & (flat != before))
    ends = np.flatnonzero((flat != 0) & (flat != after))
    run_line = starts // width
    run_c0 = starts % width
    run_c1 = ends % width
    run_lab = flat[starts]
    hrow = np.zeros((len(line_a), width), dtype=np.float32)
    hrow[:, :side] = hr[line_a, line_r]
    bounds = np.empty(2 * len(starts), dtype=np.int64)
    bounds[0::2], bounds[1::2] = starts, ends + 1
    run_max = np.maximum.reduceat(hrow.ravel(), bounds)[0::2]

    # 1. Candidate contact pairs: runs i..i+n of this object on one line, nothing between.
    cand_i, cand_j, cand_h = [], [], []
    n_runs = len(starts)
    for n in range(max_runs):
        i = np.arange(n_runs - n)
        ok = (run_line[i] == run_line[i + n]) & (run_lab[i] == k)
        hmax = run_max[i]
        for t in range(1, n + 1):
            ok &= run_lab[i + t] == k
            hmax = np.maximum(hmax, run_max[i + t])
        cand_i.append(i[ok])
        cand_j.append(i[ok] + n)
        cand_h.append(hmax[ok])
    ci, cj = np.concatenate(cand_i), np.concatenate(cand_j)
    hb = np.concatenate(cand_h).astype(np.float64)
    ang, row = line_a[run_line[ci]], line_r[run_line[ci]]
    cl, cr = run_c0[ci], run_c1[cj]

    # 2. Opening.
    opening = (cr - cl + 1) + 2 * g.clearance * s
    ok = opening <= g.max_opening * s
    # 3. Reach: the fingertips' height, and a wall above it within CONTACT_DEPTH.
    zg = np.maximum(hb - g.finger_length, g.table_clearance)
    t = np.arange(n_in)
    inner = t[None, :] < (cr - cl + 1)[:, None]
    a2, r2 = ang[:, None], row[:, None]
    wl = np.where(inner, hr[a2, r2, np.minimum(cl[:, None] + t, side - 1)], 0).max(axis=1)
    wr = np.where(inner, hr[a2, r2, np.maximum(cr[:, None] - t, 0)], 0).max(axis=1)
    ok &= np.minimum(wl, wr) >= zg + g.min_contact_height
    if floor > SOLID_MIN_HEIGHT:
        # Above the first floor a contact must be a step down, not where a sloped face crosses
        # the floor: the object 1 and 2 px beyond it lies SLICE_MIN_STEP below the floor.
        drop = floor - SLICE_MIN_STEP
        for x in (cl - 1, cl - 2, cr + 1, cr + 2):
            ok &= hr[ang, row, np.clip(x, 0, side - 1)] <= drop
    if not ok.any():
        return None
    ang, row, cl, cr, opening, zg = (x[ok] for x in (ang, row, cl, cr, opening, zg))

    # 4. Antipodal: contact points on the boundary, back in crop coordinates.
    ca, sa = cos_a[ang], sin_a[ang]
    rel_r = row - half
    pl = (ctr_r + rel_r * ca - (cl - 0.5 - half) * sa, ctr_c + rel_r * sa + (cl - 0.5 - half) * ca)
    pr = (ctr_r + rel_r * ca - (cr + 0.5 - half) * sa, ctr_c + rel_r * sa + (cr + 0.5 - half) * ca)
    gl = _bilinear(grad, *pl)  # (2, N): d/drow, d/dcol
    gr = _bilinear(grad, *pr)
    nl = np.hypot(gl[0], gl[1])
    nr = np.hypot(gr[0], gr[1])
    # The outward normal is -grad; at the first contact it must face -d, at the second +d.
    dl = -sa * gl[0] + ca * gl[1]
    dr = -sa * gr[0] + ca * gr[1]
    ok = (nl > 1e-4) & (nr > 1e-4) & (dl >= cos_fc * nl) & (-dr >= cos_fc * nr)
    if not ok.any():
        return None
    ang, row, cl, cr, opening, zg = (x[ok] for x in (ang, row, cl, cr, opening, zg))
    pl = (pl[0][ok], pl[1][ok])
    pr = (pr[0][ok], pr[1][ok])

    # 5. Jaw collisions, in two parts. Other objects (and the forbidden border): the max height
    # over the swept strip along each line (a window of lj px starting at x: anchor 0) of the
    # heights without this object's walls, looked up at each row offset s across the jaw; a
    # 1 x lj kernel keeps rows independent, so all angles go through one dilation. This object:
    # its wall may stick out t px beyond the contact inside the strip only within the wedge
    # t <= 1 + |s| * friction, i.e. an oblique face that the closing jaw aligns with (its
    # normal is inside the friction cone at the contact); other parts of the object (a T's
    # bar, a mug's handle) reach farther and block the jaw.
    # Everything below only looks at the band of rows and columns the jaws can reach.
    ra, rb = max(int(row.min()) - s_half, 0), min(int(row.max()) + s_half + 1, side)
    c_a, c_b = max(int(cl.min()) - lj, 0), min(int(cr.max()) + lj + 1, side)
    n_c = c_b - c_a
    lr_b, hr_b = lr[:, ra:rb, c_a:c_b], hr[:, ra:rb, c_a:c_b]
    strip = cv2.dilate(
        np.where(lr_b == k, np.float32(0), hr_b).reshape(-1, n_c),
        np.ones((1, lj), np.uint8),
        anchor=(0, 0),
        borderType=cv2.BORDER_CONSTANT,
        borderValue=float(_FORBIDDEN),
    ).reshape(hr_b.shape)
    rows_j = row[:, None] + offs[None, :]
    free = (rows_j >= 0) & (rows_j < side)
    rj = np.clip(rows_j - ra, 0, rb - ra - 1)
    a2 = ang[:, None]
    for x0 in (cl - lj, cr + 1):
        inside = (x0 >= 0) & (x0 + lj <= side)
        xc = np.clip(x0 - c_a, 0, n_c - 1)[:, None]
        free &= inside[:, None] & (strip[a2, rj, xc] < zg[:, None])
    # Own wall pixels beyond the wedge, counted with a prefix sum along lines. Left jaw:
    # columns [cl - lj, cl - 2 - slack]; right jaw: [cr + 2 + slack, cr + lj] (slack = the
    # allowed protrusion beyond 1 px).
    own = np.zeros((len(angles), rb - ra, n_c + 1), dtype=np.int32)
    np.cumsum(lr_b == k, axis=2, out=own[:, :, 1:])
    a_l = np.clip(cl[:, None] - lj - c_a, 0, n_c)
    b_l = np.clip(cl[:, None] - 1 - slack - c_a, a_l, n_c)
    a_r = np.clip(cr[:, None] + 1 + slack - c_a, 0, n_c)
    b_r = np.clip(cr[:, None] + lj + 1 - c_a, a_r, n_c)
    free &= own[a2, rj, b_l] == own[a2, rj, a_l]
    free &= own[a2, rj, b_r] == own[a2, rj, a_r]
    # First blocked row offset on either side of the line: jaws narrower than twice it fit.
    m_free = np.where(free, s_half + 1, np.abs(offs)[None, :]).min(axis=1)
    jaw_ok = jaw_px[None, :] < 2 * m_free[:, None]
    ok = jaw_ok[:, 0]
    if not ok.any():
        return None
    contacts = np.stack(
        [np.stack([pl[0][ok], pl[1][ok]], 1), np.stack([pr[0][ok], pr[1][ok]], 1)], axis=1
    ) + np.array([r0, c0], dtype=np.float64)
    n_ok = int(ok.sum())
    return GraspLabels(
        centers=contacts.mean(axis=1),
        angles=np.asarray(wrap_angle(angles[ang[ok]]), dtype=np.float64).reshape(-1),
        openings=opening[ok].astype(np.float64),
        contacts=contacts,
        jaw_px=np.broadcast_to(jaw_px, (n_ok, len(jaw_px))).copy(),
        jaw_ok=jaw_ok[ok],
        objects=np.full(n_ok, k, dtype=np.int64),
        floors=np.full(n_ok, floor),
    )


def thin_grasps(labels: GraspLabels, max_per_object: int) -> GraspLabels:
    """At most ``max_per_object`` grasps per object, evenly spaced in the found order (which is
    by angle, then line), so every angle keeps its share. Deterministic."""
    if len(labels) == 0 or max_per_object <= 0:
        return labels
    keep = []
    for k in np.unique(labels.objects):
        idx = np.flatnonzero(labels.objects == k)
        if len(idx) > max_per_object:
            idx = idx[np.linspace(0, len(idx) - 1, max_per_object).round().astype(np.int64)]
        keep.append(idx)
    return labels.subset(np.sort(np.concatenate(keep)))
