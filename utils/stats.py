"""Statistics for success rates: 95% intervals, paired tests, mean and spread over seeds.

- :func:`wilson_interval`: the Wilson score interval of one rate (k successes of n images),
  which stays inside [0, 1] and behaves at 0% and 100%, unlike the normal approximation.
- :func:`mcnemar_test`: the exact McNemar test of two models scored on the SAME images: only
  the discordant images count (b: A right and B wrong, c: the reverse); two-sided binomial
  p-value of min(b, c) under Binomial(b + c, 1/2).
- :func:`paired_bootstrap`: a 95% interval of the difference of two rates on the same images,
  resampling images (the pairs stay together).
- :func:`gap_closed_interval`: the share of the gap between a baseline and a reference that a
  method closes, with a 95% interval that resamples seeds and images (the seeds' spread is
  most of the noise of a semi-supervised comparison).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of the rate k/n (default 95%); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"successes must be in [0, {n}], got {k}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def format_rate(k: int, n: int) -> str:
    """``85.0% [83.4, 86.5] of 2000``: the rate, its 95% Wilson interval and the image count."""
    if n == 0:
        return "- of 0"
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] of {n}"


def mcnemar_test(a: Sequence[bool], b: Sequence[bool]) -> dict[str, float]:
    """Exact McNemar test of per-image successes ``a`` and ``b`` (same images, same order).

    Returns ``a_only`` (A right, B wrong), ``b_only`` and the two-sided ``p`` value.
    """
    if len(a) != len(b):
        raise ValueError(f"paired results differ in length: {len(a)} and {len(b)}")
    a_ = np.asarray(a, dtype=bool)
    b_ = np.asarray(b, dtype=bool)
    n10 = int(np.sum(a_ & ~b_))
    n01 = int(np.sum(~a_ & b_))
    n = n10 + n01
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p": 1.0}
    k = min(n10, n01)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return {"a_only": n10, "b_only": n01, "p": min(1.0, 2.0 * tail)}


def paired_bootstrap(
    a: Sequence[bool], b: Sequence[bool], n_boot: int = 10000, seed: int = 0
) -> tuple[float, float, float]:
    """(rate(b) - rate(a), low, high): the difference and its 95% paired bootstrap interval."""
    if len(a) != len(b):
        raise ValueError(f"paired results differ in length: {len(a)} and {len(b)}")
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    return bootstrap_mean(diff, n_boot, seed)


def bootstrap_mean(
    values: Sequence[float], n_boot: int = 10000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` and its 95% percentile bootstrap interval
    (items resampled with replacement; (0, 0, 0) for no items)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 500):  # in chunks: n_boot x n indices would not fit
        idx = rng.integers(0, len(v), size=(min(500, n_boot - start), len(v)))
        means[start : start + len(idx)] = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(v.mean()), float(lo), float(hi)


def gap_closed_interval(
    base: np.ndarray, method: np.ndarray, reference: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(closed, low, high): ``(method - base) / (reference - base)`` of the mean success rates,
    and its 95% percentile interval from a two-level bootstrap: the seeds (rows) resampled
    with replacement, ``base`` and ``method`` together (row i of each is the same seed and
    labelled subset), ``reference`` on its own, then the images (columns, the same images in
    every array) resampled once for all three. Arrays are seeds x images of 0/1 successes.
    A resample whose gap is 0 counts as closing nothing (the interval then shows how unstable
    the ratio is)."""
    b, m, r = (np.asarray(a, dtype=float) for a in (base, method, reference))
    if b.shape != m.shape or b.shape[1] != r.shape[1]:
        raise ValueError(f"gap_closed_interval: shapes {b.shape}, {m.shape}, {r.shape} differ")
    gap = r.mean() - b.mean()
    closed = (m.mean() - b.mean()) / gap if gap else 0.0
    rng = np.random.default_rng(seed)
    (s, n), s_ref = b.shape, r.shape[0]
    out = np.empty(n_boot)
    for k in range(n_boot):
        rows, ref_rows = rng.integers(0, s, s), rng.integers(0, s_ref, s_ref)
        cols = rng.integers(0, n, n)
        bb, mm = b[rows][:, cols].mean(), m[rows][:, cols].mean()
        g = r[ref_rows][:, cols].mean() - bb
        out[k] = (mm - bb) / g if g else 0.0
    lo, hi = np.quantile(out, [0.025, 0.975])
    return float(closed), float(lo), float(hi)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
