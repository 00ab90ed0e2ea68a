"""The synthetic benchmark set: fixed, versioned, and disjoint from every training object."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from utils.data.benchmark import (
    BENCHMARK_SEED,
    CONFIRMATION_SEED,
    benchmark_name,
    benchmark_root,
    confirmation_root,
    ensure_benchmark,
    ensure_confirmation_set,
    is_benchmark_folder,
)
from utils.data.jacquard import JacquardDataset
from utils.data.synthetic import GENERATOR_VERSION, MARKER, main, object_set_id


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.name != "synthetic_dataset.json":  # holds the timing
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_benchmark_is_identical_across_generations_and_a_prefix_of_the_full_set(tmp_path):
    a = ensure_benchmark(10, tmp_path / "a")
    b = ensure_benchmark(10, tmp_path / "b")
    assert digest(a) == digest(b)
    # The first 5 images of a 10-image set are the 5-image set: sets are independent of count.
    c = ensure_benchmark(5, tmp_path / "c")
    first = sorted(JacquardDataset(a).samples, key=lambda s: s.sample_id)
    assert {s.object_id for s in JacquardDataset(c).samples} <= {s.object_id for s in first}
    assert f"synthetic_v{GENERATOR_VERSION}_n2000" in str(benchmark_root())
    assert benchmark_name(2000) == f"synthetic benchmark v{GENERATOR_VERSION} (2000 images)"
    # A set of an older generator is named by its own version, and scored as it is.
    marker = json.loads((c / MARKER).read_text())
    (c / MARKER).write_text(json.dumps({**marker, "version": GENERATOR_VERSION - 1}))
    assert ensure_benchmark(5, c) == c
    old = f"synthetic benchmark v{GENERATOR_VERSION - 1} (first 5 of 2000 images)"
    assert benchmark_name(5, c) == old


def test_benchmark_objects_are_never_training_objects(tmp_path):
    bench = JacquardDataset(ensure_benchmark(10, tmp_path / "bench"), output_size=32)
    # Training sets are generated with seed 0 (any size: object set i depends on i only).
    train_ids = {object_set_id(0, i) for i in range(200_000)}
    assert not {bench.object_id(i) for i in range(len(bench))} & train_ids
    from utils.data.synthetic import generate_dataset

    train = JacquardDataset(generate_dataset(tmp_path / "train", n_scenes=10), output_size=32)
    train_depth = [train.get_depth(i) for i in range(len(train))]
    for i in range(len(bench)):
        d = bench.get_depth(i)
        assert not any(np.array_equal(d, t) for t in train_depth)


def test_generator_refuses_the_held_out_seeds(tmp_path, capsys):
    for seed in (BENCHMARK_SEED, CONFIRMATION_SEED):
        assert main(["--out", str(tmp_path / "x"), "--n", "2", "--seed", str(seed)]) == 2
        assert "held-out set's seed" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_confirmation_set_is_held_out_with_other_objects(tmp_path, capsys):
    conf = ensure_confirmation_set(5, tmp_path / "conf")
    bench = ensure_benchmark(5, tmp_path / "bench")
    assert is_benchmark_folder(conf) and is_benchmark_folder(bench)
    c, b = JacquardDataset(conf, output_size=32), JacquardDataset(bench, output_size=32)
    assert len({c.object_id(i) for i in range(len(c))}) == 1  # one object set of 5 views
    bench_depth = [b.get_depth(i) for i in range(len(b))]
    for i in range(len(c)):  # other scenes than the benchmark's, not only other names
        assert not any(np.array_equal(c.get_depth(i), d) for d in bench_depth)
    assert benchmark_name(5, conf) == (
        f"synthetic confirmation set v{GENERATOR_VERSION} (first 5 of 2000 images)"
    )
    assert f"confirmation_v{GENERATOR_VERSION}_n2000" in str(confirmation_root())
    assert ensure_confirmation_set(5, conf) == conf  # reused, not regenerated
    # Training refuses it, as it refuses the benchmark.
    import train_net

    with pytest.raises(SystemExit):
        train_net.parse_args(["--dataset-path", str(conf)])
    assert "holds a held-out set" in capsys.readouterr().err


def test_eval_net_names_a_held_out_folder_whatever_the_dataset_flag(tmp_path):
    import argparse

    import eval_net

    conf = ensure_confirmation_set(5, tmp_path / "conf")
    args = argparse.Namespace(network="x/best.pt", weights=None, part="all", dataset="jacquard")
    m = eval_net.measured(args, {"kind": "best", "epoch": 3}, JacquardDataset(conf, output_size=32))
    assert m["dataset"].startswith("synthetic confirmation set v")
    plain = tmp_path / "plain"
    from utils.data.synthetic import generate_dataset

    ds = JacquardDataset(generate_dataset(plain, n_scenes=2), output_size=32)
    assert eval_net.measured(args, {"kind": "best"}, ds)["dataset"] == "jacquard"
