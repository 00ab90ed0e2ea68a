"""Statistics for success rates: 95% intervals, paired tests, mean and spread over seeds.

- :func:`wilson_interval`: the Wilson score interval of one rate (k successes of n images),
  which stays inside [0, 1] and behaves at 0% and 100%, unlike the normal approximation.
- :func:`mcnemar_test`: the exact McNemar test of two models scored on the SAME images: only
  the discordant images count (b: A right and B wrong, c: the reverse); two-sided binomial
  p-value of min(b, c) under Binomial(b + c, 1/2).
- :func:`paired_bootstrap`: a 95% interval of the difference of two rates on the same images,
  resampling images (the pairs stay together).
- :func:`seed_image_difference`, :func:`gap_closed_interval`: a method against a baseline,
  and the share of the gap between the baseline and a reference that it closes, with 95%
  intervals that resample seeds and images (the seeds' spread is most of the noise of a
  semi-supervised comparison).
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


def _seed_image_resamples(
    base: np.ndarray, method: np.ndarray, reference: np.ndarray | None, n_boot: int, seed: int
) -> np.ndarray:
    """n_boot x 3 mean success rates of (base, method, reference) from a two-level bootstrap:
    seeds (rows) resampled with replacement, ``base`` and ``method`` together (row i of each
    is the same seed and labelled subset), ``reference`` on its own; then the images (columns,
    the same in every array) resampled once for all three. No reference: its column is 0."""
    b, m = np.asarray(base, dtype=float), np.asarray(method, dtype=float)
    r = None if reference is None else np.asarray(reference, dtype=float)
    if b.shape != m.shape or b.ndim != 2 or (r is not None and r.shape[1:] != b.shape[1:]):
        shapes = (b.shape, m.shape, None if r is None else r.shape)
        raise ValueError(f"seeds x images arrays expected, with the same images: shapes {shapes}")
    rng = np.random.default_rng(seed)
    (s, n) = b.shape
    out = np.zeros((n_boot, 3))
    for k in range(n_boot):
        rows, cols = rng.integers(0, s, s), rng.integers(0, n, n)
        out[k, 0], out[k, 1] = b[rows][:, cols].mean(), m[rows][:, cols].mean()
        if r is not None:
            out[k, 2] = r[rng.integers(0, len(r), len(r))][:, cols].mean()
    return out


def seed_image_difference(
    base: np.ndarray, method: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(rate(method) - rate(base), low, high) with a 95% interval over seeds and images (the
    two-level bootstrap of :func:`gap_closed_interval`): unlike :func:`paired_bootstrap`,
    which resamples images only, it includes the spread between seeds."""
    res = _seed_image_resamples(base, method, None, n_boot, seed)
    d = res[:, 1] - res[:, 0]
    lo, hi = np.quantile(d, [0.025, 0.975])
    return float(np.mean(method) - np.mean(base)), float(lo), float(hi)


def gap_closed_interval(
    base: np.ndarray, method: np.ndarray, reference: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(closed, low, high): ``(method - base) / (reference - base)`` of the mean success rates,
    and its 95% percentile interval from a two-level bootstrap over seeds and images (arrays
    are seeds x images of 0/1 successes; ``base`` and ``method`` paired by row).

    The ratio is undefined where a resample's gap (reference - base) is not positive; such
    resamples count as -inf for the low end and +inf for the high end, so when more than 2.5%
    of them have no gap the interval is unbounded (-inf, inf): the data cannot say how much of
    the gap is closed. ``closed`` is nan when the gap itself is not positive."""
    res = _seed_image_resamples(base, method, reference, n_boot, seed)
    gap = float(np.mean(reference) - np.mean(base))
    closed = (float(np.mean(method)) - float(np.mean(base))) / gap if gap > 0 else float("nan")
    g = res[:, 2] - res[:, 0]
    ok = g > 0
    ratio = np.divide(res[:, 1] - res[:, 0], g, out=np.zeros_like(g), where=ok)
    # No interpolation: a neighbour at +-inf would make it nan.
    lo = np.quantile(np.where(ok, ratio, -np.inf), 0.025, method="inverted_cdf")
    hi = np.quantile(np.where(ok, ratio, np.inf), 0.975, method="inverted_cdf")
    return closed, float(lo), float(hi)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
