"""Property-based tests (hypothesis): the grasp-file parsers give a clear error or a valid
result for any input, and the rectangle geometry keeps its invariants on any rectangles,
degenerate ones included. Example counts are fixed (``FUZZ``) and reported in the README."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils.grasp import GraspRectangle, GraspRectangles, iou_many

#: Examples per property, and no deadline: a 2-core CI machine is slow and noisy.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _valid(g: GraspRectangles) -> None:
    assert g.points.ndim == 3 and g.points.shape[1:] == (4, 2)
    assert np.isfinite(g.points).all()


# --- parsers -------------------------------------------------------------------------------------
jacquard_field = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.text(alphabet="0123456789.-+eE;nNaIif ", max_size=8),
)
jacquard_line = st.one_of(
    st.lists(jacquard_field, min_size=5, max_size=5).map(";".join),
    st.lists(jacquard_field, min_size=0, max_size=7).map(";".join),
    st.text(max_size=40),
)


@FUZZ
@given(st.lists(jacquard_line, max_size=12))
def test_jacquard_lines_parse_or_fail_clearly(lines):
    try:
        g = GraspRectangles.from_jacquard_lines(lines, source="fuzz.txt")
    except ValueError as e:
        assert str(e).startswith("fuzz.txt:") and "expected 'x;y;theta;w;h'" in str(e)
        return
    _valid(g)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, value in edits:
        if not b:
            break
        b[pos % len(b)] = value
    return bytes(b)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6)


#: (folder, file pattern, the name to write the mutant as, its loader) per real format.
REAL_FORMATS = {
    "jacquard": ("jacquard_samples", "*_grasps.txt", "mutated_grasps.txt",
                 GraspRectangles.load_from_jacquard_file),
    "cornell": ("cornell_samples", "pcd*cpos.txt", "pcd0000cpos.txt",
                GraspRectangles.load_from_cornell_file),
}  # fmt: skip


@pytest.mark.parametrize("fmt", list(REAL_FORMATS))
@FUZZ
@given(edits=edits, cut=st.integers(0, 400))
def test_mutated_real_file_parses_or_fails_naming_it(fmt, shared_data, tmp_path, edits, cut):
    folder, pattern, name, load = REAL_FORMATS[fmt]
    source = sorted((shared_data / folder).rglob(pattern))[0].read_bytes()
    path = tmp_path / name
    path.write_bytes(_mutate(source, edits)[: max(0, len(source) - cut)])
    try:
        g = load(path)
    except ValueError as e:
        assert str(e).startswith(str(path)), e
        return
    _valid(g)


# --- geometry --------------------------------------------------------------------------------------
coord = st.floats(-1e4, 1e4, allow_nan=False)
size = st.one_of(st.just(0.0), st.floats(0, 300, allow_nan=False))
angle = st.floats(-math.pi, math.pi, allow_nan=False)


@st.composite
def rectangles(draw) -> GraspRectangle:
    g = GraspRectangles.from_grasps(
        np.array([[draw(coord), draw(coord)]]), np.array([draw(angle)]),
        np.array([draw(size)]), np.array([draw(size)]),
    )  # fmt: skip
    return g[0]


@FUZZ
@given(rectangles(), rectangles(), st.tuples(coord, coord))
def test_iou_symmetric_bounded_and_translation_invariant(a, b, shift):
    ab, ba = a.iou(b), b.iou(a)
    assert 0.0 <= ab <= 1.0 and ab == pytest.approx(ba, abs=1e-9)
    if min(a.length * a.width, b.length * b.width) < 1.0:
        return  # under a square pixel, moving by 1e4 px rounds the area away: ill-conditioned
    moved = a.affine(np.array([[1.0, 0, shift[0]], [0, 1.0, shift[1]]]))
    other = b.affine(np.array([[1.0, 0, shift[0]], [0, 1.0, shift[1]]]))
    assert moved.iou(other) == pytest.approx(ab, abs=1e-6)


@FUZZ
@given(rectangles())
def test_a_rectangle_with_area_has_iou_one_with_itself(a):
    area = a.length * a.width
    if area > 1e-6:
        assert a.iou(a) == pytest.approx(1.0, abs=1e-9)
    else:  # (near) zero area: ill-conditioned, only the range is guaranteed
        assert 0.0 <= a.iou(a) <= 1.0


@FUZZ
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=8, max_size=8),
    rectangles(),
)
def test_degenerate_corners_never_crash_and_stay_in_range(corners, b):
    """Any corners at all (collinear, NaN, infinite, 1e308): IoU is a number in [0, 1]."""
    a = GraspRectangle(np.array(corners, dtype=np.float64).reshape(4, 2))
    with np.errstate(all="ignore"):
        for value in (a.iou(b), b.iou(a), *iou_many(a, GraspRectangles([b, b]))):
            assert 0.0 <= value <= 1.0
