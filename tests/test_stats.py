"""Intervals and paired tests against textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utils.evaluation import EvaluationResults, ImageResult
from utils.stats import (
    bootstrap_mean,
    format_rate,
    gap_closed_interval,
    mcnemar_test,
    mean_std,
    paired_bootstrap,
    seed_image_difference,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (8, 10, 0.4902, 0.9433),
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),  # upper = z^2 / (n + z^2)
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_known_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-4) and got[1] == pytest.approx(hi, abs=1e-4)


def test_wilson_interval_edges_and_format():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    assert format_rate(8, 10) == "80.0% [49.0, 94.3] of 10"
    res = EvaluationResults()
    for i, ok in enumerate([True] * 8 + [False] * 2):
        res.add(str(i), ImageResult(ok, 0.5 if ok else 0.1))
    assert res.summary()["success_ci95"] == pytest.approx([0.4902, 0.9433], abs=1e-4)
    assert res.describe() == "80.0% [49.0, 94.3] of 10"


def test_mcnemar_exact_textbook_case():
    # 10 images only A gets right, 2 only B does, 88 both or neither: p = 2 P(X <= 2), X ~ B(12, 1/2)
    a = [True] * 10 + [False] * 2 + [True] * 50 + [False] * 38
    b = [False] * 10 + [True] * 2 + [True] * 50 + [False] * 38
    out = mcnemar_test(a, b)
    assert out["a_only"] == 10 and out["b_only"] == 2
    assert out["p"] == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    assert mcnemar_test(a, a)["p"] == 1.0
    with pytest.raises(ValueError, match="length"):
        mcnemar_test(a, b[:-1])


def test_paired_bootstrap_constructed_cases():
    assert paired_bootstrap([False] * 20, [True] * 20) == (1.0, 1.0, 1.0)
    a = [True, False] * 100
    diff, lo, hi = paired_bootstrap(a, a)
    assert diff == lo == hi == 0.0
    # B wins 30 of 200 images and loses none: +15 points, interval around it and above 0.
    b = [True] * 30 + a[30:]
    a2 = [False] * 30 + a[30:]
    diff, lo, hi = paired_bootstrap(a2, b)
    assert diff == pytest.approx(0.15) and 0.09 < lo < 0.15 < hi < 0.21


def test_bootstrap_mean_of_one_sample():
    """The interval of a plain mean: none for a constant, about the Wald width for a
    proportion, and the paired test is the same bootstrap on the differences."""
    assert bootstrap_mean([1.0] * 18) == (1.0, 1.0, 1.0)
    assert bootstrap_mean([]) == (0.0, 0.0, 0.0)
    x = [1.0] * 14 + [0.0] * 4  # 14 of 18 views
    mean, lo, hi = bootstrap_mean(x)
    half = 1.96 * (mean * (1 - mean) / len(x)) ** 0.5
    assert mean == pytest.approx(14 / 18) and lo < mean < hi <= 1.0
    assert (hi - lo) / 2 == pytest.approx(half, abs=0.03)
    a, b = [True, False, True] * 10, [True, True, False] * 10
    diffs = [float(y) - float(z) for y, z in zip(b, a, strict=True)]
    assert paired_bootstrap(a, b) == bootstrap_mean(diffs)


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)


def test_gap_closed_interval_known_cases():
    """Half the gap closed by construction; the interval holds the value, and widens when
    the method's seeds disagree; no gap at all: nan and an unbounded interval."""
    rng = np.random.default_rng(0)
    n = 2000
    base = np.zeros((3, n), bool)
    base[:, : int(0.80 * n)] = True  # 80% for every seed
    ref = np.zeros((3, n), bool)
    ref[:, : int(0.84 * n)] = True  # 84%
    method = np.zeros((3, n), bool)
    method[:, : int(0.82 * n)] = True  # 82%: half the gap
    closed, lo, hi = gap_closed_interval(base, method, ref)
    assert closed == pytest.approx(0.5) and lo <= 0.5 <= hi
    assert hi - lo < 0.35  # 2,000 images, nested successes: image noise only
    noisy = method.copy()
    noisy[0] = rng.random(n) < 0.78  # one seed far below: the interval widens
    noisy[1] = rng.random(n) < 0.86
    c2, lo2, hi2 = gap_closed_interval(base, noisy, ref)
    assert hi2 - lo2 > hi - lo
    closed, lo, hi = gap_closed_interval(base, method, base)  # no gap to close
    assert math.isnan(closed) and (lo, hi) == (-math.inf, math.inf)
    with pytest.raises(ValueError, match="shapes"):
        gap_closed_interval(base, method[:2], ref)


def test_seed_resampling_keeps_baseline_and_method_paired():
    """Seeds whose subsets differ a lot (a shared per-seed offset) but where the method is
    always 2 points up: paired resampling keeps the difference's interval narrow, and it is
    wider than the images-only one when the method's gain varies by seed."""
    rng = np.random.default_rng(1)
    n, offsets = 2000, [0.70, 0.80, 0.90, 0.75, 0.85]
    base = np.stack([rng.random(n) < p for p in offsets])
    method = base.copy()
    for row in method:  # 2 points more images right in every seed
        row[np.flatnonzero(~row)[: int(0.02 * n)]] = True
    diff, lo, hi = seed_image_difference(base, method)
    assert diff == pytest.approx(0.02) and 0.015 < lo <= diff <= hi < 0.025
    ref = np.stack([rng.random(n) < 0.95 for _ in offsets])
    closed, lo, hi = gap_closed_interval(base, method, ref)
    assert 0 < lo <= closed <= hi < 0.3  # unpaired, the offsets would swamp a 2-point gain
    varied = base.copy()
    for row, gain in zip(varied, [0.06, -0.02, 0.04, 0.0, 0.02], strict=True):
        flip = np.flatnonzero(~row if gain > 0 else row)[: int(abs(gain) * n)]
        row[flip] = gain > 0
    d2, lo2, hi2 = seed_image_difference(base, varied)
    _, ilo, ihi = paired_bootstrap(base.mean(0), varied.mean(0))
    assert d2 == pytest.approx(0.02) and hi2 - lo2 > ihi - ilo
