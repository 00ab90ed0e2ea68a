"""The synthetic benchmark set: a large, fixed, held-out set that every run and table scores.

It is the synthetic generator's output for a seed that no training set uses
(:data:`BENCHMARK_SEED`; the built-in training sets use seed 0, and the generator's command
line refuses this seed), so its objects are never seen in training, by construction: object
set i of a dataset draws everything from ``numpy.random.default_rng([seed, i])``. By default
2,000 images of 400 object sets (5 views each), 300 px, Jacquard layout; generated once
(about 80 s on one core, about 0.8 GB) into ``data/benchmark/synthetic_v<version>_n<images>``
and reused. The folder name carries the generator version: a new generator makes a new
benchmark, never a silently different one under the old name.

``--benchmark-images N`` < 2000 scores the first N images (the first N/5 object sets: the same
images as the full set's first N, since sets are independent of the set count). Only the full
set is the README's benchmark.

The *confirmation set* is a second held-out set of the same size and generator, of another
seed (:data:`CONFIRMATION_SEED`: other objects), in ``data/benchmark/confirmation_v<version>_n<images>``.
It is scored only to confirm a choice made on the benchmark: a variant picked among several by
its benchmark score is flattered there by the pick, and not on a set the pick never saw
(``benchmarks/mixmatch_table.py --confirm``). Neither set is ever trained on.
"""

from __future__ import annotations

from pathlib import Path

from utils.data.synthetic import (
    DEFAULT_VIEWS,
    GENERATOR_VERSION,
    ensure_synthetic_dataset,
)

#: The generator seed of the benchmark set; never a training seed.
BENCHMARK_SEED = 1_000_003
#: The confirmation set's generator seed; never a training or tuning seed.
CONFIRMATION_SEED = 1_000_033
#: The seeds of the held-out sets, which training refuses (as data or as unlabelled images).
HELD_OUT_SEEDS = (BENCHMARK_SEED, CONFIRMATION_SEED)
#: Images in the benchmark set (400 object sets of 5 views).
BENCHMARK_IMAGES = 2000
_REPO = Path(__file__).resolve().parents[2]


def benchmark_root(n_images: int = BENCHMARK_IMAGES) -> Path:
    """Default folder of the benchmark's first ``n_images`` images."""
    return _REPO / "data" / "benchmark" / f"synthetic_v{GENERATOR_VERSION}_n{n_images}"


def _ensure_held_out(root: str | Path, n_images: int, seed: int, what: str) -> Path:
    """A held-out set's folder (300 px, Jacquard layout, generator ``seed``), generated on
    first use; ``what`` names the image count in the error for fewer than 1."""
    if n_images < 1:
        raise ValueError(f"{what} must be at least 1, got {n_images}")
    return ensure_synthetic_dataset(
        root,
        n_scenes=n_images,
        size=300,
        seed=seed,
        views=DEFAULT_VIEWS,
        replace=False,  # a held-out folder is never overwritten by one of another size
    )


def ensure_benchmark(n_images: int = BENCHMARK_IMAGES, root: str | Path | None = None) -> Path:
    """The benchmark folder, generated on first use (see the module docstring)."""
    root = root if root is not None else benchmark_root(n_images)
    return _ensure_held_out(root, n_images, BENCHMARK_SEED, "--benchmark-images")


def confirmation_root(n_images: int = BENCHMARK_IMAGES) -> Path:
    """Default folder of the confirmation set's first ``n_images`` images."""
    return _REPO / "data" / "benchmark" / f"confirmation_v{GENERATOR_VERSION}_n{n_images}"


def ensure_confirmation_set(
    n_images: int = BENCHMARK_IMAGES, root: str | Path | None = None
) -> Path:
    """The confirmation set's folder (module docstring), generated on first use (53 s for
    2,000 images on a 2-core AMD EPYC with AVX512-BF16) and reused."""
    root = root if root is not None else confirmation_root(n_images)
    return _ensure_held_out(root, n_images, CONFIRMATION_SEED, "the confirmation set's image count")


def is_benchmark_folder(root: str | Path) -> bool:
    """True for a folder holding (a part of) the benchmark or the confirmation set: never a
    training set."""
    from utils.data.synthetic import read_marker

    marker = read_marker(root)
    return marker is not None and marker.get("seed") in HELD_OUT_SEEDS


def benchmark_name(n_images: int, root: str | Path | None = None) -> str:
    """How tables and JSON name the set: ``synthetic benchmark v2 (2000 images)``
    (``synthetic confirmation set v4 (...)`` for a folder of the confirmation set); the
    version is that of the set in ``root`` (an older generator's folder may be scored), else
    the current generator's."""
    from utils.data.synthetic import read_marker

    marker = (read_marker(root) or {}) if root is not None else {}
    version = marker.get("version")
    kind = "confirmation set" if marker.get("seed") == CONFIRMATION_SEED else "benchmark"
    size = (
        f"{n_images} images"
        if n_images == BENCHMARK_IMAGES
        else f"first {n_images} of {BENCHMARK_IMAGES} images"
    )
    return f"synthetic {kind} v{version or GENERATOR_VERSION} ({size})"
